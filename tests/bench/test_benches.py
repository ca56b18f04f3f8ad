"""The benchmarks still run: each at its `--quick` sizes in a process of its own (numbers are
printed, never asserted; `make test-bench`, as they take tens of seconds each on a busy machine),
and the shared helpers measure what they say (in the main suite)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import interleaved, paired_difference, percentile, spread

ROOT = Path(__file__).resolve().parents[2]

BENCHES = ["auth", "device", "heavy_reads", "ibm_client", "latency", "mesh", "primitives",
           "store_path"]  # fmt: skip


@pytest.mark.bench
@pytest.mark.timeout(660)
@pytest.mark.parametrize("name", BENCHES)
def test_bench_runs_at_quick_sizes(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--quick"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("load average") == 2, done.stdout  # at the start and the end
    assert "p50" in done.stdout, done.stdout


def test_interleaved_runs_the_competitors_in_turn() -> None:
    calls: list[str] = []
    times = interleaved([lambda: calls.append("a"), lambda: calls.append("b")], 3, warmup=1)
    assert calls == ["a", "b"] * 4
    assert [len(kept) for kept in times] == [3, 3]


def test_spread_and_paired_difference() -> None:
    seconds = [i / 1000 for i in range(1, 102)]  # 1 ms .. 101 ms
    assert percentile(seconds, 50) == 0.051
    assert spread(seconds).startswith("p50   51.00 ms (p25-p75 26.00-76.00, p99 100.00, n=101)")
    differences = paired_difference([0.003, 0.005, 0.010], [0.001, 0.002, 0.004])
    assert differences == "+3.00 ms (p25-p75 +2.00-+6.00)"
