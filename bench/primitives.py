"""What the `sampler` program costs over Aer's own SamplerV2: a 2-qubit Bell pub of 1000 shots,
p50 and p99 of (a) Aer's SamplerV2 run in this process and (b) the `sampler` program in a warm
job process (params encoded as qiskit-ibm-runtime encodes them, the result decoded by its
ResultDecoder), one job at a time, next to (c) a no-op job, what any job costs. The stock
client's own path adds HTTP and polling to (b).

    python bench/primitives.py [--runs 200]

Prints numbers; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qiskit import QuantumCircuit  # noqa: E402
from qiskit_aer import AerSimulator  # noqa: E402
from qiskit_aer.primitives import SamplerV2 as AerSamplerV2  # noqa: E402
from qiskit_ibm_runtime import RuntimeEncoder, SamplerV2  # noqa: E402
from qiskit_ibm_runtime.decoders.result_decoder import ResultDecoder  # noqa: E402

from qrt_common.jobs import JobStatus  # noqa: E402
from qrt_common.programs import ProgramKind  # noqa: E402
from qrt_executor.job_protocol import Launch  # noqa: E402
from qrt_executor.pool import WarmPool  # noqa: E402
from qrt_executor.runner import JobOutput, run_job  # noqa: E402

PROGRAMS = str(ROOT / "programs")
NOOP_PROGRAMS = str(ROOT / "bench" / "programs")
SHOTS = 1000


def bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    return circuit


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


def percentiles(seconds: list[float]) -> str:
    ms = sorted(1000 * s for s in seconds)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    return f"p50 {statistics.median(ms):7.2f} ms   p99 {p99:7.2f} ms"


def aer_in_process(runs: int) -> list[float]:
    sampler = AerSamplerV2()
    circuit = bell()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        sampler.run([circuit], shots=SHOTS).result()
        times.append(time.perf_counter() - started)
    return times


async def through_a_job_process(runs: int, module: str = "sampler.sampler") -> list[float]:
    """Seconds per job of `module` (the sampler, or bench/programs' no-op)."""
    params = client_params() if module == "sampler.sampler" else "{}"
    where = PROGRAMS if module == "sampler.sampler" else NOOP_PROGRAMS
    workdir = tempfile.mkdtemp(prefix="qrt-bench-")
    pool = WarmPool(2)
    await pool.start()

    async def one(n: int) -> None:
        results: list[str] = []

        async def keep(batch: list[Any]) -> None:
            results.extend(event.data for event in batch if event.kind.value == "result")

        launch = Launch(
            job_id=f"job-{n}", kind=ProgramKind.QISKIT_RUNTIME, module=module,
            search_path=where, project_dir=where, backend="aer_simulator", params=params,
            workdir=workdir,
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

    for n in range(10):  # warm up
        await one(n)
    times = []
    for n in range(runs):
        started = time.perf_counter()
        await one(n)
        times.append(time.perf_counter() - started)
    await pool.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    aer_in_process(10)  # warm up
    print(f"SamplerV2, a Bell pub of {SHOTS} shots ({args.runs} runs, one at a time):")
    print(f"  Aer's SamplerV2 in this process      {percentiles(aer_in_process(args.runs))}")
    job = asyncio.run(through_a_job_process(args.runs))
    print(f"  the sampler program in a job process {percentiles(job)}")
    noop = asyncio.run(through_a_job_process(args.runs, "noop.noop"))
    print(f"  a no-op job in a job process         {percentiles(noop)}")


if __name__ == "__main__":
    main()
