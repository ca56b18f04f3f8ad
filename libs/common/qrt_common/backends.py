"""The simulator backends every executor offers."""

from __future__ import annotations

DEFAULT_BACKEND = "aer_simulator"

SIMULATORS: dict[str, dict[str, str]] = {
    "aer_simulator": {},
    "aer_simulator_statevector": {"method": "statevector"},
}
"""Backend name to the `AerSimulator` options that make it."""
