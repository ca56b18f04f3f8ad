"""Resident memory of an idle `qrt dev`: the proportional set size (PSS: each page shared by n
processes counts 1/n in each, so the parts add up to what the whole costs) of every process of
its tree, from /proc/<pid>/smaps_rollup, after it started and ran a few no-op jobs.

    python bench/memory.py [--baseline DIR] [--rounds 2]

With `--baseline DIR` (another checkout) each round measures that checkout's `qrt dev` and this
one's in turn. Prints MiB; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.latency import free_port, run_one  # noqa: E402


def package_roots(root: Path) -> list[str]:
    """The directories holding qrt's packages in checkout `root` (qrt_cli, qrt_common, ...)."""
    found = {init.parent.parent for init in root.glob("*/qrt_*/__init__.py")}
    found |= {init.parent.parent for init in root.glob("*/*/qrt_*/__init__.py")}
    return sorted(str(path) for path in found)


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                todo.extend(int(child) for child in children)
        except OSError:
            continue
    return pids


def parents_of(pids: list[int]) -> dict[int, int]:
    """Each child of `pids` to its parent."""
    return {
        int(child): pid
        for pid in pids
        for task in os.listdir(f"/proc/{pid}/task")
        for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()
    }


def pss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def role(pid: int, parents: dict[int, int]) -> str:
    """What process `pid` is: its module or command, and 'job process' for the zygote's."""
    raw = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    words = [word.decode(errors="replace") for word in raw if word]
    parent = parents.get(pid)
    if parent is not None and "qrt_executor.zygote" in Path(f"/proc/{parent}/cmdline").read_text():
        return "warm job process"
    if "-m" in words:
        return words[words.index("-m") + 1] + (" dev" if "dev" in words else "")
    return " ".join(words)[:60]


async def noops(url: str, jobs: int) -> list[float]:
    """Seconds each of `jobs` no-op jobs took, one at a time, on the `qrt dev` at `url`."""
    async with aiohttp.ClientSession(url) as http:
        return [(await run_one(http, recorded=False))[0] for _ in range(jobs)]


@contextlib.contextmanager
def dev_of(root: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A `qrt dev` of checkout `root` (its process and URL), once it ran 20 no-op jobs."""
    data_dir = tempfile.mkdtemp(prefix="qrt-bench-")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([*package_roots(root), os.environ.get("PYTHONPATH", "")]),
        "QRT_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "qrt_cli", "dev", "--port", str(port),
               "--data-dir", data_dir, "--programs-dir", str(HERE / "programs")]  # fmt: skip
    process = subprocess.Popen(command, env=env, cwd=data_dir)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                asyncio.run(noops(url, 20))
                break
            except (OSError, aiohttp.ClientError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield process, url
    finally:
        process.terminate()
        process.wait(60)


def measure(root: Path) -> dict[str, list[float]]:
    """PSS in MiB of each process of an idle `qrt dev` run from checkout `root`, by role."""
    with dev_of(root) as (process, _):
        time.sleep(3)  # the pool forks its waiting processes again
        pids = tree(process.pid)
        parents = parents_of(pids)
        roles: dict[str, list[float]] = {}
        for pid in pids:
            roles.setdefault(role(pid, parents), []).append(pss_mib(pid))
        return roles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    trees = {"this": ROOT}
    if args.baseline:
        trees = {"baseline": args.baseline.resolve(), "this": ROOT}
    totals: dict[str, list[float]] = {name: [] for name in trees}
    last: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for name, root in trees.items():
            roles = measure(root)
            totals[name].append(sum(sum(values) for values in roles.values()))
            last[name] = roles
    for name, roles in last.items():
        runs = ", ".join(f"{total:.0f}" for total in totals[name])
        print(f"{name} ({trees[name]}): idle qrt dev, PSS {statistics.median(totals[name]):.0f} MiB"
              f" (rounds: {runs})")  # fmt: skip
        for which, values in sorted(roles.items(), key=lambda item: -sum(item[1])):
            each = " + ".join(f"{value:.1f}" for value in values)
            print(f"  {which:40} {sum(values):7.1f} MiB  ({len(values)}: {each})")


if __name__ == "__main__":
    main()
