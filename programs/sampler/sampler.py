"""SamplerV2 (IBM Qiskit Runtime's program `sampler`): samples the pubs' circuits on the job's
backend and returns a PrimitiveResult of BitArrays, one per classical register."""

from qrt_common.primitive_runs import run_sampler


def main(backend, user_messenger, **params):
    """Params as qiskit-ibm-runtime's SamplerV2 sends them: `pubs` ([circuit, parameter values,
    shots]), `options`, `version` (2), `support_qiskit`."""
    return run_sampler(backend, params)
