"""A quantum PlanQK program: an n-qubit GHZ circuit run on the job's backend.

data: {"n_qubits": 3}; params: {"shots": 1024, "seed": null} (as planqk.json declares them;
null is the default, as leaving the key out is).
"""

from typing import Any

from pydantic import BaseModel
from qiskit import QuantumCircuit, transpile

try:  # on qrt: the backend the execution asked for
    from qrt_executor.template import job_backend
except ImportError:  # elsewhere: a local simulator
    from qiskit_aer import AerSimulator as job_backend


class GhzResult(BaseModel):
    counts: dict[str, int]
    backend: str
    shots: int


def ghz(n_qubits: int) -> QuantumCircuit:
    circuit = QuantumCircuit(n_qubits, n_qubits)
    circuit.h(0)
    for qubit in range(1, n_qubits):
        circuit.cx(0, qubit)
    circuit.measure(range(n_qubits), range(n_qubits))
    return circuit


def _given(values: dict[str, Any], name: str, default: int) -> Any:
    value = values.get(name)
    return default if value is None else value


def run(data: dict[str, Any] | None = None, params: dict[str, Any] | None = None) -> GhzResult:
    data, params = data or {}, params or {}
    n_qubits = int(_given(data, "n_qubits", 3))
    shots = int(_given(params, "shots", 1024))
    if not 1 <= n_qubits <= 20:
        raise ValueError("n_qubits must be between 1 and 20")
    backend = job_backend()
    circuit = ghz(n_qubits)
    print(circuit.draw(output="text"))
    options = {"seed_simulator": params["seed"]} if params.get("seed") is not None else {}
    counts = backend.run(transpile(circuit, backend), shots=shots, **options).result().get_counts()
    return GhzResult(counts=counts, backend=backend.name, shots=shots)
