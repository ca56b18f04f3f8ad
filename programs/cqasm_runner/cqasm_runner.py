"""cQASM runner: runs a cQASM 1.0 or 3.0 program, unchanged, on the job's backend."""

from qrt_common.cqasm import parse, sample


def main(backend, user_messenger, circuit, shots=1024, include_raw_data=False):
    """Return `{"results": counts, "raw_data": per-shot bitstrings}` as a 2300 device does.

    On a device backend the text goes to the device as it is; on a simulator it is parsed
    and run here.
    """
    if not isinstance(circuit, str):
        raise TypeError("circuit must be a string of cQASM")
    if hasattr(backend, "run_cqasm"):
        payload = backend.run_cqasm(circuit, shots, include_raw_data)
        return {"results": payload["results"], "raw_data": payload.get("raw_data") or []}
    outcome = sample(backend, parse(circuit), shots, raw_data=include_raw_data)
    return {"results": outcome.counts, "raw_data": outcome.raw_data or []}
