"""Jobs/s and submit-to-Completed latency through RabbitMQ: `qrt gateway`, `qrt scheduler` and
1, 2 or 4 `qrt executor` processes, with a no-op program.

Throughput is measured twice: with each client following its job over a websocket to the end
(as in the latency runs), and with the clients only submitting while one poller waits until
no job is pending (a batch of jobs checked afterwards). Latency under load is measured with
jobs arriving at a steady rate (`--rate`, an open loop: arrivals do not wait for earlier jobs),
each followed to its end; a closed loop of N clients would only measure its own queue
(N / throughput).

    python bench/mesh.py [--executors 1 2 4] [--rounds 2] [--jobs 50] [--burst 200]
                         [--concurrency 32] [--rate 100] [--paced 500] [--quick]

The executor counts are competitors: each round runs every count once, in turn (1 2 4 1 2 4),
each on a fresh mesh (free ports, a namespace of its own on the broker), and the rounds' samples
are pooled. Needs RabbitMQ on 127.0.0.1:5672 (or QRT_TEST_RABBITMQ_URL). Prints medians with
their spread and the load average; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import load, percentile, summary  # noqa: E402
from bench.latency import (  # noqa: E402
    PROGRAMS,
    run_burst,
    run_firehose,
    run_one,
    run_paced,
)
from tests.support.mesh import Mesh  # noqa: E402


async def measure(
    executors: int, args: argparse.Namespace, samples: dict[str, list[float]]
) -> None:
    """One round on a fresh mesh of `executors` executors; appends to `samples` by name:
    'one' and 'burst' and 'paced' (seconds per job), 'burst rate', 'firehose rate' and 'paced
    rate' (jobs/s), and 'lag' (seconds the paced submits fell behind)."""
    with tempfile.TemporaryDirectory() as root:
        mesh = Mesh(Path(root), PROGRAMS)
        mesh.env["QRT_LOG_LEVEL"] = "WARNING"
        mesh.env["QRT_HEARTBEAT_INTERVAL"] = "1"
        mesh.env["QRT_HEARTBEAT_TIMEOUT"] = "10"
        try:
            mesh.scheduler()
            for _ in range(executors):
                mesh.executor(capacity=args.capacity)
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
                pairs = [await run_one(http) for _ in range(args.jobs)]
                samples.setdefault("one", []).extend(p[0] for p in pairs)
                results, elapsed = await run_burst(http, args.burst, args.concurrency)
                samples.setdefault("burst", []).extend(r[0] for r in results)
                samples.setdefault("burst rate", []).append(args.burst / elapsed)
                elapsed = await run_firehose(http, args.burst, args.concurrency)
                samples.setdefault("firehose rate", []).append(args.burst / elapsed)
                latencies, ended, lag = await run_paced(http, args.paced, args.rate)
                samples.setdefault("paced", []).extend(latencies)
                samples.setdefault("paced rate", []).append(ended)
                samples.setdefault("lag", []).append(lag)
        finally:
            mesh.stop_all()
            await mesh.delete_namespace()


def rates(values: list[float]) -> str:
    listed = ", ".join(f"{v:.1f}" for v in values)
    return f"median {percentile(values, 50):7.1f} jobs/s (rounds {listed})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--executors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every executor count")
    parser.add_argument("--jobs", type=int, default=50, help="jobs one at a time, a round")
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--capacity", type=int, default=8, help="QRT_EXECUTOR_CAPACITY")
    parser.add_argument("--rate", type=float, default=100, help="arrivals per second")
    parser.add_argument("--paced", type=int, default=500, help="jobs arriving at --rate")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: does it still run")
    args = parser.parse_args()
    if args.quick:
        args.executors, args.rounds, args.jobs, args.burst = [1, 2], 1, 3, 10
        args.concurrency, args.rate, args.paced, args.capacity = 4, 20, 10, 2
    print(f"each executor's capacity {args.capacity}; {load()} at the start")
    samples: dict[int, dict[str, list[float]]] = {count: {} for count in args.executors}
    for _ in range(args.rounds):
        for count in args.executors:
            asyncio.run(measure(count, args, samples[count]))
    for count, got in samples.items():
        label = f"{count} executor(s)"
        print(f"{label}, {args.rounds} round(s):")
        print(summary("  one job at a time", got["one"]))
        print(summary(f"  {args.burst} jobs, {args.concurrency} clients", got["burst"]))
        print(f"  {'throughput, followed':<46} {rates(got['burst rate'])}")
        print(f"  {'throughput, submitted then awaited':<46} {rates(got['firehose rate'])}")
        print(summary(f"  {args.paced} jobs arriving at {args.rate:g}/s", got["paced"]))
        print(f"  {f'arriving at {args.rate:g}/s, ended':<46} {rates(got['paced rate'])}"
              f"   (submits up to {max(got['lag']) * 1000:.0f} ms behind schedule)")  # fmt: skip
    print(f"{load()} at the end")


if __name__ == "__main__":
    main()
