"""The backends a job may ask for: the simulators every executor offers, and the devices
executors find."""

from __future__ import annotations

from collections.abc import Iterable

DEFAULT_BACKEND = "aer_simulator"

MAX_SHOTS = 100_000
"""The most shots one circuit may take: what every backend's configuration advertises as
`max_shots` (IBM's value), and what the bundled programs refuse beyond."""

SIMULATORS: dict[str, dict[str, str]] = {
    "aer_simulator": {},
    "aer_simulator_statevector": {"method": "statevector"},
}
"""Backend name to the `AerSimulator` options that make it."""


def backend_names(devices: Iterable[str]) -> list[str]:
    """Every backend name, the simulators first, then `devices` (a device named like a
    simulator is not one of them)."""
    return sorted(SIMULATORS) + sorted(set(devices) - set(SIMULATORS))
