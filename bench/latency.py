"""Submit-to-Completed latency and throughput of a no-op program on `qrt dev`,
next to the same program run in a fresh Python interpreter per job.

    python bench/latency.py [--jobs 200] [--burst 400] [--concurrency 32]

Prints numbers; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
PROGRAMS = HERE / "programs"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (f"{name:<44} p50 {percentile(ms, 50):7.1f} ms ({percentile(ms, 25):.1f}-"
            f"{percentile(ms, 75):.1f})   p99 {percentile(ms, 99):7.1f} ms"
            f"   mean {statistics.fmean(ms):7.1f} ms   (n={len(ms)})")  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_dev(
    data_dir: str, capacity: int, programs: Path = PROGRAMS
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "QRT_EXECUTOR_CAPACITY": str(capacity), "QRT_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "qrt_cli", "dev", "--port", str(port),
               "--data-dir", data_dir, "--programs-dir", str(programs)]  # fmt: skip
    process = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
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


async def platform_numbers(url: str, jobs: int, burst: int, concurrency: int) -> dict[str, float]:
    async with aiohttp.ClientSession(base_url=url) as http:
        for _ in range(10):  # warm up connections and the pool
            await run_one(http)
        pairs = [await run_one(http) for _ in range(jobs)]
        print(summary("qrt dev, one job at a time (client view)", [p[0] for p in pairs]))
        print(summary("qrt dev, one job at a time (created->ended)", [p[1] for p in pairs]))

        results, elapsed = await run_burst(http, burst, concurrency)
        print(summary(f"qrt dev, {burst} jobs, {concurrency} clients", [r[0] for r in results]))
        print(f"{'qrt dev throughput':<44} {burst / elapsed:7.1f} jobs/s")
        return {"p50": percentile([p[0] for p in pairs], 50), "rate": burst / elapsed}


def fresh_numbers(jobs: int, parallel: int) -> dict[str, float]:
    command = [sys.executable, str(HERE / "fresh_interpreter.py"), str(PROGRAMS), "noop.noop", "{}"]
    latencies = []
    for _ in range(jobs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        latencies.append(time.perf_counter() - started)
    print(summary("fresh interpreter per job, one at a time", latencies))
    started = time.perf_counter()
    burst = parallel * 4
    running = [subprocess.Popen(command, stdout=subprocess.DEVNULL) for _ in range(parallel)]
    done = 0
    while done < burst:
        for i, process in enumerate(running):
            if process.poll() is not None:
                done += 1
                if done + sum(p.poll() is None for p in running) < burst:
                    running[i] = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        time.sleep(0.005)
    rate = burst / (time.perf_counter() - started)
    print(f"{f'fresh interpreter throughput ({parallel} at once)':<44} {rate:7.1f} jobs/s")
    return {"p50": percentile(latencies, 50), "rate": rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200, help="sequential jobs for latency")
    parser.add_argument("--burst", type=int, default=400, help="jobs for throughput")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    parser.add_argument("--capacity", type=int, default=8, help="QRT_EXECUTOR_CAPACITY")
    parser.add_argument("--fresh-jobs", type=int, default=10, help="fresh-interpreter jobs")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; executor capacity {args.capacity}")
    with tempfile.TemporaryDirectory() as data_dir:
        process, url = start_dev(data_dir, args.capacity)
        try:
            qrt = asyncio.run(platform_numbers(url, args.jobs, args.burst, args.concurrency))
        finally:
            process.terminate()
            process.wait(30)
    fresh = fresh_numbers(args.fresh_jobs, os.cpu_count() or 2)
    print(f"{'p50 overhead, qrt vs fresh interpreter':<44} "
          f"{qrt['p50'] * 1000:7.1f} ms vs {fresh['p50'] * 1000:7.1f} ms")  # fmt: skip
    print(f"{'throughput ratio, qrt / fresh interpreter':<44} {qrt['rate'] / fresh['rate']:7.1f}x")


if __name__ == "__main__":
    main()
