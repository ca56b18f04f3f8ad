"""V2 primitive requests built by the stock qiskit-ibm-runtime client's own code: the params its
SamplerV2 and EstimatorV2 submit (`BasePrimitiveV2._run`), caught before they leave."""

from __future__ import annotations

import warnings
from typing import Any

from qiskit import QuantumCircuit
from qiskit_ibm_runtime import EstimatorV2, SamplerV2


def bell() -> QuantumCircuit:
    """The 2-qubit Bell circuit, measured."""
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    return circuit


class _Catcher:
    """Stands in for the primitive's service: keeps what `_run` would submit."""

    def __init__(self) -> None:
        self.program_id = ""
        self.inputs: dict[str, Any] = {}

    def _run(
        self,
        program_id: str,
        options: dict[str, Any],
        inputs: dict[str, Any],
        calibration_id: str | None = None,
        dry_run: bool = False,
    ) -> None:
        self.program_id, self.inputs = program_id, inputs


def submitted_params(
    program: str, backend: Any, options: dict[str, Any] | None, pubs: list[Any], **run: Any
) -> dict[str, Any]:
    """The params (before RuntimeEncoder) the client submits for `primitive.run(pubs, **run)`
    with `options`, made by its own option classes and pub coercion. `backend` is the mode the
    client is given: a simulator skips the client's own ISA check, so the server's is seen."""
    kind = {"sampler": SamplerV2, "estimator": EstimatorV2}[program]
    catcher = _Catcher()
    with warnings.catch_warnings():
        # SamplerV2 and EstimatorV2 are deprecated in favour of client-side ones (0.50), and
        # pubs of different shots (0.48): both still what the client sends today.
        warnings.simplefilter("ignore", DeprecationWarning)
        primitive: Any = kind(mode=backend, options=options)
        primitive._service = catcher
        primitive.run(pubs, **run)
    assert catcher.program_id == program
    return catcher.inputs
