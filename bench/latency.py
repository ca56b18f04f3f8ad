"""Submit-to-Completed latency and throughput of a no-op program on `qrt dev`,
next to the same program run in a fresh Python interpreter per job, the two interleaved round
by round (qrt jobs, a fresh one, qrt jobs, ...; a qrt burst, a fresh burst, ...).

    python bench/latency.py [--rounds 10] [--jobs 20] [--burst 200] [--throughput-rounds 3]
                            [--concurrency 32] [--fresh-burst N] [--quick]

Prints numbers; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
PROGRAMS = HERE / "programs"
sys.path.insert(0, str(HERE.parent))

from bench.common import free_port, load, percentile, summary  # noqa: E402

__all__ = ["PROGRAMS", "run_burst", "run_firehose", "run_one", "run_paced", "start_dev"]


def start_dev(
    data_dir: str, capacity: int, programs: Path = PROGRAMS
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "QRT_EXECUTOR_CAPACITY": str(capacity), "QRT_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "qrt_cli", "dev", "--port", str(port),
               "--data-dir", data_dir, "--programs-dir", str(programs)]  # fmt: skip
    process = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 180  # a machine busy with other work imports slowly
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("qrt dev did not start")


async def run_one(http: aiohttp.ClientSession, recorded: bool = True) -> tuple[float, float]:
    """Submit a no-op job and follow it to the end over its websocket, whose closing message
    is the job's final status.

    Returns the latency the client saw and, with `recorded`, the one the platform recorded
    (created to ended; reading it costs a request more, so throughput runs leave it out).
    """
    started = time.perf_counter()
    async with http.post("/jobs", json={"programId": "noop"}) as response:
        job_id = (await response.json())["id"]
    async with http.ws_connect(f"/stream/jobs/{job_id}") as ws:
        while (message := await ws.receive()).type is aiohttp.WSMsgType.TEXT:
            pass
    seen = time.perf_counter() - started
    assert message.type is aiohttp.WSMsgType.CLOSE, (job_id, message)
    assert message.extra == "Completed", (job_id, message.extra)
    if not recorded:
        return seen, float("nan")
    async with http.get(f"/jobs/{job_id}") as response:
        job = await response.json()
    assert job["status"] == "Completed", job
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    ended = datetime.strptime(job["ended"], fmt) - datetime.strptime(job["created"], fmt)
    return seen, ended.total_seconds()


async def run_burst(
    http: aiohttp.ClientSession, count: int, concurrency: int
) -> tuple[list[tuple[float, float]], float]:
    """`count` jobs from `concurrency` clients at once: each job's latencies, and the seconds
    the whole burst took."""
    gate = asyncio.Semaphore(concurrency)

    async def limited() -> tuple[float, float]:
        async with gate:
            return await run_one(http, recorded=False)

    started = time.perf_counter()
    results = await asyncio.gather(*(limited() for _ in range(count)))
    return list(results), time.perf_counter() - started


async def run_paced(
    http: aiohttp.ClientSession, count: int, rate: float
) -> tuple[list[float], float, float]:
    """`count` jobs submitted at a steady `rate` per second whatever happens to earlier ones
    (an open loop, as independent users arrive), each followed over its websocket to the end.

    Returns each job's latency, the jobs/s that ended (submit of the first to end of the last),
    and how far behind its schedule the latest submit started (seconds; large when the client
    itself could not keep up).
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    lag = 0.0

    async def one(at: float) -> float:
        nonlocal lag
        await asyncio.sleep(max(0.0, at - loop.time()))
        lag = max(lag, loop.time() - at)
        seen, _ = await run_one(http, recorded=False)
        return seen

    latencies = await asyncio.gather(*(one(started + i / rate) for i in range(count)))
    return list(latencies), count / (loop.time() - started), lag


async def run_firehose(http: aiohttp.ClientSession, count: int, concurrency: int) -> float:
    """Submit `count` jobs from `concurrency` clients without watching each one, and wait
    until none is pending: the seconds from the first submit until all had ended (to within
    the 20 ms the wait polls at). Asserts that every one of them completed."""
    gate = asyncio.Semaphore(concurrency)

    async def submit() -> str:
        async with gate, http.post("/jobs", json={"programId": "noop"}) as response:
            job_id: str = (await response.json())["id"]
            return job_id

    started = time.perf_counter()
    ids = set(await asyncio.gather(*(submit() for _ in range(count))))
    while True:
        async with http.get("/jobs", params={"pending": "true", "limit": "1"}) as response:
            if (await response.json())["count"] == 0:
                break
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    async with http.get("/jobs", params={"limit": str(count)}) as response:
        jobs = {job["id"]: job["status"] for job in (await response.json())["jobs"]}
    assert all(jobs.get(job_id) == "Completed" for job_id in ids), "a job did not complete"
    return elapsed


FRESH = [sys.executable, str(HERE / "fresh_interpreter.py"), str(PROGRAMS), "noop.noop", "{}"]
"""A no-op job the way a platform without a warm pool runs it: a fresh interpreter."""


def fresh_one() -> float:
    """Seconds one job takes in a fresh interpreter."""
    started = time.perf_counter()
    subprocess.run(FRESH, check=True, capture_output=True)
    return time.perf_counter() - started


def fresh_burst(count: int, parallel: int) -> float:
    """Seconds `count` fresh-interpreter jobs take, `parallel` at a time."""
    started = time.perf_counter()
    running: list[subprocess.Popen[bytes]] = []
    launched = 0
    while launched < count or running:
        for process in [p for p in running if p.poll() is not None]:
            assert process.returncode == 0, process.returncode
            running.remove(process)
        while launched < count and len(running) < parallel:
            running.append(subprocess.Popen(FRESH, stdout=subprocess.DEVNULL))
            launched += 1
        time.sleep(0.005)
    return time.perf_counter() - started


async def compare(url: str, args: argparse.Namespace) -> None:
    """qrt dev at `url` against a fresh interpreter per job, interleaved round by round: each
    round `args.jobs` qrt jobs one at a time then one fresh-interpreter job; then, for
    `args.throughput_rounds` rounds, a qrt burst then a fresh-interpreter burst."""
    parallel = os.cpu_count() or 2
    async with aiohttp.ClientSession(base_url=url) as http:
        for _ in range(10):  # warm up connections and the pool
            await run_one(http)
        await asyncio.to_thread(fresh_one)  # and the page cache for the fresh interpreter
        pairs: list[tuple[float, float]] = []
        fresh: list[float] = []
        for _ in range(args.rounds):
            pairs += [await run_one(http) for _ in range(args.jobs)]
            fresh.append(await asyncio.to_thread(fresh_one))
        print(f"one job at a time, {args.rounds} rounds of {args.jobs} qrt jobs + 1 fresh:")
        print(summary("  qrt dev (client view)", [p[0] for p in pairs]))
        print(summary("  qrt dev (created->ended)", [p[1] for p in pairs]))
        print(summary("  fresh interpreter per job", fresh))

        qrt_rates: list[float] = []
        fresh_rates: list[float] = []
        burst_latencies: list[float] = []
        fresh_count = args.fresh_burst or parallel * 4
        for _ in range(args.throughput_rounds):
            results, elapsed = await run_burst(http, args.burst, args.concurrency)
            burst_latencies += [r[0] for r in results]
            qrt_rates.append(args.burst / elapsed)
            elapsed = await asyncio.to_thread(fresh_burst, fresh_count, parallel)
            fresh_rates.append(fresh_count / elapsed)
    print(f"throughput, {args.throughput_rounds} rounds of a qrt burst ({args.burst} jobs, "
          f"{args.concurrency} clients) then a fresh burst ({fresh_count} jobs, {parallel} "
          "at once):")  # fmt: skip
    print(summary("  qrt dev, latency in the bursts", burst_latencies))
    for name, rates in (("qrt dev", qrt_rates), ("fresh interpreter", fresh_rates)):
        listed = ", ".join(f"{r:.1f}" for r in rates)
        print(f"  {name + ' jobs/s':<46} median {percentile(rates, 50):7.1f} (rounds {listed})")
    p50 = percentile([p[0] for p in pairs], 50)
    ratio = percentile(qrt_rates, 50) / percentile(fresh_rates, 50)
    print(f"{'p50, qrt vs fresh interpreter':<48} {p50 * 1000:7.1f} ms vs "
          f"{percentile(fresh, 50) * 1000:7.1f} ms")  # fmt: skip
    print(f"{'throughput ratio, qrt / fresh interpreter':<48} {ratio:7.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10, help="rounds of qrt + fresh jobs")
    parser.add_argument("--jobs", type=int, default=20, help="qrt jobs a round, one at a time")
    parser.add_argument("--burst", type=int, default=200, help="qrt jobs in a throughput burst")
    parser.add_argument("--throughput-rounds", type=int, default=3, help="bursts of each")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    parser.add_argument("--fresh-burst", type=int, help="fresh jobs a burst (4 a core)")
    parser.add_argument("--capacity", type=int, default=8, help="QRT_EXECUTOR_CAPACITY")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: does it still run")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.jobs, args.burst, args.throughput_rounds = 2, 3, 10, 1
        args.concurrency, args.fresh_burst = 4, 2
    print(f"executor capacity {args.capacity}; {load()} at the start")
    with tempfile.TemporaryDirectory() as data_dir:
        process, url = start_dev(data_dir, args.capacity)
        try:
            asyncio.run(compare(url, args))
        finally:
            process.terminate()
            process.wait(30)
    print(f"{load()} at the end")


if __name__ == "__main__":
    main()
