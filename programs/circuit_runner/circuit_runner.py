"""Circuit runner: transpiles circuits for the backend, runs them, returns the Result as a dict."""

from qiskit import QuantumCircuit, transpile

from qrt_common.errors import InvalidInput
from qrt_common.simulation import checked_shots, succeeded


def main(
    backend,
    user_messenger,
    circuits,
    initial_layout=None,
    seed_transpiler=None,
    optimization_level=None,
    transpiler_options=None,
    shots=1024,
    seed_simulator=None,
    memory=False,
):
    """Run `circuits` (one QuantumCircuit or a list) and return `Result.to_dict()`.

    Raises InvalidInput for circuits that are not circuits and shots that are not an integer
    from 1 to MAX_SHOTS; SimulationFailed when Aer could not run an experiment."""
    if isinstance(circuits, QuantumCircuit):
        circuits = [circuits]
    if (
        not isinstance(circuits, list)
        or not circuits
        or not all(isinstance(c, QuantumCircuit) for c in circuits)
    ):
        raise InvalidInput(
            "params.circuits: must be a QuantumCircuit or a non-empty list of them "
            "(RuntimeEncoder-encoded)",
            field="params.circuits",
        )
    shots = checked_shots(shots)
    transpiled = transpile(
        circuits,
        backend=backend,
        initial_layout=initial_layout,
        seed_transpiler=seed_transpiler,
        optimization_level=optimization_level,
        **(transpiler_options or {}),
    )
    run_options = {"shots": shots, "memory": memory}
    if seed_simulator is not None:
        run_options["seed_simulator"] = seed_simulator
    # Aer reports an experiment it could not run inside the Result it returns.
    result = succeeded(backend.run(transpiled, **run_options).result())
    return result.to_dict()
