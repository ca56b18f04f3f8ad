"""CPU time of a no-op job's way through the store, the ledger and the in-process bus: what
`qrt dev`'s own process does for it apart from HTTP and the job process (the submit's insert and
announcement, the placement, one message of start, log, result and end applied and announced,
a read of the job), in one process on a fresh SQLite file.

Steadier than `bench/cpu_per_job.py` on a machine loaded by other work: no HTTP, no forks, and
CPU time of one process rather than the wall time of many.

    python bench/store_path.py [--jobs 1500] [--rounds 3] [--baseline DIR] [--quick]

Each round runs `--jobs` jobs (after 50 untimed ones) in a fresh process of each checkout in
turn (A B A B ...), with that checkout's packages first on the path. Prints microseconds of CPU
a job; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.common import load  # noqa: E402
from bench.memory import environment  # noqa: E402

WARMUP = 50


async def _path(jobs: int) -> list[float]:
    """Seconds of CPU of each of `jobs` no-op jobs' way through store, ledger and bus."""
    from qrt_common.bus.memory import InMemoryBus
    from qrt_common.jobs import Job, JobStatus
    from qrt_common.messages import (
        EVENTS_QUEUE,
        SUBMITTED_QUEUE,
        UPDATES_TOPIC,
        EventKind,
        JobEvent,
        JobEvents,
        JobSubmitted,
    )
    from qrt_common.store.sqlite import SQLiteStore
    from qrt_common.wire import decode, encode
    from qrt_scheduler.ledger import Ledger

    with tempfile.TemporaryDirectory(prefix="qrt-bench-") as directory:
        store = SQLiteStore(Path(directory) / "qrt.db")
        await store.open()
        bus = InMemoryBus()
        ledger = Ledger(store, bus)
        updates: asyncio.Queue[object] = asyncio.Queue()
        await bus.subscribe(UPDATES_TOPIC, updates.put)

        async def one(n: int) -> None:
            job = Job(id=f"job-{n}", program_id="noop", backend="aer_simulator",
                      params='{"a": 1}', max_execution_time=60)  # fmt: skip
            await store.add_job(job)
            await bus.send(SUBMITTED_QUEUE, encode(JobSubmitted.of(job)))
            stored = await store.get_job(job.id)
            assert stored is not None
            await ledger.assign(stored, "ex")
            events = [
                JobEvent(job.id, EventKind.RUNNING, 1, "ex"),
                JobEvent(job.id, EventKind.LOG, 1, "ex", seq=0, data="hi\n"),
                JobEvent(job.id, EventKind.RESULT, 1, "ex", data='"r"'),
                JobEvent(job.id, EventKind.FINISHED, 1, "ex", status=JobStatus.COMPLETED),
            ]
            body = encode(JobEvents(job.id, events))
            await bus.send(EVENTS_QUEUE, body)
            await ledger.apply_all(decode(JobEvents, body).events)
            await updates.get()
            await store.get_job(job.id)

        for n in range(WARMUP):
            await one(n)
        seconds = []
        for n in range(WARMUP, WARMUP + jobs):
            started = time.process_time()
            await one(n)
            seconds.append(time.process_time() - started)
        await bus.close()
        await store.close()
    return seconds


def run(root: Path, jobs: int) -> list[float]:
    """Each job's CPU seconds, in a fresh process with checkout `root`'s packages."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(jobs)],
        env=environment(root), capture_output=True, text=True, check=True,
    )  # fmt: skip
    seconds: list[float] = json.loads(done.stdout)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: does it still run")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(asyncio.run(_path(args.child))))
        return
    if args.quick:
        args.jobs, args.rounds = 20, 1
    trees = {"this": ROOT}
    if args.baseline:
        trees = {"baseline": args.baseline.resolve(), "this": ROOT}
    what = f"{args.rounds} x {args.jobs} no-op jobs through store, ledger and bus"
    print(f"{what}; {load()} at the start")
    means: dict[str, list[float]] = {name: [] for name in trees}
    every: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, root in trees.items():
            seconds = run(root, args.jobs)
            means[name].append(statistics.fmean(seconds))
            every[name].extend(seconds)
    for name, rounds in means.items():
        ms = sorted(1e6 * s for s in every[name])
        q1, p50, q3 = statistics.quantiles(ms, n=4)
        print(f"  {name} ({trees[name]}): CPU {1e6 * statistics.median(rounds):.0f} us a job "
              f"(rounds {', '.join(f'{1e6 * r:.0f}' for r in rounds)}); per job p50 {p50:.0f} us "
              f"({q1:.0f}-{q3:.0f})")  # fmt: skip
    print(f"{load()} at the end")


if __name__ == "__main__":
    main()
