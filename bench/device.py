"""device-2300: what the protocol and the device add to an Aer run, and how fast cQASM is
parsed and converted.

    python bench/device.py [--runs 200]

1. initialize + execute + terminate of a 5-qubit GHZ at 1000 shots against `qrt device`
   (its own process), next to calling Aer directly on the same circuit with the same noise
   model (and without noise, next to ideal Aer);
2. parse + convert of a 20-qubit, 20-layer circuit in cQASM 3.0 and 1.0.

Prints numbers; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from qiskit_aer import AerSimulator

from qrt_common.cqasm import parse, to_circuit
from qrt_common.device_protocol import Command
from qrt_device.calibration import Calibration
from qrt_device.config import DeviceConfig
from qrt_device.simulator import instruction_names
from qrt_executor.device_client import DeviceClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.latency import free_port, percentile, summary  # noqa: E402

GHZ = (
    "version 3.0\nqubit[5] q\nbit[5] b\nH q[2]\nCNOT q[2], q[0]\nCNOT q[2], q[1]\n"
    "CNOT q[2], q[3]\nCNOT q[2], q[4]\nb = measure q\n"
)


def layered(version: int, qubits: int = 20, layers: int = 20) -> str:
    """Random single-qubit gates and rotations on every qubit, then a brick of CNOTs."""
    rng = random.Random(1)
    lines = ["version 3.0", f"qubit[{qubits}] q", f"bit[{qubits}] b"]
    if version == 1:
        lines = ["version 1.0", f"qubits {qubits}"]
    for layer in range(layers):
        for q in range(qubits):
            lines.append(f"{rng.choice(['H', 'X90', 'Y90', 'T'])} q[{q}]")
            angle = rng.uniform(-3, 3)
            lines.append(f"Rz({angle!r}) q[{q}]" if version == 3 else f"Rz q[{q}], {angle!r}")
        lines += [f"CNOT q[{q}], q[{q + 1}]" for q in range(layer % 2, qubits - 1, 2)]
    lines.append("b = measure q" if version == 3 else "measure_all")
    return "\n".join(lines) + "\n"


def timed(action, runs: int) -> list[float]:
    for _ in range(min(10, runs)):
        action()  # warm up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def start_device(config: str) -> tuple[subprocess.Popen[bytes], str]:
    path = Path(tempfile.mkdtemp(prefix="qrt-bench-")) / "device.toml"
    path.write_text(config)
    rep = f"tcp://127.0.0.1:{free_port()}"
    pub = f"tcp://127.0.0.1:{free_port()}"
    command = ["device", "--config", str(path), "--rep-address", rep, "--pub-address", pub]
    process = subprocess.Popen(
        [sys.executable, "-m", "qrt_cli", *command],
        cwd=ROOT,
        env={**os.environ, "QRT_LOG_LEVEL": "WARNING"},
    )
    client = DeviceClient(rep, timeout=60)
    client.request(Command.GET_STATIC, str(uuid.uuid4()))  # waits until it answers
    client.close()
    return process, rep


def round_trips(rep: str, runs: int) -> list[float]:
    client = DeviceClient(rep, timeout=30)
    job_ids = iter(range(1, 10**9))

    def session() -> None:
        session_id = str(uuid.uuid4())
        client.request(Command.INITIALIZE, session_id)
        payload = {"job_id": next(job_ids), "circuit": GHZ, "number_of_shots": 1000}
        client.request(Command.EXECUTE, session_id, payload)
        client.request(Command.TERMINATE, session_id)

    try:
        return timed(session, runs)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    circuit = to_circuit(parse(GHZ))
    config = DeviceConfig(seed=1)
    calibration = Calibration(config, random.Random(1), time.time())
    noise = calibration.noise_model(time.time(), instruction_names(circuit))
    density = AerSimulator(method="density_matrix")
    ideal = AerSimulator()

    print(f"5-qubit GHZ, 1000 shots, {args.runs} runs each")

    def noisy() -> None:
        density.run(circuit, shots=1000, noise_model=noise).result()

    def ideal_run() -> None:
        ideal.run(circuit, shots=1000).result()

    for label, device_config, direct in [
        ("noisy", "seed = 1\n", noisy),
        ("ideal", "noise = false\n", ideal_run),
    ]:
        process, rep = start_device(device_config)
        try:
            device_times = round_trips(rep, args.runs)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        aer_times = timed(direct, args.runs)
        print(summary(f"  {label}: device initialize+execute+terminate", device_times))
        print(summary(f"  {label}: Aer directly", aer_times))
        overhead = (percentile(device_times, 50) - percentile(aer_times, 50)) * 1000
        print(f"  {label}: overhead at p50 {overhead:.1f} ms")

    print("parse + convert, 20 qubits x 20 layers")
    for version in (3, 1):
        text = layered(version)
        operations = len(parse(text).operations)
        parse_times = timed(lambda text=text: parse(text), 30)
        total_times = timed(lambda text=text: to_circuit(parse(text)), 30)
        print(summary(f"  cQASM {version}.0 parse ({operations} operations)", parse_times))
        print(summary(f"  cQASM {version}.0 parse + convert", total_times))


if __name__ == "__main__":
    main()
