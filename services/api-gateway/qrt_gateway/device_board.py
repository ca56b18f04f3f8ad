"""What the gateway knows of the devices: the reports executors' heartbeats carry (a device's
static information, its calibration, whether it answers), the last one of each device, and a
bounded history of samples for the console's state-over-time charts."""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any, TypeGuard

from qrt_common.messages import DeviceReport

SAMPLE_SECONDS = 10.0
"""A device's history takes a sample at most this often (heartbeats come more often)."""
HISTORY_SAMPLES = 360
"""Samples kept per device: an hour at one every SAMPLE_SECONDS."""


@dataclass(frozen=True, slots=True)
class Sample:
    """A device at one moment: whether it answered, its queue, and its calibration's qubit
    means."""

    at: float
    """Epoch seconds."""
    reachable: bool
    queued: int | None
    """Jobs of every instance waiting for the device; None when the store could not tell."""
    running: int | None
    mean_t1_us: float | None
    mean_t2_us: float | None
    mean_readout_fidelity: float | None


def is_number(value: Any) -> TypeGuard[int | float]:
    """Whether a calibration value is a number (JSON's true and false are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def per_qubit(calibration: dict[str, Any], metric: str, nqubits: int) -> list[float | None]:
    """A per-qubit metric of a `get_dynamic` payload (`{"__labels__": ["qubit"], "q0": ...}`)
    as a list by qubit index; None where the device gave no number."""
    values = calibration.get(metric)
    found: list[float | None] = [None] * nqubits
    if not isinstance(values, dict):
        return found
    for qubit in range(nqubits):
        value = values.get(f"q{qubit}")
        if is_number(value):
            found[qubit] = float(value)
    return found


def per_pair(calibration: dict[str, Any], metric: str) -> dict[tuple[int, int], float]:
    """A two-qubit metric (`{"__labels__": ["qubit1", "qubit2"], "q0": {"q2": ...}}`) by
    qubit pair; pairs whose names are not `q<index>` or values not numbers are left out."""
    values = calibration.get(metric)
    found: dict[tuple[int, int], float] = {}
    if not isinstance(values, dict):
        return found
    for first, row in values.items():
        if first == "__labels__" or not isinstance(row, dict):
            continue
        for second, value in row.items():
            a, b = _index(first), _index(second)
            if a is not None and b is not None and is_number(value):
                found[(a, b)] = float(value)
    return found


def _index(name: str) -> int | None:
    digits = name[1:] if name.startswith("q") else ""
    return int(digits) if digits.isdigit() else None


def _mean(values: list[float | None]) -> float | None:
    numbers = [v for v in values if v is not None]
    return round(fmean(numbers), 6) if numbers else None


Queue = Callable[[str], Awaitable[tuple[int, int]]]
"""How many jobs are queued for and running on a backend (given its name)."""


@dataclass(slots=True)
class DeviceBoard:
    """The last report of each device and when it came, and each device's history."""

    reports: dict[str, tuple[DeviceReport, float]] = field(default_factory=dict)
    """Device name to its last report and when it came (monotonic seconds)."""
    history: dict[str, deque[Sample]] = field(default_factory=dict)

    async def seen(self, reports: list[DeviceReport], queue: Queue) -> None:
        """Take the device reports of one heartbeat; a device due for a sample has its queue
        counted by `queue` too."""
        now, wall = time.monotonic(), time.time()
        for report in reports:
            name, nqubits = report.static.name, report.static.nqubits
            self.reports[name] = (report, now)
            samples = self.history.setdefault(name, deque(maxlen=HISTORY_SAMPLES))
            if samples and wall - samples[-1].at < SAMPLE_SECONDS:
                if samples[-1].mean_t1_us is not None or not report.calibration:
                    continue
                samples.pop()  # taken before the first calibration reading: this one instead
            queued = running = None
            with contextlib.suppress(Exception):  # a store hiccup costs a sample's counts only
                queued, running = await queue(name)
            calibration = report.calibration
            samples.append(
                Sample(
                    at=wall,
                    reachable=report.reachable,
                    queued=queued,
                    running=running,
                    mean_t1_us=_mean(per_qubit(calibration, "t1_in_us", nqubits)),
                    mean_t2_us=_mean(per_qubit(calibration, "t2_in_us", nqubits)),
                    mean_readout_fidelity=_mean(
                        per_qubit(calibration, "readout_fidelity", nqubits)
                    ),
                )
            )

    def last(self, name: str) -> tuple[DeviceReport, float] | None:
        """The last report of device `name` and when it came (monotonic seconds), or None."""
        return self.reports.get(name)
