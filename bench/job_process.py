"""What a job process costs: CPU time and page faults per no-op job through the warm pool, and
the page faults of reading a launch and writing a result in a process forked from a zygote-sized
heap, by how the message is read (the reason qrt_common.wire uses msgspec).

    python bench/job_process.py [--jobs 500]

Prints numbers; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import scratch_directory  # noqa: E402
from qrt_common.jobs import JobStatus  # noqa: E402
from qrt_common.programs import ProgramKind  # noqa: E402
from qrt_common.settings import Settings  # noqa: E402
from qrt_common.wire import from_json, to_json  # noqa: E402
from qrt_executor.job_protocol import Final, Launch, SandboxPolicy  # noqa: E402
from qrt_executor.pool import WarmPool  # noqa: E402
from qrt_executor.runner import JobOutput, run_job  # noqa: E402
from qrt_executor.service import sandbox_policy  # noqa: E402

PROGRAMS = str(ROOT / "bench" / "programs")
TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()


def reaped(pid: int) -> tuple[float, int]:
    """CPU seconds and minor page faults of the children `pid` has reaped."""
    fields = _stat(pid)
    return (int(fields[13]) + int(fields[14])) / TICK, int(fields[8])


def launch(n: int, sandbox: SandboxPolicy, workdir: str) -> Launch:
    return Launch(
        job_id=f"job-{n}", kind=ProgramKind.QISKIT_RUNTIME, module="noop.noop",
        search_path=PROGRAMS, project_dir=PROGRAMS, backend="aer_simulator", params="{}",
        workdir=workdir, sandbox=sandbox,
    )  # fmt: skip


async def through_the_pool(jobs: int, sandboxed: bool) -> None:
    """Run `jobs` no-op jobs, in the sandbox QRT_JOB_* settings describe or in none."""
    settings = Settings(job_sandbox="namespaces" if sandboxed else "off")
    sandbox = sandbox_policy(settings)
    workdir = scratch_directory()
    pool = WarmPool(2, policy=sandbox)  # as an executor's: walls built while they wait
    await pool.start()
    zygote = pool._zygote._process
    assert zygote is not None

    async def send(batch: list[Any]) -> None:
        pass

    async def one(n: int) -> asyncio.Future[int | None]:
        """Run job `n` to its reported end; its process's exit, which may come later."""
        proc = await pool.acquire()
        output = JobOutput(f"job-{n}", 1, "ex", send, max_log_bytes=1 << 20)
        stop: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            outcome = await run_job(proc, launch(n, sandbox, workdir), output, time_limit=30,
                                    stop=stop)  # fmt: skip
            assert outcome.status is JobStatus.COMPLETED, outcome
        finally:
            proc.close()
        await output.close()
        return proc.exited

    for n in range(20):  # warm up
        await (await one(n))
    cpu0, faults0 = reaped(zygote.pid)
    own0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    for n in range(jobs):
        exited = await one(n)
    wall = time.monotonic() - started
    await exited  # the last one reaped: counted
    cpu1, faults1 = reaped(zygote.pid)
    own1 = resource.getrusage(resource.RUSAGE_SELF)
    own = (own1.ru_utime + own1.ru_stime) - (own0.ru_utime + own0.ru_stime)
    where = "in the job sandbox" if sandboxed else "without a sandbox (QRT_JOB_SANDBOX=off)"
    print(f"no-op job through the warm pool ({jobs} jobs, one at a time), {where}:")
    print(f"  job process CPU       {1000 * (cpu1 - cpu0) / jobs:6.2f} ms per job")
    print(f"  job process faults    {(faults1 - faults0) / jobs:6.0f} per job")
    print(f"  executor's side CPU   {1000 * own / jobs:6.2f} ms per job")
    print(f"  wall                  {1000 * wall / jobs:6.2f} ms per job")
    await pool.close()
    os.rmdir(workdir)


@dataclasses.dataclass(frozen=True)
class PlainLaunch:
    job_id: str
    kind: str
    module: str
    search_path: str
    project_dir: str
    backend: str
    params: str
    workdir: str
    device: Any = None


def faults_when_forked(samples: int = 40) -> None:
    """Median minor page faults of a child forked from this (zygote-sized) process that does
    one thing and exits."""
    import qiskit  # noqa: F401
    import qiskit_aer  # noqa: F401
    import qiskit_ibm_runtime  # noqa: F401
    from pydantic import TypeAdapter

    line = to_json(launch(0, SandboxPolicy(isolate=False), "/tmp"))
    pydantic_launch = TypeAdapter(PlainLaunch)
    pydantic_final = TypeAdapter(dict[str, str])
    ways: dict[str, Callable[[], object]] = {
        "nothing": lambda: None,
        "json.loads": lambda: json.loads(line),
        "msgspec (qrt_common.wire)": lambda: (from_json(Launch, line), to_json(Final("null"))),
        "pydantic": lambda: (
            pydantic_launch.validate_json(line),
            pydantic_final.dump_json({"kind": "final", "data": "null"}),
        ),
    }
    from_json(Launch, line)  # build the decoder before forking, as the zygote does
    gc.collect()
    gc.freeze()
    print("page faults of a forked child that reads a launch and writes a result (median):")
    for name, way in ways.items():
        faults = []
        for _ in range(samples):
            pid = os.fork()
            if pid == 0:
                way()
                os._exit(0)
            _, _, usage = os.wait4(pid, 0)
            faults.append(usage.ru_minflt)
        print(f"  {name:<28} {statistics.median(faults):6.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(through_the_pool(args.jobs, sandboxed=False))
    asyncio.run(through_the_pool(args.jobs, sandboxed=True))
    faults_when_forked()


if __name__ == "__main__":
    main()
