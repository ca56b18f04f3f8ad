"""CPU time per no-op job on `qrt dev`: user + system time of every process of its tree
(including the job processes its zygote reaped) before and after `--jobs` jobs run one at a
time, by process. Steadier than latency on a machine loaded by other work.

    python bench/cpu_per_job.py [--jobs 300] [--rounds 2] [--baseline DIR]

With `--baseline DIR` the rounds alternate between that checkout's `qrt dev` and this one's.
Prints milliseconds of CPU per job; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench.memory import dev_of, noops, parents_of, role, tree  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system time of `pid`, and of the children it reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own, reaped = fields[11:13], fields[13:15]
    return sum(int(v) for v in own) / TICK, sum(int(v) for v in reaped) / TICK


def by_role(pid: int) -> dict[str, float]:
    pids = tree(pid)
    parents = parents_of(pids)
    seconds: dict[str, float] = {}
    for each in pids:
        which = role(each, parents)
        if which == "warm job process":
            continue  # counted in the zygote's reaped children once it ends
        own, reaped = cpu_seconds(each)
        seconds[which] = seconds.get(which, 0.0) + own
        if reaped:
            seconds[f"{which}: reaped"] = seconds.get(f"{which}: reaped", 0.0) + reaped
    return seconds


def measure(root: Path, jobs: int) -> tuple[dict[str, float], list[float]]:
    """Milliseconds of CPU per job by process role, and each job's latency in seconds."""
    with dev_of(root) as (process, url):
        before = by_role(process.pid)
        latencies = asyncio.run(noops(url, jobs))
        after = by_role(process.pid)
    per_job = {k: 1000 * (after[k] - before.get(k, 0.0)) / jobs for k in after}
    return {k: v for k, v in per_job.items() if v > 0}, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    args = parser.parse_args()
    trees = {"this": ROOT}
    if args.baseline:
        trees = {"baseline": args.baseline.resolve(), "this": ROOT}
    cpu: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    latency: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, root in trees.items():
            per_job, seconds = measure(root, args.jobs)
            cpu[name].append(per_job)
            latency[name].extend(seconds)
    print(f"no-op jobs on qrt dev, one at a time, {args.rounds} x {args.jobs} a checkout, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    for name, rounds in cpu.items():
        totals = [sum(r.values()) for r in rounds]
        ms = sorted(1000 * s for s in latency[name])
        q1, p50, q3 = statistics.quantiles(ms, n=4)
        p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
        print(f"  {name} ({trees[name]}): CPU {statistics.median(totals):.1f} ms a job "
              f"(rounds {', '.join(f'{t:.1f}' for t in totals)}); latency p50 {p50:.1f} ms "
              f"({q1:.1f}-{q3:.1f}), p99 {p99:.1f} ms")  # fmt: skip
        for which in sorted(rounds[0], key=lambda k: -rounds[0][k]):
            values = ", ".join(f"{r.get(which, 0.0):.2f}" for r in rounds)
            print(f"    {which:40} {values} ms a job")


if __name__ == "__main__":
    main()
