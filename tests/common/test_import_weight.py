"""What idle processes hold: the processes that never simulate (the device's front, and `qrt dev`'s
gateway, scheduler and executor) import no Qiskit, Aer, numpy or scipy, which would cost each
about 60 MiB (bench/memory.py measures it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

SERVICES = ["qrt_gateway.main", "qrt_scheduler.main", "qrt_executor.main"]
HEAVY = ("qiskit", "qiskit_aer", "qiskit_ibm_runtime", "numpy", "scipy", "lark", "libqasm")


@pytest.mark.parametrize(
    "modules",
    [
        # The device's own process: it answers requests; its worker parses and simulates.
        ["qrt_device.main", "qrt_device.service", "qrt_device.supervisor"],
        # `qrt dev`'s own process: gateway, scheduler, executor (its zygote imports Qiskit).
        ["qrt_cli.main", "qrt_cli.dev", *SERVICES],
    ],
)
def test_a_process_that_never_simulates_imports_no_qiskit(modules: list[str]) -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(' '.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert loaded == []


def test_the_device_worker_loads_what_it_simulates_with_before_its_first_circuit() -> None:
    code = (
        "import sys, qrt_device.worker\n"
        f"print(' '.join(sorted(m for m in {HEAVY[:2] + HEAVY[3:]!r} if m in sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    assert loaded == sorted(["qiskit", "qiskit_aer", "numpy", "scipy", "lark", "libqasm"])
