"""EstimatorV2 (IBM Qiskit Runtime's program `estimator`): estimates the expectation values of
the pubs' observables on the job's backend and returns a PrimitiveResult of evs and stds."""

from qrt_common.primitive_runs import run_estimator


def main(backend, user_messenger, **params):
    """Params as qiskit-ibm-runtime's EstimatorV2 sends them: `pubs` ([circuit, observables,
    parameter values, precision]), `options`, `version` (2), `support_qiskit`,
    `resilience_level`."""
    return run_estimator(backend, params)
