"""Jobs/s and submit-to-Completed latency through RabbitMQ: `qrt gateway`, `qrt scheduler` and
1, 2 or 4 `qrt executor` processes, with a no-op program.

Throughput is measured twice: with each client following its job over a websocket to the end
(as in the latency runs), and with the clients only submitting while one poller waits until
no job is pending (a batch of jobs checked afterwards). Latency under load is measured with
jobs arriving at a steady rate (`--rate`, an open loop: arrivals do not wait for earlier jobs),
each followed to its end; a closed loop of N clients would only measure its own queue
(N / throughput).

    python bench/mesh.py [--executors 1 2 4] [--jobs 100] [--burst 400] [--concurrency 32]
                         [--rate 100] [--paced 1000]

Needs RabbitMQ on 127.0.0.1:5672 (or QRT_TEST_RABBITMQ_URL). Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.latency import (  # noqa: E402
    PROGRAMS,
    percentile,
    run_burst,
    run_firehose,
    run_one,
    run_paced,
    summary,
)
from tests.support.mesh import Mesh  # noqa: E402


async def measure(
    executors: int,
    jobs: int,
    burst: int,
    concurrency: int,
    capacity: int,
    rate: float,
    paced: int,
) -> None:
    with tempfile.TemporaryDirectory() as root:
        mesh = Mesh(Path(root), PROGRAMS)
        mesh.env["QRT_LOG_LEVEL"] = "WARNING"
        mesh.env["QRT_HEARTBEAT_INTERVAL"] = "1"
        mesh.env["QRT_HEARTBEAT_TIMEOUT"] = "10"
        try:
            mesh.scheduler()
            for _ in range(executors):
                mesh.executor(capacity=capacity)
            url = mesh.gateway()
            async with aiohttp.ClientSession(base_url=url) as http:
                deadline = time.monotonic() + 60
                while True:  # until every executor has joined and warmed up
                    try:
                        await asyncio.wait_for(run_one(http), 10)
                        break
                    except (AssertionError, TimeoutError):
                        if time.monotonic() > deadline:
                            raise
                await asyncio.sleep(2)
                for _ in range(20):
                    await run_one(http)
                pairs = [await run_one(http) for _ in range(jobs)]
                label = f"{executors} executor(s)"
                print(summary(f"{label}, one job at a time", [p[0] for p in pairs]))
                results, elapsed = await run_burst(http, burst, concurrency)
                print(summary(f"{label}, {burst} jobs, {concurrency} clients",
                              [r[0] for r in results]))  # fmt: skip
                p50 = percentile([r[0] for r in results], 50) * 1000
                print(f"{label:<44} {burst / elapsed:7.1f} jobs/s   (p50 under load {p50:.0f} ms)")
                elapsed = await run_firehose(http, burst, concurrency)
                print(f"{f'{label}, submitted, then awaited':<44} {burst / elapsed:7.1f} jobs/s")
                latencies, ended, lag = await run_paced(http, paced, rate)
                print(summary(f"{label}, {paced} jobs arriving at {rate:g}/s", latencies))
                print(f"{f'{label}, arriving at {rate:g}/s':<44} {ended:7.1f} jobs/s ended"
                      f"   (submits up to {lag * 1000:.0f} ms behind schedule)")  # fmt: skip
        finally:
            mesh.stop_all()
            await mesh.delete_namespace()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--burst", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--capacity", type=int, default=8, help="QRT_EXECUTOR_CAPACITY")
    parser.add_argument("--rate", type=float, default=100, help="arrivals per second")
    parser.add_argument("--paced", type=int, default=1000, help="jobs arriving at --rate")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; each executor's capacity {args.capacity}")
    for count in args.executors:
        asyncio.run(
            measure(count, args.jobs, args.burst, args.concurrency, args.capacity, args.rate,
                    args.paced)
        )  # fmt: skip


if __name__ == "__main__":
    main()
