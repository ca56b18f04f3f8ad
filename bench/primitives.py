"""What the `sampler` program costs over Aer's own SamplerV2: a 2-qubit Bell pub of 1000 shots,
p50 and p99 of (a) Aer's SamplerV2 run in this process and (b) the `sampler` program in a warm
job process (params encoded as qiskit-ibm-runtime encodes them, the result decoded by its
ResultDecoder), one job at a time, next to (c) a no-op job, what any job costs; the three in
turn round by round (a b c a b c ...) in one warm pool, so all see the same load. The stock
client's own path adds HTTP and polling to (b).

    python bench/primitives.py [--runs 200] [--quick]

Prints medians with their spread and the load average; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qiskit_aer import AerSimulator  # noqa: E402
from qiskit_aer.primitives import SamplerV2 as AerSamplerV2  # noqa: E402
from qiskit_ibm_runtime import RuntimeEncoder, SamplerV2  # noqa: E402
from qiskit_ibm_runtime.decoders.result_decoder import ResultDecoder  # noqa: E402

from bench.common import load, scratch_directory, summary  # noqa: E402
from qrt_common.jobs import JobStatus  # noqa: E402
from qrt_common.programs import ProgramKind  # noqa: E402
from qrt_executor.job_protocol import Launch  # noqa: E402
from qrt_executor.pool import WarmPool  # noqa: E402
from qrt_executor.runner import JobOutput, run_job  # noqa: E402
from tests.support.primitives import bell  # noqa: E402

PROGRAMS = str(ROOT / "programs")
NOOP_PROGRAMS = str(ROOT / "bench" / "programs")
SHOTS = 1000


class _Catcher:
    """Stands in for the client's service: keeps the params `SamplerV2.run` submits."""

    def __init__(self) -> None:
        self.inputs: dict[str, Any] = {}

    def _run(self, program_id: str, options: Any, inputs: dict[str, Any], **_: Any) -> None:
        self.inputs = inputs


def client_params() -> str:
    """The params qiskit-ibm-runtime's SamplerV2 submits for the Bell pub, as JSON text."""
    catcher = _Catcher()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sampler: Any = SamplerV2(mode=AerSimulator())
        sampler._service = catcher
        sampler.run([bell()], shots=SHOTS)
    return json.dumps(catcher.inputs, cls=RuntimeEncoder)


async def compare(runs: int) -> tuple[list[float], list[float], list[float]]:
    """Seconds of Aer's SamplerV2 in this process, of a `sampler` job and of a no-op job in a
    warm job process, `runs` rounds of the three in turn (after 5 untimed rounds)."""
    sampler_params = client_params()
    workdir = scratch_directory()
    aer, circuit = AerSamplerV2(), bell()
    pool = WarmPool(2)
    await pool.start()
    jobs = iter(range(10**9))

    async def job(module: str) -> None:
        sampler = module == "sampler.sampler"
        where = PROGRAMS if sampler else NOOP_PROGRAMS
        results: list[str] = []

        async def keep(batch: list[Any]) -> None:
            results.extend(event.data for event in batch if event.kind.value == "result")

        n = next(jobs)
        launch = Launch(
            job_id=f"job-{n}", kind=ProgramKind.QISKIT_RUNTIME, module=module,
            search_path=where, project_dir=where, backend="aer_simulator",
            params=sampler_params if sampler else "{}", workdir=workdir,
        )  # fmt: skip
        proc = await pool.acquire()
        output = JobOutput(f"job-{n}", 1, "ex", keep, max_log_bytes=1 << 20)
        stop: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            outcome = await run_job(proc, launch, output, time_limit=60, stop=stop)
            assert outcome.status is JobStatus.COMPLETED, outcome
        finally:
            proc.close()
        await output.close()
        if results:
            ResultDecoder.decode(results[0])

    async def in_process() -> None:
        aer.run([circuit], shots=SHOTS).result()

    competitors: list[Callable[[], Awaitable[None]]] = [
        in_process, lambda: job("sampler.sampler"), lambda: job("noop.noop")
    ]  # fmt: skip
    times: list[list[float]] = [[] for _ in competitors]
    try:
        for n in range(5 + runs):
            for action, kept in zip(competitors, times, strict=True):
                started = time.perf_counter()
                await action()
                if n >= 5:
                    kept.append(time.perf_counter() - started)
    finally:
        await pool.close()
    return times[0], times[1], times[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="rounds of the three")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: does it still run")
    args = parser.parse_args()
    runs = 3 if args.quick else args.runs
    print(f"{load()} at the start")
    print(f"SamplerV2, a Bell pub of {SHOTS} shots, {runs} rounds of the three in turn:")
    aer, sampler, noop = asyncio.run(compare(runs))
    print(summary("  Aer's SamplerV2 in this process", aer))
    print(summary("  the sampler program in a job process", sampler))
    print(summary("  a no-op job in a job process", noop))
    print(f"{load()} at the end")


if __name__ == "__main__":
    main()
