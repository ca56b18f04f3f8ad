"""Resident memory of an idle qrt: the proportional set size (PSS: each page shared by n processes
counts 1/n in each, so the parts add up to what the whole costs) of every process, from
/proc/<pid>/smaps_rollup, with its RSS and USS (its private pages: what ending it would free),
after the platform started and ran 20 no-op jobs.

    python bench/memory.py [--baseline DIR] [--rounds 3] [--services] [--device-job]

By default it measures `qrt dev` (one process for gateway, scheduler, executor and store, its
zygote and waiting job processes, the dev device, and the device's worker if it runs: it
starts with the device's first session). With `--device-job` each round then runs two jobs on
the device (`cqasm-runner`, a Bell pair on Starmon-5), prints how long each took as its client
saw it (the first waits for the device's worker to start), and measures again. With `--services`
it measures the services run apart as "Running the services separately" shows (`qrt gateway`,
`qrt scheduler`, `qrt executor` with its zygote and job processes, `qrt device` and its worker,
on RabbitMQ at 127.0.0.1:5672 or QRT_TEST_RABBITMQ_URL, SQLite store).

With `--baseline DIR` (another checkout, e.g. `git worktree add /tmp/mem-base <commit>`) each
round measures that checkout's platform and this one's in turn (A B A B). Prints, per kind of
process (those that exist: the column n counts them), the median over rounds and the spread
(min-max), the total, and the load average before and after; asserts nothing about them. The
environment passes through (QRT_WARM_POOL_SIZE=1 measures a smaller pool).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, scratch_directory  # noqa: E402
from bench.latency import run_one  # noqa: E402

JOB_PROCESS = "warm job process"
JOB_NAMESPACE_INIT = "its PID namespace's cat"
BELL = "version 3.0\nqubit[5] q\nbit[5] b\nH q[2]\nCNOT q[2], q[0]\nb = measure q\n"
"""A device job's circuit (Starmon-5 couples qubits 0 and 2)."""
DEVICE_JOBS = 2


class Memory(NamedTuple):
    """One process's resident memory, MiB."""

    pss: float
    rss: float
    uss: float


Sample = dict[str, list[Memory]]
"""Each kind of process (its role) to the memory of each process of that kind."""


def package_roots(root: Path) -> list[str]:
    """The directories holding qrt's packages in checkout `root` (qrt_cli, qrt_common, ...)."""
    found = {init.parent.parent for init in root.glob("*/qrt_*/__init__.py")}
    found |= {init.parent.parent for init in root.glob("*/*/qrt_*/__init__.py")}
    return sorted(str(path) for path in found)


def environment(root: Path) -> dict[str, str]:
    """This environment, with checkout `root`'s packages first on the path."""
    path = os.pathsep.join([*package_roots(root), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "QRT_LOG_LEVEL": "WARNING"}


def children(pid: int) -> list[int]:
    """The children of `pid` (none once it ended)."""
    found = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(children(current))
    return pids


def memory(pid: int) -> Memory:
    """PSS, RSS and USS (private clean + dirty) of `pid` in MiB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value)
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return Memory(fields.get("Pss", 0) / 1024, fields.get("Rss", 0) / 1024, uss / 1024)


def command_of(pid: int) -> list[str]:
    """The command line of `pid`; empty for a process that has ended meanwhile."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []
    return [word.decode(errors="replace") for word in raw if word]


def parents_of(pids: list[int]) -> dict[int, int]:
    """Each child of `pids` to its parent."""
    return {child: pid for pid in pids for child in children(pid)}


def role(pid: int, parents: dict[int, int]) -> str:
    """What process `pid` is: `qrt <command>` or its module, and JOB_PROCESS (or, for the `cat`
    holding a job process's PID namespace, JOB_NAMESPACE_INIT) for the zygote's."""
    parent = parents.get(pid)
    if parent is not None and "qrt_executor.zygote" in command_of(parent):
        # Where job processes get PID namespaces, each has a `cat` there as process 1.
        return JOB_NAMESPACE_INIT if command_of(pid)[:1] == [shutil.which("cat")] else JOB_PROCESS
    words = command_of(pid)
    if "-m" not in words:
        return " ".join(words)[:60]
    module, *rest = words[words.index("-m") + 1 :]
    if module == "qrt_cli" and rest:
        return f"qrt {rest[0]}"
    return module


def sample(top: list[int]) -> Sample:
    """The memory of each process of the trees rooted at `top`, by role."""
    pids = [pid for root in top for pid in tree(root)]
    parents = parents_of(pids)
    found: Sample = {}
    for pid in pids:
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            found.setdefault(role(pid, parents), []).append(memory(pid))
    return found


async def device_jobs(url: str, jobs: int = DEVICE_JOBS) -> list[float]:
    """Seconds each of `jobs` Bell jobs on the dev device took, one at a time, as the client
    saw them (submitted to ended, over the job's websocket)."""
    body = {"programId": "cqasm-runner", "backend": "Starmon-5",
            "params": {"circuit": BELL, "shots": 100}}  # fmt: skip
    seconds = []
    async with aiohttp.ClientSession(url) as http:
        for _ in range(jobs):
            started = time.perf_counter()
            async with http.post("/jobs", json=body) as response:
                job_id = (await response.json())["id"]
            async with http.ws_connect(f"/stream/jobs/{job_id}") as ws:
                while (message := await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                    pass
            seconds.append(time.perf_counter() - started)
            assert message.extra == "Completed", (job_id, message.extra)
    return seconds


def programs_of(root: Path, directory: Path, device_job: bool) -> Path:
    """The programs the platform serves: the no-op job's, and with `device_job` checkout
    `root`'s `cqasm-runner` too (copied into `directory`)."""
    if not device_job:
        return HERE / "programs"
    shutil.copytree(HERE / "programs" / "noop", directory / "noop")
    shutil.copytree(root / "programs" / "cqasm_runner", directory / "cqasm_runner")
    (directory / "programs.ini").write_text(
        "[programs]\nnoop=noop.noop\ncqasm-runner=cqasm_runner.cqasm_runner\n"
    )
    return directory


async def noops(url: str, jobs: int) -> list[float]:
    """Seconds each of `jobs` no-op jobs took, one at a time, on the platform at `url`."""
    async with aiohttp.ClientSession(url) as http:
        return [(await asyncio.wait_for(run_one(http, recorded=False), 30))[0]
                for _ in range(jobs)]  # fmt: skip


def warm_up(url: str, jobs: int = 20, timeout: float = 120) -> None:
    """Run `jobs` no-op jobs once the platform at `url` takes them."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            asyncio.run(noops(url, jobs))
            return
        except (OSError, aiohttp.ClientError, TimeoutError, KeyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@contextlib.contextmanager
def dev_of(root: Path, device_job: bool = False) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A `qrt dev` of checkout `root` (its process and URL), once it ran 20 no-op jobs."""
    data_dir = scratch_directory()
    programs = programs_of(root, Path(scratch_directory()), device_job)
    port = free_port()
    command = [sys.executable, "-m", "qrt_cli", "dev", "--port", str(port),
               "--data-dir", data_dir, "--programs-dir", str(programs)]  # fmt: skip
    process = subprocess.Popen(command, env=environment(root), cwd=data_dir,
                               stdout=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        warm_up(url)
        yield process, url
    finally:
        process.terminate()
        process.wait(60)


@contextlib.contextmanager
def services_of(root: Path, device_job: bool = False) -> Iterator[tuple[list[int], str]]:
    """`qrt device`, `qrt scheduler`, `qrt executor` (using that device) and `qrt gateway` of
    checkout `root`, on RabbitMQ in a namespace of their own (their pids, and the gateway's
    URL), once they ran 20 no-op jobs."""
    from tests.support.mesh import Mesh

    with tempfile.TemporaryDirectory(prefix="qrt-bench-") as directory:
        programs = programs_of(root, Path(directory) / "programs", device_job)
        mesh = Mesh(Path(directory), programs)
        mesh.env.update(environment(root))
        rep = f"tcp://127.0.0.1:{free_port()}"
        pub = f"tcp://127.0.0.1:{free_port()}"
        try:
            mesh.start("device", "device", QRT_DEVICE_REP_ADDRESS=rep, QRT_DEVICE_PUB_ADDRESS=pub)
            mesh.scheduler()
            mesh.executor(QRT_DEVICES=rep)
            url = mesh.gateway()
            warm_up(url)
            yield [process.pid for process in mesh.processes.values()], url
        finally:
            mesh.stop_all()
            asyncio.run(mesh.delete_namespace())


class Round(NamedTuple):
    """What one round measured of one checkout's platform."""

    idle: Sample
    """After 20 no-op jobs."""
    device_jobs: list[float]
    """Seconds of each device job, in order (with `--device-job`)."""
    after_device_jobs: Sample | None
    """After the device jobs too (with `--device-job`)."""


def measure(root: Path, services: bool, device_job: bool) -> Round:
    """The memory of each process of an idle platform run from checkout `root` (and with
    `device_job`, the device jobs' seconds and the memory after them)."""
    with contextlib.ExitStack() as stack:
        if services:
            top, url = stack.enter_context(services_of(root, device_job))
        else:
            process, url = stack.enter_context(dev_of(root, device_job))
            top = [process.pid]
        time.sleep(3)  # the pool forks its waiting processes again
        idle = sample(top)
        if not device_job:
            return Round(idle, [], None)
        seconds = asyncio.run(device_jobs(url))
        time.sleep(3)
        return Round(idle, seconds, sample(top))


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} ({min(values):.1f}-{max(values):.1f})"


def report(name: str, root: Path, rounds: list[Sample]) -> None:
    """Print the median and spread over `rounds` of each role's total PSS (and its processes'),
    and of all processes together."""
    totals = [sum(m.pss for ms in one.values() for m in ms) for one in rounds]
    private = [sum(m.uss for ms in one.values() for m in ms) for one in rounds]
    print(f"{name} ({root}): PSS {spread(totals)} MiB over {len(rounds)} rounds"
          f" ({', '.join(f'{t:.0f}' for t in totals)})")  # fmt: skip
    print(f"  {'process':28} {'n':>2}  {'PSS, all, MiB':>20}  {'PSS each':>20}  "
          f"{'RSS each':>8}  {'USS each':>8}")  # fmt: skip
    roles = {role for one in rounds for role in one}
    order = sorted(roles, key=lambda r: -statistics.median(
        sum(m.pss for m in one.get(r, [])) for one in rounds))  # fmt: skip
    for which in order:
        each = [m for one in rounds for m in one.get(which, [])]
        counts = [len(one.get(which, [])) for one in rounds]
        total = [sum(m.pss for m in one.get(which, [])) for one in rounds]
        count = f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"
        print(f"  {which:28} {count:>2}  {spread(total):>20}  "
              f"{spread([m.pss for m in each]):>20}  "
              f"{statistics.median(m.rss for m in each):8.1f}  "
              f"{statistics.median(m.uss for m in each):8.1f}")  # fmt: skip
    processes = statistics.median(sum(len(ms) for ms in one.values()) for one in rounds)
    print(f"  {'all':28} {processes:>2g}  {spread(totals):>20}  {'':>20}  {'':>8}  "
          f"{statistics.median(private):8.1f}   (USS: all private pages)")  # fmt: skip


def report_device_jobs(name: str, rounds: list[Round]) -> None:
    """Print how long the device jobs took, the first and the others, over `rounds`."""
    first = [one.device_jobs[0] for one in rounds]
    then = [s for one in rounds for s in one.device_jobs[1:]]
    print(f"{name}: a Bell job on the device, as its client saw it: the first {spread(first)} s,"
          f" the next {spread(then)} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--services", action="store_true",
                        help="the services run apart on RabbitMQ, not `qrt dev`")  # fmt: skip
    parser.add_argument("--device-job", action="store_true",
                        help="then run jobs on the device, and measure again")  # fmt: skip
    args = parser.parse_args()
    trees = {"this": ROOT}
    if args.baseline:
        trees = {"baseline": args.baseline.resolve(), "this": ROOT}
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    results: dict[str, list[Round]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, root in trees.items():
            results[name].append(measure(root, args.services, args.device_job))
    print("load average after:  {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    what = "services run apart" if args.services else "qrt dev"
    print(f"idle {what} after 20 no-op jobs; PSS median (min-max); RSS and USS: medians")
    for name, root in trees.items():
        report(name, root, [one.idle for one in results[name]])
    if not args.device_job:
        return
    print(f"\nthe same, after {DEVICE_JOBS} jobs on the device, one at a time")
    for name in trees:
        report_device_jobs(name, results[name])
    for name, root in trees.items():
        report(name, root, [one.after_device_jobs or {} for one in results[name]])


if __name__ == "__main__":
    main()
