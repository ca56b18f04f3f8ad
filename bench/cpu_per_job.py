"""CPU time per no-op job on `qrt dev`: user + system time of every process of its tree
(including the job processes its zygote reaped) before and after `--jobs` jobs run one at a
time, by process. Steadier than latency on a machine loaded by other work.

The tree is not all a job costs the machine: the kernel does some of it in its own threads
(a network namespace is torn down by a kworker, RCU callbacks free what namespaces held), and
the benchmark's client takes its share. So each round also counts the CPU time of every kernel
thread (children of kthreadd) and of this client, and the whole machine's busy time from
/proc/stat (everything but idle and iowait), which includes other people's work on a shared
machine: `machine - tree - client - kernel threads` is what the rest of the machine did
meanwhile, printed so a change cannot hide its cost in kernel threads unseen.

    python bench/cpu_per_job.py [--jobs 300] [--rounds 2] [--baseline DIR]

With `--baseline DIR` the rounds alternate between that checkout's `qrt dev` and this one's.
Prints milliseconds of CPU per job; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import time
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


def machine_busy() -> float:
    """Seconds of CPU the whole machine spent busy since boot (all but idle and iowait), from
    /proc/stat: user, nice, system, irq, softirq, steal."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICK


def kernel_threads() -> float:
    """Seconds of CPU of every kernel thread (kthreadd, pid 2, and its children) alive now."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if entry == "2" or fields[1] == "2":
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def client_seconds() -> float:
    """CPU seconds of this process (the benchmark's client)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def by_role(pid: int) -> dict[str, float]:
    pids = tree(pid)
    parents = parents_of(pids)
    seconds: dict[str, float] = {}
    for each in pids:
        which = role(each, parents)
        if which == "warm job process":
            continue  # counted in the zygote's reaped children once it ends
        try:
            own, reaped = cpu_seconds(each)
        except OSError:  # ended meanwhile (a job's `cat`): counted where it was reaped
            continue
        seconds[which] = seconds.get(which, 0.0) + own
        if reaped:
            seconds[f"{which}: reaped"] = seconds.get(f"{which}: reaped", 0.0) + reaped
    return seconds


def measure(root: Path, jobs: int) -> tuple[dict[str, float], list[float]]:
    """Milliseconds of CPU per job by process role, and each job's latency in seconds."""
    with dev_of(root) as (process, url):
        before = by_role(process.pid)
        outside = machine_busy(), kernel_threads(), client_seconds()
        latencies = asyncio.run(noops(url, jobs))
        # A job's end is reported before its process has exited: the last one's is reaped,
        # and counted, by now.
        time.sleep(0.5)
        outside_after = machine_busy(), kernel_threads(), client_seconds()
        after = by_role(process.pid)
    per_job = {k: 1000 * (after[k] - before.get(k, 0.0)) / jobs for k in after}
    pairs = zip(outside, outside_after, strict=True)
    machine, kernel, client = (1000 * (b - a) / jobs for a, b in pairs)
    tree = sum(v for v in per_job.values() if v > 0)
    per_job[OUTSIDE + "kernel threads"] = kernel
    per_job[OUTSIDE + "this client"] = client
    per_job[OUTSIDE + "rest of the machine"] = machine - tree - kernel - client
    return {k: v for k, v in per_job.items() if v > 0 or k.startswith(OUTSIDE)}, latencies


OUTSIDE = "(not qrt dev's) "
"""Marks the counts outside qrt dev's process tree, left out of its total."""


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
    loads: list[float] = []
    for _ in range(args.rounds):
        for name, root in trees.items():
            per_job, seconds = measure(root, args.jobs)
            loads.append(os.getloadavg()[0])
            cpu[name].append(per_job)
            latency[name].extend(seconds)
    print(f"no-op jobs on qrt dev, one at a time, {args.rounds} x {args.jobs} a checkout, "
          f"load average after each run {', '.join(f'{v:.1f}' for v in loads)}")  # fmt: skip
    for name, rounds in cpu.items():
        totals = [sum(v for k, v in r.items() if not k.startswith(OUTSIDE)) for r in rounds]
        kernel = [r[OUTSIDE + "kernel threads"] for r in rounds]
        with_kernel = [t + k for t, k in zip(totals, kernel, strict=True)]
        ms = sorted(1000 * s for s in latency[name])
        q1, p50, q3 = statistics.quantiles(ms, n=4)
        p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
        print(f"  {name} ({trees[name]}): CPU {statistics.median(totals):.1f} ms a job "
              f"(rounds {', '.join(f'{t:.1f}' for t in totals)}); latency p50 {p50:.1f} ms "
              f"({q1:.1f}-{q3:.1f}), p99 {p99:.1f} ms")  # fmt: skip
        print(f"    with the kernel threads' CPU: {statistics.median(with_kernel):.1f} ms a job "
              f"(rounds {', '.join(f'{t:.1f}' for t in with_kernel)})")  # fmt: skip
        for which in sorted(rounds[0], key=lambda k: (k.startswith(OUTSIDE), -rounds[0][k])):
            values = ", ".join(f"{r.get(which, 0.0):.2f}" for r in rounds)
            print(f"    {which:40} {values} ms a job")


if __name__ == "__main__":
    main()
