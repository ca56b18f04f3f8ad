"""How much one user's heavy reads hold up everyone else on `qrt dev`: the event loop's lag and
the gap between the executor's heartbeats while many clients read a job with a large output.

A job with `--interims` interim results (and as many log chunks) is written to the store; then
`--streams` websocket clients replay its results stream, and after them `--gets` clients fetch
`GET /services/{id}/{execution}/interim-results` at once. The clients run in a process of their
own, so only the server's work shows in the lag. Meanwhile a probe in the server's loop sleeps
5 ms at a time and records how much later it woke; the heartbeat gap is the longest time between
two heartbeats of the executor as the bus delivered them (the scheduler loses an executor after
QRT_HEARTBEAT_TIMEOUT, 10 s by default).

    python bench/heavy_reads.py [--interims 100000] [--streams 40] [--gets 20] [--quick]

Also printed: the longest garbage collection (which stops the loop too) and the server's CPU
time (all its threads) in each phase, a steadier measure of the work than wall time on a busy
machine. The server listens on a free port (its simulated device is off). There are no
competitors here to interleave: the phases follow each other on one server. Prints numbers, the
load average at the start and end; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import load, percentile  # noqa: E402
from qrt_cli.dev import Platform  # noqa: E402
from qrt_common.jobs import Job, JobStatus, new_job_id, transition  # noqa: E402
from qrt_common.messages import HEARTBEAT_TOPIC  # noqa: E402
from qrt_common.settings import Settings  # noqa: E402

PROGRAMS = ROOT / "programs"
PROGRAM = "planqk-starter"
PROBE_SECONDS = 0.005


class LagProbe:
    """Sleeps PROBE_SECONDS at a time in the loop and keeps how late each wake-up was."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(PROBE_SECONDS)
            self.lags.append(time.perf_counter() - before - PROBE_SECONDS)

    def take(self) -> list[float]:
        lags, self.lags = self.lags, []
        return lags

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class Collections:
    """The longest garbage collection, which stops the loop as any other work does."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._started = 0.0
        gc.callbacks.append(self._observe)

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.longest = max(self.longest, time.perf_counter() - self._started)

    def take(self) -> float:
        longest, self.longest = self.longest, 0.0
        return longest


class HeartbeatGaps:
    """The longest time between two heartbeats the bus delivered."""

    def __init__(self) -> None:
        self.last = time.monotonic()
        self.longest = 0.0

    async def on_heartbeat(self, body: dict[str, Any]) -> None:
        now = time.monotonic()
        self.longest = max(self.longest, now - self.last)
        self.last = now

    def take(self) -> float:
        longest = max(self.longest, time.monotonic() - self.last)
        self.longest = 0.0
        return longest


def fill(db_path: Path, job_id: str, interims: int) -> None:
    """`interims` interim results and as many log lines for `job_id`, written in one go."""
    db = sqlite3.connect(db_path)
    with db:
        db.executemany(
            "INSERT INTO interims (job_id, attempt, idx, data) VALUES (?, 1, ?, ?)",
            ((job_id, i, f'{{"sum": {i}, "partial": [{i}, {i + 1}]}}') for i in range(interims)),
        )
        db.executemany(
            "INSERT INTO logs (job_id, attempt, seq, text, written) VALUES (?, 1, ?, ?, 0)",
            ((job_id, i, f"step {i} of the computation\n") for i in range(interims)),
        )
        db.execute("INSERT INTO results (job_id, data) VALUES (?, ?)", (job_id, '{"sum": 1}'))
    db.close()


async def _streams(url: str, job_id: str, streams: int) -> tuple[float, int]:
    started = time.perf_counter()
    async with aiohttp.ClientSession(base_url=url) as http:

        async def follow() -> int:
            frames = 0
            async with http.ws_connect(f"/stream/jobs/{job_id}", max_msg_size=0) as ws:
                async for message in ws:
                    if message.type is aiohttp.WSMsgType.TEXT:
                        frames += 1
            return frames

        frames = await asyncio.gather(*(follow() for _ in range(streams)))
    return time.perf_counter() - started, min(frames)


async def _gets(url: str, job_id: str, gets: int) -> tuple[float, int]:
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(base_url=url, timeout=timeout) as http:

        async def fetch() -> int:
            path = f"/services/{PROGRAM}/{job_id}/interim-results"
            async with http.get(path) as response:
                assert response.status == 200, await response.text()
                return len(await response.json())

        counts = await asyncio.gather(*(fetch() for _ in range(gets)))
    return time.perf_counter() - started, min(counts)


def client(url: str, job_id: str, kind: str, count: int) -> tuple[float, int]:
    """Runs in a process of its own: `count` clients of `kind` at once."""
    work = _streams if kind == "streams" else _gets
    return asyncio.run(work(url, job_id, count))


def report(
    name: str, lags: list[float], gap: float, gc_pause: float, cpu: float, wall: float, items: int
) -> None:
    ordered = sorted(lags) or [0.0]
    p50, p99 = (percentile(ordered, q) for q in (50, 99))
    print(
        f"{name:<22} loop lag max {ordered[-1] * 1000:6.0f} ms, p99 {p99 * 1000:5.0f} ms, "
        f"p50 {p50 * 1000:5.1f} ms; "
        f"longest gc {gc_pause * 1000:4.0f} ms; longest heartbeat gap {gap:5.2f} s; "
        f"server CPU {cpu:5.1f} s; clients done in {wall:5.1f} s ({items} items each)"
    )


async def measure(interims: int, streams: int, gets: int) -> None:
    with tempfile.TemporaryDirectory(prefix="qrt-bench-") as scratch:
        settings = Settings(
            host="127.0.0.1",
            port=0,
            data_dir=Path(scratch) / "data",
            programs_dir=PROGRAMS,
            dev_device=False,
            log_level="WARNING",
        )
        platform = await Platform.start(settings)
        try:
            job = Job(
                id=new_job_id(),
                program_id=PROGRAM,
                backend="aer_simulator",
                params="{}",
                max_execution_time=60,
            )
            await platform.store.add_job(job)
            for status in (JobStatus.RUNNING, JobStatus.COMPLETED):
                moved = transition(job, status, executor_id="bench")
                await platform.store.replace_job(moved, expected=job.status)
                job = moved
            fill(settings.data_dir / "qrt.db", job.id, interims)
            gaps = HeartbeatGaps()
            await platform.bus.subscribe(HEARTBEAT_TOPIC, gaps.on_heartbeat)
            probe = LagProbe()
            probe.start()
            collections = Collections()
            loop = asyncio.get_running_loop()
            context = multiprocessing.get_context("spawn")
            with context.Pool(1) as pool:
                cpu = time.process_time()
                await asyncio.sleep(3)
                used, cpu = time.process_time() - cpu, time.process_time()
                report("idle (3 s)", probe.take(), gaps.take(), collections.take(), used, 3.0, 0)
                for kind, count in (("streams", streams), ("gets", gets)):
                    args = (platform.url, job.id, kind, count)
                    wall, items = await loop.run_in_executor(None, pool.apply, client, args)
                    await asyncio.sleep(0.1)  # a wake-up the phase delayed is counted in it
                    name = f"{count} websocket streams" if kind == "streams" else f"{count} GETs"
                    used, cpu = time.process_time() - cpu, time.process_time()
                    lags, gap, gc_pause = probe.take(), gaps.take(), collections.take()
                    report(name, lags, gap, gc_pause, used, wall, items)
            await probe.stop()
        finally:
            await platform.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interims", type=int, default=100_000)
    parser.add_argument("--streams", type=int, default=40)
    parser.add_argument("--gets", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: does it still run")
    args = parser.parse_args()
    if args.quick:
        args.interims, args.streams, args.gets = 1000, 2, 2
    print(f"{load()} at the start")
    print(f"a job with {args.interims} interim results and {args.interims} log chunks")
    asyncio.run(measure(args.interims, args.streams, args.gets))
    print(f"{load()} at the end")


if __name__ == "__main__":
    main()
