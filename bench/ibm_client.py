"""The stock qiskit-ibm-runtime client's SamplerV2 through a running `qrt dev` (set up as the
README's "Use qrt from qiskit-ibm-runtime" recipe says), submit to result, next to Aer's own
SamplerV2 run directly in this process: a 2-qubit Bell pub, interleaved run by run.

    python bench/ibm_client.py [--runs 100] [--shots 1000] [--quick]

The client follows a job by polling its status: `job.result()` sleeps `poll_interval` seconds
between polls, 0.5 s by default outside a session (0.1 s in one), 0.1 s at least
(qiskit_ibm_runtime/runtime_job_v2.py, `wait_for_final_state`); it has no push path for V2
jobs. So the client path runs twice per round: as a user writes it (`job.result()`) and with the
fastest interval a stock user can ask for (`job.result(poll_interval=0.1)`). Where the time goes
comes from the client's clock and the job's timeline on qrt (`job.metrics()`, same machine, same
clock). Prints p50, the spread (p25-p75) and p99; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import load, paired_difference, summary  # noqa: E402
from bench.latency import start_dev  # noqa: E402

INSTANCE_CRN = "crn:v1:qrt:private:quantum-computing:local:a/qrt:ibm-q/open/main::"
FINAL = ("DONE", "CANCELLED", "ERROR")
FASTEST_POLL = 0.1
"""The client's floor for `poll_interval` (seconds)."""


@dataclass
class ClientRun:
    """One job through the client; times in seconds on this machine's wall clock."""

    total: float
    """`run()` called to `result()` returned."""
    submit: float
    """`run()` called to the job queued on qrt (the client's checks, encoding and POST)."""
    queued: float
    """Queued to running on qrt (scheduler, executor)."""
    running: float
    """Running to finished on qrt (the job process: decode, Aer, encode, store)."""
    noticed: float
    """Finished on qrt to the client's poll that saw it (the polling interval's share)."""
    fetched: float
    """That poll to `result()` returned (GET the result, decode it)."""
    polls: int


def wall(text: str) -> float:
    """An IBM timestamp ('2026-11-30T15:12:12.809883Z', UTC) as seconds since the epoch."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def client_run(sampler: Any, pub: Any, shots: int, poll_interval: float | None) -> ClientRun:
    started_wall, started = time.time(), time.perf_counter()
    job = sampler.run([pub], shots=shots)
    polls, seen = 0, 0.0
    status = job.status

    def counted() -> str:  # wait_for_final_state calls self.status(): count them, note the last
        nonlocal polls, seen
        polls += 1
        answer: str = status()
        if answer in FINAL and not seen:
            seen = time.time()
        return answer

    job.status = counted
    result = job.result(poll_interval=poll_interval)
    ended = time.perf_counter()
    ended_wall = started_wall + (ended - started)
    assert sum(result[0].data.meas.get_counts().values()) == shots
    stages = {s["stage"]: wall(s["at"]) for s in job.metrics()["timeline"]}
    return ClientRun(
        total=ended - started,
        submit=stages["queued"] - started_wall,
        queued=stages["running"] - stages["queued"],
        running=stages["finished"] - stages["running"],
        noticed=seen - stages["finished"],
        fetched=ended_wall - seen,
        polls=polls,
    )


def aer_run(sampler: Any, pub: Any, shots: int) -> float:
    started = time.perf_counter()
    result = sampler.run([pub], shots=shots).result()
    assert sum(result[0].data.meas.get_counts().values()) == shots
    return time.perf_counter() - started


def timed_once(action: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = action()
    return value, time.perf_counter() - started


def measure(url: str, runs: int, shots: int, warmup: int) -> None:
    # The recipe: before the client is imported or used.
    os.environ["IAM_URL"] = url
    os.environ["QISKIT_FUNCTIONS_EXPERIMENTAL"] = "1"
    from qiskit import QuantumCircuit
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_aer import AerSimulator
    from qiskit_aer.primitives import SamplerV2 as AerSamplerV2
    from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2

    warnings.simplefilter("ignore", DeprecationWarning)  # SamplerV2's, once per run()
    service, connecting = timed_once(
        lambda: QiskitRuntimeService(
            channel="ibm_quantum_platform", url=url, token="any text", instance=INSTANCE_CRN,
            url_resolver=lambda url, instance, private_endpoint, channel: f"{url}/api/v1",
        )
    )  # fmt: skip
    backend, choosing = timed_once(lambda: service.backend("aer_simulator"))
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    isa = generate_preset_pass_manager(backend=backend, optimization_level=1).run(bell)
    print(f"{'once: QiskitRuntimeService(...), .backend()':<48} "
          f"{connecting * 1000:7.1f} ms, {choosing * 1000:7.1f} ms")  # fmt: skip

    client = SamplerV2(mode=backend)
    aer = AerSamplerV2.from_backend(AerSimulator())
    for _ in range(warmup):  # the job process's first Aer import, the pools, the connections
        client_run(client, isa, shots, FASTEST_POLL)
        aer_run(aer, isa, shots)

    direct: list[float] = []
    default: list[ClientRun] = []
    fastest: list[ClientRun] = []
    for _ in range(runs):  # interleaved, so drifting load falls on all three alike
        direct.append(aer_run(aer, isa, shots))
        default.append(client_run(client, isa, shots, None))
        fastest.append(client_run(client, isa, shots, FASTEST_POLL))

    print(summary("Aer SamplerV2 in process", direct))
    print(summary("client SamplerV2 via qrt, job.result()", [r.total for r in default]))
    print(summary("client SamplerV2 via qrt, poll_interval=0.1", [r.total for r in fastest]))
    for label, rows in (("job.result()", default), ("poll_interval=0.1", fastest)):
        print(f"where the time goes, {label}:")
        for part in ("submit", "queued", "running", "noticed", "fetched"):
            print(summary(f"  {part}", [getattr(r, part) for r in rows]))
        polls = [r.polls for r in rows]
        polled = "  status polls per job"
        print(f"{polled:<48} median {statistics.median(polls):.0f}, max {max(polls)}")
    overhead = paired_difference([r.total for r in fastest], direct)
    print(f"{'client path (0.1 s polls) minus in-process Aer':<48} {overhead}, round by round")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100, help="rounds of the three ways")
    parser.add_argument("--shots", type=int, default=1000, help="shots of the Bell pub")
    parser.add_argument("--warmup", type=int, default=3, help="rounds left out at the start")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: does it still run")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.warmup = 2, 1
    print(f"{load()} at the start")
    with tempfile.TemporaryDirectory() as data_dir:
        process, url = start_dev(data_dir, capacity=2, programs=ROOT / "programs")
        try:
            measure(url, args.runs, args.shots, args.warmup)
        finally:
            process.terminate()
            process.wait(30)
    print(f"{load()} at the end")


if __name__ == "__main__":
    main()
