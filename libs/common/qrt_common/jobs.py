"""Jobs: their status words, the record the platform keeps, and the one transition function."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .errors import IllegalTransition


class JobStatus(StrEnum):
    """A job's status, in IBM Qiskit Runtime's words."""

    QUEUED = "Queued"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    CANCELLED_RAN_TOO_LONG = "Cancelled - Ran too long"

    @property
    def is_final(self) -> bool:
        """True when no further transition can happen."""
        return not _ALLOWED[self]


_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.CANCELLED_RAN_TOO_LONG,
            # An executor lost mid-job hands the job back to the queue for another attempt.
            JobStatus.QUEUED,
        }
    ),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
    JobStatus.CANCELLED_RAN_TOO_LONG: frozenset(),
}

DEFAULT_HUB = "ibm-q"
DEFAULT_GROUP = "open"
DEFAULT_PROJECT = "main"
DEFAULT_INSTANCE = f"{DEFAULT_HUB}/{DEFAULT_GROUP}/{DEFAULT_PROJECT}"


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def epoch_us(value: datetime) -> int:
    """`value` as whole microseconds since the epoch (exact, where BSON dates keep milliseconds)."""
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def new_job_id() -> str:
    """A fresh job id."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Job:
    """A request to run one program once, and everything known about that run."""

    id: str
    program_id: str
    backend: str
    params: str
    """The program's keyword arguments as RuntimeEncoder JSON text, decoded only by the program."""
    max_execution_time: int
    """Seconds the program may run before it is stopped as `Cancelled - Ran too long`."""
    hub: str = DEFAULT_HUB
    group: str = DEFAULT_GROUP
    project: str = DEFAULT_PROJECT
    tags: tuple[str, ...] = ()
    status: JobStatus = JobStatus.QUEUED
    created: datetime = field(default_factory=utcnow)
    started: datetime | None = None
    ended: datetime | None = None
    reason: str | None = None
    """Why the job failed or was cancelled, for people."""
    priority: int = 0
    """Higher runs sooner; among equals, instances (hub/group/project) take turns."""
    attempt: int = 0
    """How many times an executor has started this job."""
    executor_id: str | None = None
    """The executor the job is assigned to, is running on, or last ran on."""
    cancel_requested: bool = False
    """A user asked to cancel the running job; it ends Cancelled, never runs again."""
    session_id: str | None = None
    """The session (a group of related jobs a client names) the job belongs to."""
    idempotency_key: str | None = None
    """`<caller> <Idempotency-Key>` of the submit that made the job: the same key from the same
    caller gets this job, not a new one. Forgotten QRT_IDEMPOTENCY_RETENTION after it came."""
    request_digest: str | None = None
    """`sha256:` of what that submit asked for, to tell a retry from a key used again for
    something else."""
    submitter: str | None = None
    """The user who submitted the job (None without API keys)."""

    @property
    def instance(self) -> str:
        """The `hub/group/project` the job belongs to."""
        return f"{self.hub}/{self.group}/{self.project}"


def transition(
    job: Job,
    to: JobStatus,
    *,
    at: datetime | None = None,
    reason: str | None = None,
    executor_id: str | None = None,
) -> Job:
    """Return `job` moved to status `to`, or raise IllegalTransition if the move is not allowed."""
    if to not in _ALLOWED[job.status]:
        raise IllegalTransition(job.id, job.status, to)
    at = at or utcnow()
    changes: dict[str, object] = {"status": to, "reason": reason}
    if to is JobStatus.RUNNING:
        changes.update(
            started=at, attempt=job.attempt + 1, executor_id=executor_id or job.executor_id
        )
    elif to is JobStatus.QUEUED:
        changes.update(started=None, executor_id=None)
    else:
        changes["ended"] = at
    return dataclasses.replace(job, **changes)  # type: ignore[arg-type]


def to_iso(value: datetime | None) -> str | None:
    """`value` as exact ISO 8601 text, the form the stores keep."""
    return None if value is None else value.isoformat()


def from_iso(value: str | None) -> datetime | None:
    """The time `to_iso` wrote."""
    return None if value is None else datetime.fromisoformat(value)


_SCALARS = (str, int, float, bool, type(None))


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(cls.__dataclass_fields__)  # type: ignore[attr-defined]


def plain(value: Any) -> Any:
    """`value` with every dataclass instance in it (also inside lists, tuples and dicts) as a
    dict of its fields, lists and tuples as lists: the form the stores keep jobs and programs in.

    `dataclasses.asdict` without its deep copy of every other value: the stores turn the dict
    into JSON or BSON at once, and the copy was most of the cost of storing a job.
    """
    cls: type = type(value)
    if cls in _SCALARS:
        return value
    if hasattr(cls, "__dataclass_fields__"):
        return {name: plain(getattr(value, name)) for name in _field_names(cls)}
    if cls is list or cls is tuple:
        return [plain(item) for item in value]
    if cls is dict:
        return {key: plain(item) for key, item in value.items()}
    return value


_JOB_FIELDS = tuple(Job.__dataclass_fields__)


def job_to_dict(job: Job) -> dict[str, Any]:
    """A job as a JSON-ready dict, the form the stores keep."""
    # Field by field rather than through `plain`: every field is a scalar but these five, and
    # the stores do this on every change of every job.
    doc: dict[str, Any] = {name: getattr(job, name) for name in _JOB_FIELDS}
    doc.update(
        tags=list(job.tags),
        status=job.status.value,
        created=to_iso(job.created),
        started=to_iso(job.started),
        ended=to_iso(job.ended),
    )
    return doc


def job_from_dict(doc: dict[str, Any]) -> Job:
    """The job a `job_to_dict` dict describes; keys it does not know are ignored."""
    values = {name: doc[name] for name in Job.__dataclass_fields__ if name in doc}
    values.update(
        status=JobStatus(doc["status"]),
        tags=tuple(doc.get("tags") or ()),
        created=from_iso(doc["created"]),
        started=from_iso(doc.get("started")),
        ended=from_iso(doc.get("ended")),
    )
    return Job(**values)
