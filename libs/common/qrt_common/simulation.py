"""What a bundled program's run on Aer may ask for and what its failure means: the shots a
circuit may take, and a simulation Aer could not finish as the job's one-line reason.

Aer reports a failed experiment inside a Result that still comes back (`success` False, the
reason in `status`), and its V2 primitives raise `AerError`; neither says that the job hit its
memory limit (RLIMIT_AS makes Aer's allocations fail: "Cannot allocate memory by
posix_memalign", "std::bad_alloc"). `SimulationFailed` carries Aer's words; when an allocation
failed, its cause is a MemoryError, so the executor's `limit_reason` names the memory limit.
"""

from __future__ import annotations

from typing import Any

from .backends import MAX_SHOTS
from .errors import InvalidInput, SimulationFailed

__all__ = ["checked_shots", "failure", "succeeded"]

_AER_PREFIX = "Aer simulation failed:"
"""How AerError's message begins (its primitives); `failure` says it once."""

_ALLOCATION_FAILED = ("cannot allocate memory", "bad_alloc")
"""Words of Aer's status when an allocation failed (lower case)."""


def checked_shots(shots: Any, field: str = "params.shots") -> int:
    """`shots` if it is an integer from 1 to MAX_SHOTS (the `max_shots` every backend's
    configuration advertises); else InvalidInput naming `field`."""
    if isinstance(shots, bool) or not isinstance(shots, int) or not 0 < shots <= MAX_SHOTS:
        raise InvalidInput(
            f"{field}: shots must be an integer from 1 to {MAX_SHOTS} (max_shots), not {shots!r}",
            field=field,
        )
    return shots


def failure(status: str) -> SimulationFailed:
    """The error for a simulation Aer could not finish, `status` its words: caused by a
    MemoryError when an allocation failed (the job's memory limit, usually)."""
    why = " ".join(str(status).split()).removeprefix(_AER_PREFIX).strip() or "no reason given"
    error = SimulationFailed(f"Aer simulation failed: {why}")
    if any(words in why.lower() for words in _ALLOCATION_FAILED):
        error.__cause__ = MemoryError(why)
    return error


def succeeded(result: Any) -> Any:
    """`result` (a qiskit Result) if it and each of its experiments succeeded; else raises
    `failure` of the first failed experiment's status (the Result's own, if none says)."""
    for experiment in getattr(result, "results", None) or ():
        if not experiment.success:
            raise failure(experiment.status)
    if not result.success:
        raise failure(result.status)
    return result
