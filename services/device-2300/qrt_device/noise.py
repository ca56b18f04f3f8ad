"""Noise models from calibration values: what the worker process simulates with."""

from __future__ import annotations

from typing import Any

from qiskit.quantum_info import Kraus
from qiskit_aer.noise import (
    NoiseModel,
    QuantumError,
    ReadoutError,
    depolarizing_error,
    thermal_relaxation_error,
)

from .calibration import Snapshot
from .config import DeviceConfig

ONE_QUBIT_INSTRUCTIONS = frozenset({
    "id", "h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "sxdg", "rx", "ry", "rz", "u",
    "unitary",
})  # fmt: skip
"""Names of the one-qubit instructions cQASM circuits turn into."""
TWO_QUBIT_INSTRUCTIONS = frozenset({"cx", "cz", "swap", "cp", "unitary"})
CACHED_MODELS = 64


class NoiseModels:
    """Noise models of one device, built once per calibration version and instruction set (a
    model naming only the instructions in use keeps Aer's per-run setup short)."""

    def __init__(self, config: DeviceConfig) -> None:
        self._config = config
        self._models: dict[tuple[tuple[int, int], frozenset[str]], NoiseModel] = {}

    def get(
        self, version: tuple[int, int], values: Snapshot, instructions: frozenset[str]
    ) -> NoiseModel:
        """The model of calibration `values` (whose version is `version`, as
        `Calibration.version` gives it) for circuits made of `instructions`."""
        key = (version, instructions)
        model = self._models.get(key)
        if model is None:
            if len(self._models) >= CACHED_MODELS:
                self._models.clear()
            model = self._models[key] = noise_model(values, self._config, instructions)
        return model


def _as_kraus(error: QuantumError) -> QuantumError:
    # One Kraus channel instead of a mixture of composed circuits: Aer converts the noise
    # model at every run, and this form converts (and simulates) about ten times faster.
    return QuantumError(Kraus(error.to_quantumchannel()))


def noise_model(values: Snapshot, config: DeviceConfig, instructions: frozenset[str]) -> NoiseModel:
    """Depolarizing errors matching the gate fidelities, thermal relaxation from T1 and T2
    over the gate times, and readout errors, on the instructions in `instructions`."""
    one = sorted(instructions & ONE_QUBIT_INSTRUCTIONS)
    two = sorted(instructions & TWO_QUBIT_INSTRUCTIONS)
    timing = config.calibration
    model = NoiseModel()

    def relaxation(q: int, ns: float) -> Any:
        return thermal_relaxation_error(values.t1_us[q] * 1e3, values.t2_us[q] * 1e3, ns)

    for q in range(config.qubits):
        if one:
            # Depolarizing with p = 2 (1 - F) has average gate fidelity F.
            p = min(2 * (1 - values.single_qubit_fidelity[q]), 1.0)
            error = depolarizing_error(p, 1).compose(relaxation(q, timing.single_qubit_gate_ns))
            model.add_quantum_error(_as_kraus(error), one, [q])
        if "measure" in instructions:
            e = values.readout_error[q]
            model.add_readout_error(ReadoutError([[1 - e, e], [e, 1 - e]]), [q])
    if two:
        for (a, b), fidelity in values.two_qubit_fidelity.items():
            p = min(4 / 3 * (1 - fidelity), 1.0)
            ns = timing.two_qubit_gate_ns
            for pair in ((a, b), (b, a)):
                relax = relaxation(pair[1], ns).tensor(relaxation(pair[0], ns))
                error = depolarizing_error(p, 2).compose(relax)
                model.add_quantum_error(_as_kraus(error), two, list(pair))
    return model
