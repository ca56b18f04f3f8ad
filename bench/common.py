"""What the benchmarks share: free ports, competitors run in turn (A B A B ...), and lines with
a median, its spread and the machine's load.

One way to do each thing: a benchmark takes its port from `free_port`, its scratch directories
from `scratch_directory`, times competitors with `interleaved`, prints them with `summary` (or
`spread` inside a line of its own) and says the load average with `load`.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.mesh import free_port  # noqa: E402

__all__ = [
    "free_port",
    "interleaved",
    "load",
    "paired_difference",
    "percentile",
    "scratch_directory",
    "spread",
    "summary",
]


def scratch_directory() -> str:
    """A new directory under the temporary directory, removed with what it holds when this
    process exits (a benchmark's data, programs and job working directories)."""
    path = tempfile.mkdtemp(prefix="qrt-bench-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`th percentile (0-100) of `values`, the nearest rank (no interpolation)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def spread(seconds: Sequence[float], unit: str = "ms") -> str:
    """`seconds` as 'p50 X (p25-p75 A-B) p99 Y unit (n=N)', in `unit` (ms or us)."""
    scale = {"ms": 1e3, "us": 1e6, "s": 1.0}[unit]
    values = [s * scale for s in seconds]
    return (
        f"p50 {percentile(values, 50):7.2f} {unit} (p25-p75 {percentile(values, 25):.2f}-"
        f"{percentile(values, 75):.2f}, p99 {percentile(values, 99):.2f}, n={len(values)})"
    )


def summary(name: str, seconds: Sequence[float], unit: str = "ms") -> str:
    """One line: `name`, then the `spread` of `seconds`."""
    return f"{name:<48} {spread(seconds, unit)}"


def load() -> str:
    """The 1-minute load average and the core count, to say with any number."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"


def interleaved(
    actions: Sequence[Callable[[], object]], runs: int, warmup: int = 10
) -> list[list[float]]:
    """Seconds of each of `actions`, run in turn (A B A B ...) so all see the same load: after
    `min(warmup, runs)` untimed rounds, `runs` timed ones. Returns one list per action."""
    for _ in range(min(warmup, runs)):
        for action in actions:
            action()
    times: list[list[float]] = [[] for _ in actions]
    for _ in range(runs):
        for action, kept in zip(actions, times, strict=True):
            started = time.perf_counter()
            action()
            kept.append(time.perf_counter() - started)
    return times


def paired_difference(a: Sequence[float], b: Sequence[float]) -> str:
    """The round-by-round difference `a - b` in ms as a median with p25-p75: steadier than the
    difference of two medians when the load drifts (both of a round see the same load)."""
    differences = [1e3 * (x - y) for x, y in zip(a, b, strict=True)]
    q1, median, q3 = (percentile(differences, q) for q in (25, 50, 75))
    return f"{median:+.2f} ms (p25-p75 {q1:+.2f}-{q3:+.2f})"
