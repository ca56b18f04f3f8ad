"""The device's calibration: values that drift with time and are renewed by a calibration.

The values at a moment (`Snapshot`) travel to the worker process, which turns them into the
noise model it simulates with (`noise.py`); this module imports no simulator.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from qrt_common.wire import Message

from .config import DeviceConfig

DRIFT_STEP_SECONDS = 60.0
"""Drift is applied in steps, so a noise model is built at most once a minute."""


class Snapshot(Message, frozen=True):
    """Calibration values at one moment."""

    t1_us: tuple[float, ...]
    t2_us: tuple[float, ...]
    single_qubit_fidelity: tuple[float, ...]
    two_qubit_fidelity: dict[tuple[int, int], float]
    readout_error: tuple[float, ...]


class Calibration:
    """The last calibration (when, and its values) and its drift since."""

    def __init__(self, config: DeviceConfig, rng: random.Random, now: float) -> None:
        self._config = config
        self._rng = rng
        self.epoch = 0
        self.calibrate(now)

    def calibrate(self, now: float) -> None:
        """Calibrate at time `now`: fresh values near the configured ones, no drift yet."""
        config, rng = self._config, self._rng
        jitter = config.calibration.jitter

        def near(value: float) -> float:
            return value * (1 + rng.uniform(-jitter, jitter))

        t1 = tuple(near(v) for v in config.per_qubit("t1_us"))
        t2 = tuple(min(near(v), 2 * t) for v, t in zip(config.per_qubit("t2_us"), t1, strict=True))
        self.base = Snapshot(
            t1_us=t1,
            t2_us=t2,
            single_qubit_fidelity=tuple(
                _fidelity_near(f, near) for f in config.per_qubit("single_qubit_fidelity")
            ),
            two_qubit_fidelity={
                edge: _fidelity_near(f, near) for edge, f in config.edge_fidelities().items()
            },
            readout_error=tuple(min(near(e), 0.5) for e in config.per_qubit("readout_error")),
        )
        # How fast each qubit (and edge) drifts, fixed until the next calibration.
        self._pace = [rng.uniform(0.5, 1.5) for _ in range(config.qubits)]
        self._edge_pace = {edge: rng.uniform(0.5, 1.5) for edge in config.topology}
        self.at = now
        self.epoch += 1

    def _step(self, now: float) -> int:
        return int(max(now - self.at, 0.0) // DRIFT_STEP_SECONDS)

    def snapshot(self, now: float) -> Snapshot:
        """The values at time `now`, drifted since the last calibration."""
        hours = self._step(now) * DRIFT_STEP_SECONDS / 3600
        rate = self._config.calibration.drift_per_hour * hours
        base = self.base
        t1 = tuple(t / (1 + rate * p) for t, p in zip(base.t1_us, self._pace, strict=True))
        return Snapshot(
            t1_us=t1,
            t2_us=tuple(
                min(t / (1 + rate * p), 2 * t1[q])
                for q, (t, p) in enumerate(zip(base.t2_us, self._pace, strict=True))
            ),
            single_qubit_fidelity=tuple(
                1 - (1 - f) * (1 + rate * p)
                for f, p in zip(base.single_qubit_fidelity, self._pace, strict=True)
            ),
            two_qubit_fidelity={
                edge: 1 - (1 - f) * (1 + rate * self._edge_pace[edge])
                for edge, f in base.two_qubit_fidelity.items()
            },
            readout_error=tuple(
                min(e * (1 + rate * p), 0.5)
                for e, p in zip(base.readout_error, self._pace, strict=True)
            ),
        )

    def version(self, now: float) -> tuple[int, int]:
        """Which values `snapshot(now)` gives: equal versions, equal values (a noise model built
        from them can be reused)."""
        return self.epoch, self._step(now)

    def metrics(self, now: float) -> dict[str, Any]:
        """The values at `now` in the protocol's `get_dynamic` metric format."""
        values = self.snapshot(now)

        def per_qubit(numbers: tuple[float, ...]) -> dict[str, Any]:
            return {
                "__labels__": ["qubit"],
                **{f"q{q}": round(v, 6) for q, v in enumerate(numbers)},
            }

        pairs: dict[str, Any] = {"__labels__": ["qubit1", "qubit2"]}
        for (a, b), fidelity in values.two_qubit_fidelity.items():
            pairs.setdefault(f"q{a}", {})[f"q{b}"] = round(fidelity, 6)
        return {
            "t1_in_us": per_qubit(values.t1_us),
            "t2_in_us": per_qubit(values.t2_us),
            "single_qubit_gate_fidelity": per_qubit(values.single_qubit_fidelity),
            "two_qubit_gate_fidelity": pairs,
            "readout_fidelity": per_qubit(tuple(1 - e for e in values.readout_error)),
            "last_calibration_timestamp": self.at,
            "seconds_since_calibration": round(max(now - self.at, 0.0), 3),
        }


def _fidelity_near(fidelity: float, near: Callable[[float], float]) -> float:
    return max(0.0, min(1.0, 1 - near(1 - fidelity)))
