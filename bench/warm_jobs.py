"""What a small circuit costs over a no-op job in a warm job process: a 2-qubit Bell circuit of
1000 shots through `circuit-runner` (transpile + run, as the client sends it) and through the
`sampler` program (one pub), next to a no-op job, one job at a time through the warm pool,
the three interleaved job by job; and the warm loop, the same transpile + run in this process
over and over, and the prepared loop, a pass manager built once run with Aer over and over
(what is left with all set-up done ahead).

    python bench/warm_jobs.py [--jobs 60] [--rounds 3] [--baseline DIR]

With `--baseline DIR` (another checkout of qrt, e.g. `git worktree add /tmp/base main`) the
rounds alternate between that checkout's executor and this one's (A B A B), each round in a
process of its own, so both see the same load. Prints medians with their spread (p25-p75) and
the mean CPU time of the job processes per job; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHOTS = 1000
KINDS = ("noop", "circuit-runner", "sampler")


def _use(root: Path) -> None:
    """Import qrt from checkout `root` (here, and in the zygote through PYTHONPATH)."""
    paths = [str(root / "libs" / "common"), str(root / "services" / "executor"), str(ROOT)]
    sys.path[:0] = paths
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")])


def _bell() -> Any:
    from qiskit import QuantumCircuit

    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    return circuit


def _params(kind: str) -> str:
    from qiskit_ibm_runtime import RuntimeEncoder

    if kind == "noop":
        return "{}"
    if kind == "circuit-runner":
        return json.dumps(
            {"circuits": _bell(), "shots": SHOTS, "seed_transpiler": 1}, cls=RuntimeEncoder
        )
    from bench.primitives import client_params

    params: str = client_params()
    return params


def _reaped() -> tuple[float, int]:
    """Seconds of CPU and minor page faults (most of them copies of the zygote's pages) of the
    job processes the zygote (this process's child) reaped so far."""
    seconds, faults = 0.0, 0
    for task in os.listdir("/proc/self/task"):
        for pid in Path(f"/proc/self/task/{task}/children").read_text().split():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            seconds += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
            faults += int(fields[8])  # cminflt
    return seconds, faults


async def _jobs(root: Path, jobs: int) -> dict[str, list[float]]:
    """Seconds per job of each kind, interleaved job by job, through a warm pool of `root`."""
    from bench.common import scratch_directory
    from qrt_common.jobs import JobStatus
    from qrt_common.programs import ProgramKind
    from qrt_executor.job_protocol import Launch
    from qrt_executor.pool import WarmPool
    from qrt_executor.runner import JobOutput, run_job

    modules = {
        "noop": ("noop.noop", ROOT / "bench" / "programs"),
        "circuit-runner": ("circuit_runner.circuit_runner", root / "programs"),
        "sampler": ("sampler.sampler", root / "programs"),
    }
    params = {kind: _params(kind) for kind in KINDS}
    workdir = scratch_directory()
    pool = WarmPool(2)
    await pool.start()

    async def one(kind: str, n: int) -> asyncio.Future[int | None]:
        """Run a job of `kind` to its reported end; its process's exit, which may come later."""
        module, where = modules[kind]
        launch = Launch(
            job_id=f"job-{n}", kind=ProgramKind.QISKIT_RUNTIME, module=module,
            search_path=str(where), project_dir=str(where), backend="aer_simulator",
            params=params[kind], workdir=workdir,
        )  # fmt: skip

        async def keep(batch: list[Any]) -> None:
            pass

        proc = await pool.acquire()
        output = JobOutput(f"job-{n}", 1, "ex", keep, max_log_bytes=1 << 20)
        stop: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            outcome = await run_job(proc, launch, output, time_limit=120, stop=stop)
            assert outcome.status is JobStatus.COMPLETED, outcome
        finally:
            proc.close()
        await output.close()
        return proc.exited

    for n in range(3):  # the pool's first processes
        for kind in KINDS:
            await one(kind, n)
    times: dict[str, list[float]] = {kind: [] for kind in KINDS}
    cpu: dict[str, list[float]] = {kind: [] for kind in KINDS}
    faults: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for n in range(jobs):
        for kind in KINDS:
            cpu_before, faults_before = _reaped()
            started = time.perf_counter()
            exited = await one(kind, n)
            times[kind].append(time.perf_counter() - started)
            await exited  # reaped: its CPU and faults are counted now, not with the next job's
            cpu_after, faults_after = _reaped()
            cpu[kind].append(cpu_after - cpu_before)
            faults[kind].append(faults_after - faults_before)
    await pool.close()
    return {
        **times,
        **{f"cpu {kind}": cpu[kind] for kind in KINDS},
        **{f"faults {kind}": faults[kind] for kind in KINDS},
    }


def _warm_loop(runs: int) -> list[float]:
    """Seconds per transpile + run of the Bell circuit in this process, after a first one."""
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    backend, bell = AerSimulator(), _bell()
    times = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        backend.run(transpile(bell, backend=backend, seed_transpiler=1), shots=SHOTS).result()
        times.append(time.perf_counter() - started)
    return times[1:]


def _prepared_loop(runs: int) -> list[float]:
    """Seconds per run of a pass manager built once + Aer run of the Bell circuit in this
    process: what is left of a job with all its set-up done ahead."""
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_aer import AerSimulator

    backend, bell = AerSimulator(), _bell()
    manager = generate_preset_pass_manager(backend=backend, seed_transpiler=1)
    times = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        backend.run(manager.run(bell), shots=SHOTS).result()
        times.append(time.perf_counter() - started)
    return times[1:]


def _worker(root: Path, jobs: int) -> None:
    _use(root)
    times = asyncio.run(_jobs(root, jobs))
    times["warm loop"] = _warm_loop(jobs)
    times["prepared loop"] = _prepared_loop(jobs)
    print(json.dumps(times))


def _round(root: Path, jobs: int) -> dict[str, list[float]]:
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(root), "--jobs", str(jobs)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, list[float]] = json.loads(done.stdout.splitlines()[-1])
    return result


def spread(seconds: list[float]) -> str:
    """Median (p25-p75) in milliseconds."""
    q1, median, q3 = statistics.quantiles([1000 * s for s in seconds], n=4)
    return f"{median:7.1f} ({q1:.1f}-{q3:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60, help="jobs of each kind a round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.jobs)
        return
    trees = {"this": ROOT}
    if args.baseline:
        trees = {"baseline": args.baseline.resolve(), "this": ROOT}
    merged: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
    for _ in range(args.rounds):
        for name, root in trees.items():
            for key, values in _round(root, args.jobs).items():
                merged[name].setdefault(key, []).extend(values)
    print(
        f"Bell circuit ({SHOTS} shots) vs a no-op job in a warm job process, one at a time, "
        f"{args.rounds} rounds x {args.jobs} jobs of each, interleaved; load "
        f"{os.getloadavg()[0]:.1f}. Median (p25-p75), ms:"
    )
    for name, results in merged.items():
        noop = statistics.median(results["noop"])
        print(f"  {name} ({trees[name]}):")
        for kind in KINDS:
            extra = 1000 * (statistics.median(results[kind]) - noop)
            cpu = 1000 * statistics.mean(results[f"cpu {kind}"])
            faults = statistics.median(results[f"faults {kind}"])
            print(
                f"    {kind:15} {spread(results[kind])}   over no-op {extra:+7.1f}   "
                f"job process CPU {cpu:6.1f}, minor faults {faults:6.0f}"
            )
        print(
            f"    {'warm loop':15} {spread(results['warm loop'])}   (transpile + run, in process)"
        )
        print(
            f"    {'prepared loop':15} {spread(results['prepared loop'])}   "
            "(a pass manager built once: its run + Aer's, in process)"
        )


if __name__ == "__main__":
    main()
