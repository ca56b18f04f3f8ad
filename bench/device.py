"""device-2300: what the protocol and the device add to an Aer run, and how fast cQASM is
parsed and converted.

    python bench/device.py [--runs 200] [--quick]

1. initialize + execute + terminate of a 5-qubit GHZ at 1000 shots against `qrt device`
   (its own process), next to calling Aer directly on the same circuit with the same noise
   model (and without noise, next to ideal Aer);
2. one execute alone (a session already open) of a one-qubit, one-shot circuit on an ideal
   device: the fixed cost of an execute (request, parse, simulation in the device's worker
   process, reply), and of the same GHZ with raw data (every shot's bitstring comes back);
3. parse + convert of a 20-qubit, 20-layer circuit in cQASM 3.0 and 1.0;
4. dynamic circuits (mid-circuit measurements) on Aer with and without its shot branching, which
   the device leaves off (with it Aer crashed on four rounds of measurements at 70000 shots).

Competitors run in turn, round by round (device, Aer, device, Aer, ...), so both see the same
load; each device (its request, publish and health/metrics sockets) listens on free ports. Prints
medians with their spread and the load average; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from qiskit_aer import AerSimulator

from qrt_common.cqasm import parse, to_circuit
from qrt_common.device_protocol import Command
from qrt_common.errors import DeviceUnavailable
from qrt_device.calibration import Calibration
from qrt_device.config import DeviceConfig
from qrt_device.noise import noise_model
from qrt_device.simulator import instruction_names
from qrt_executor.device_client import DeviceClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    free_port,
    interleaved,
    load,
    paired_difference,
    scratch_directory,
    summary,
)
from bench.cpu_per_job import cpu_seconds  # noqa: E402
from bench.memory import tree  # noqa: E402

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


IDLE_SECONDS = 2.0


def tree_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) of `pid` and its descendants, living or reaped."""
    return sum(sum(cpu_seconds(each)) for each in tree(pid))


def settle(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until `process` and its children stop burning CPU: the device answers before its
    worker has warmed Aer up (seconds of CPU), which would otherwise run during the first
    measured rounds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started, before = time.perf_counter(), tree_cpu(process.pid)
        time.sleep(0.5)
        if tree_cpu(process.pid) - before < 0.05 * (time.perf_counter() - started):
            return


def start_device(config: str) -> tuple[subprocess.Popen[bytes], str]:
    """`qrt device` with `config` on free loopback ports (requests, publishing, and its health
    and metrics on port 0), once it answers: its process and request address. A port taken
    between choosing and binding makes the device exit; then it starts again on others."""
    path = Path(scratch_directory()) / "device.toml"
    path.write_text(config)
    for _ in range(3):
        rep = f"tcp://127.0.0.1:{free_port()}"
        pub = f"tcp://127.0.0.1:{free_port()}"
        command = ["device", "--config", str(path), "--rep-address", rep, "--pub-address", pub]
        process = subprocess.Popen(
            [sys.executable, "-m", "qrt_cli", *command],
            cwd=ROOT,
            env={**os.environ, "QRT_LOG_LEVEL": "WARNING", "QRT_OPS_PORT": "0"},
            stdin=subprocess.DEVNULL,
        )
        client = DeviceClient(rep, timeout=2)
        try:
            deadline = time.monotonic() + 120
            while process.poll() is None and time.monotonic() < deadline:
                try:
                    client.request(Command.GET_STATIC, str(uuid.uuid4()))
                    settle(process)
                    return process, rep
                except DeviceUnavailable:
                    continue
        finally:
            client.close()
        process.kill()
        process.wait(30)
    raise SystemExit("qrt device did not start")


def round_trips(
    device: subprocess.Popen[bytes], rep: str, runs: int, direct: Any
) -> tuple[list[float], list[float], str]:
    """Seconds of initialize + execute + terminate of the GHZ on the device at `rep`, and of
    `direct` (Aer called here), interleaved; and a line of CPU time per call, steadier than wall
    time on a busy machine: the device's processes' (`device` and its children, whatever they
    did meanwhile included; what they burn when nobody asks, measured for IDLE_SECONDS before,
    is said next to it) and this process's in the call, against this process's in `direct`
    (all over every call, warm-up included)."""
    client = DeviceClient(rep, timeout=30)
    job_ids = iter(range(1, 10**9))
    own = {"session": 0.0, "direct": 0.0}
    calls = runs + min(10, runs)  # interleaved's warm-up rounds too

    def session() -> None:
        started = time.process_time()
        session_id = str(uuid.uuid4())
        client.request(Command.INITIALIZE, session_id)
        payload = {"job_id": next(job_ids), "circuit": GHZ, "number_of_shots": 1000}
        client.request(Command.EXECUTE, session_id, payload)
        client.request(Command.TERMINATE, session_id)
        own["session"] += time.process_time() - started

    def direct_call() -> None:
        started = time.process_time()
        direct()
        own["direct"] += time.process_time() - started

    try:
        idle_started, before = time.perf_counter(), tree_cpu(device.pid)
        time.sleep(IDLE_SECONDS)
        after = tree_cpu(device.pid)
        idle_rate = (after - before) / (time.perf_counter() - idle_started)
        device_times, direct_times = interleaved([session, direct_call], runs)
        device_cpu = (tree_cpu(device.pid) - after) / calls
        line = (
            f"device's processes {device_cpu * 1000:.1f} ms + client "
            f"{own['session'] / calls * 1000:.1f} ms vs Aer here {own['direct'] / calls * 1000:.1f}"
            f" ms (idle, the device's processes burn {idle_rate * 1000:.0f} ms a second)"
        )
        return device_times, direct_times, line
    finally:
        client.close()


TINY = "version 3.0\nqubit[1] q\nbit[1] b\nX q[0]\nb[0] = measure q[0]\n"


def executes(rep: str, runs: int) -> tuple[list[float], list[float]]:
    """Seconds of one execute of TINY (1 shot) and of the GHZ with raw data (1000 shots), in
    turn, in one open session on the device at `rep`."""
    client = DeviceClient(rep, timeout=30)
    session_id = str(uuid.uuid4())
    client.request(Command.INITIALIZE, session_id)
    job_ids = iter(range(1, 10**9))

    def execute(circuit: str, shots: int, raw: bool) -> None:
        payload = {"job_id": next(job_ids), "circuit": circuit, "number_of_shots": shots,
                   "include_raw_data": raw}  # fmt: skip
        client.request(Command.EXECUTE, session_id, payload)

    try:
        tiny, ghz = interleaved(
            [lambda: execute(TINY, 1, False), lambda: execute(GHZ, 1000, True)], runs
        )
        return tiny, ghz
    finally:
        client.request(Command.TERMINATE, session_id)
        client.close()


def measured_rounds(rounds: int) -> str:
    """Rounds of H on five qubits, each measured into the next five bits."""
    lines = ["version 3.0", "qubit[5] q", f"bit[{5 * rounds}] b"]
    for r in range(rounds):
        lines += ["H q", f"b[{5 * r}:{5 * r + 4}] = measure q"]
    return "\n".join(lines) + "\n"


CONDITIONAL = (
    "version 1.0\nqubits 5\nh q[2]\nmeasure q[2]\nc-x b[2], q[0]\n"
    + "cnot q[2], q[0]\n" * 40
    + "measure_all\n"
)


def few_branches(qubits: int = 16, layers: int = 8) -> str:
    """A wide circuit with one mid-circuit measurement: two branches, many amplitudes."""
    rng = random.Random(2)
    lines = ["version 3.0", f"qubit[{qubits}] q", f"bit[{qubits}] b"]

    def layer() -> None:
        for q in range(qubits):
            lines.append(f"Rx({rng.uniform(-3, 3)!r}) q[{q}]")
        lines.extend(f"CNOT q[{q}], q[{q + 1}]" for q in range(0, qubits - 1, 2))

    for _ in range(layers):
        layer()
    lines.append("b[0] = measure q[0]")
    for _ in range(layers):
        layer()
    lines.append("b = measure q")
    return "\n".join(lines) + "\n"


def branching(shots: int, runs: int, wide: bool = True) -> None:
    """Each dynamic circuit with Aer's shot branching on and off, `runs` rounds in turn; with
    `wide`, also the 16-qubit one (tens of seconds on a busy machine)."""
    config = DeviceConfig(seed=1, qubits=16, topology=[(q, q + 1) for q in range(15)])
    calibration = Calibration(config, random.Random(1), time.time())
    statevector = AerSimulator(method="statevector")
    for label, text, noisy, count in [
        ("4 rounds of 5 measurements, ideal", measured_rounds(4), False, shots),
        ("4 rounds of 5 measurements, noisy", measured_rounds(4), True, shots),
        ("a conditional gate, noisy", CONDITIONAL, True, shots),
        ("16 qubits, one mid-circuit measurement, ideal", few_branches(), False, 200),
    ][: None if wide else 3]:
        circuit = to_circuit(parse(text))
        options: dict[str, object] = {}
        if noisy:
            snapshot = calibration.snapshot(time.time())
            options["noise_model"] = noise_model(snapshot, config, instruction_names(circuit))

        def run(
            enabled: bool, circuit: Any = circuit, count: int = count,
            options: dict[str, object] = options,
        ) -> None:  # fmt: skip
            statevector.run(circuit, shots=count, shot_branching_enable=enabled, **options).result()

        on, off = interleaved([lambda: run(True), lambda: run(False)], runs, warmup=1)
        print(f"  {label}, {count} shots")
        print(summary("    branching on", on))
        print(summary("    branching off", off))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="rounds of each comparison")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: does it still run")
    args = parser.parse_args()
    runs, parses, branch_runs, branch_shots, size = args.runs, 30, 3, 5000, 20
    if args.quick:
        runs, parses, branch_runs, branch_shots, size = 5, 3, 1, 100, 5
    print(f"{load()} at the start")

    circuit = to_circuit(parse(GHZ))
    config = DeviceConfig(seed=1)
    calibration = Calibration(config, random.Random(1), time.time())
    noise = noise_model(calibration.snapshot(time.time()), config, instruction_names(circuit))
    density = AerSimulator(method="density_matrix")
    ideal = AerSimulator()

    print(f"5-qubit GHZ, 1000 shots, {runs} rounds of device then Aer")

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
            device_times, aer_times, cpu = round_trips(process, rep, runs, direct)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        print(summary(f"  {label}: device initialize+execute+terminate", device_times))
        print(summary(f"  {label}: Aer directly", aer_times))
        print(f"  {label}: overhead, device minus Aer round by round: "
              f"{paired_difference(device_times, aer_times)}")  # fmt: skip
        print(f"  {label}: CPU a call: {cpu}")

    print(f"execute alone, ideal device, {runs} rounds of both in turn")
    process, rep = start_device("noise = false\n")
    try:
        tiny, raw = executes(rep, runs)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    print(summary("  1 qubit, 1 shot", tiny))
    print(summary("  GHZ, 1000 shots with raw data", raw))

    print(f"parse + convert, {size} qubits x {size} layers, {parses} rounds of each in turn")
    texts = {version: layered(version, size, size) for version in (3, 1)}
    times = interleaved(
        [lambda: parse(texts[3]), lambda: parse(texts[1]),
         lambda: to_circuit(parse(texts[3])), lambda: to_circuit(parse(texts[1]))],
        parses, warmup=2,
    )  # fmt: skip
    for version, parse_times, total_times in ((3, times[0], times[2]), (1, times[1], times[3])):
        operations = len(parse(texts[version]).operations)
        print(summary(f"  cQASM {version}.0 parse ({operations} operations)", parse_times))
        print(summary(f"  cQASM {version}.0 parse + convert", total_times))

    print(f"Aer's shot branching on dynamic circuits (statevector), {branch_runs} rounds in turn")
    branching(branch_shots, branch_runs, wide=not args.quick)
    print(f"{load()} at the end")


if __name__ == "__main__":
    main()
