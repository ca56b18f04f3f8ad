"""Sessions and batches: groups of jobs a client runs together on one backend, as IBM Qiskit
Runtime has them (`POST /api/v1/sessions`).

A *dedicated* session runs its jobs one at a time, in the order they were submitted, on the
session's backend; a *batch* runs its jobs as capacity allows. A session stops taking jobs when
it is closed (`accepting_jobs` false), cancelled, or `max_ttl` seconds after its first job
started (IBM's rule: the session's time starts with its first job). One that never gets a job
to start, and has none waiting, ends `max_ttl` seconds after it was made.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from .jobs import JobStatus, from_iso, plain, to_iso, utcnow


class SessionMode(StrEnum):
    """How a session runs its jobs (IBM's `mode`)."""

    BATCH = "batch"
    """As capacity allows, several at once."""
    DEDICATED = "dedicated"
    """One at a time, in submission order."""


class SessionState(StrEnum):
    """A session's state, in IBM's words."""

    OPEN = "open"
    """No job of it has started yet."""
    ACTIVE = "active"
    """A job of it is queued or running, or one ended less than `interactive_ttl` ago."""
    INACTIVE = "inactive"
    """Started, takes jobs, but none ran for `interactive_ttl` seconds."""
    CLOSED = "closed"
    """Takes no more jobs: closed with no job left to run, cancelled, or past `max_ttl`."""


def new_session_id() -> str:
    """A fresh session id."""
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Session:
    """A session or batch and the rules its jobs follow."""

    id: str
    mode: SessionMode
    backend: str
    instance: str
    """The `hub/group/project` the session and its jobs belong to."""
    max_ttl: int
    """Seconds the session may last, from its first job's start."""
    interactive_ttl: int
    """Seconds without a job after which a started session is inactive."""
    created: datetime = field(default_factory=utcnow)
    accepting_jobs: bool = True
    closed_at: datetime | None = None
    """When it was closed (accepting no jobs) or cancelled."""
    cancelled: bool = False
    """Closed by `DELETE /sessions/{id}/close`: its queued jobs were cancelled."""
    owner: str | None = None
    """The user who made it (None without API keys)."""


def session_to_dict(session: Session) -> dict[str, Any]:
    """A session as a JSON-ready dict, the form the stores keep."""
    doc: dict[str, Any] = plain(session)
    doc.update(
        mode=session.mode.value,
        created=to_iso(session.created),
        closed_at=to_iso(session.closed_at),
    )
    return doc


def session_from_dict(doc: dict[str, Any]) -> Session:
    """The session a `session_to_dict` dict describes; keys it does not know are ignored."""
    values = {name: doc[name] for name in Session.__dataclass_fields__ if name in doc}
    created = from_iso(doc["created"])
    assert created is not None
    values.update(
        mode=SessionMode(doc["mode"]), created=created, closed_at=from_iso(doc.get("closed_at"))
    )
    return Session(**values)


@dataclass(frozen=True, slots=True)
class JobTimes:
    """What a session needs to know of one of its jobs."""

    status: JobStatus
    started: datetime | None
    ended: datetime | None


@dataclass(frozen=True, slots=True)
class SessionActivity:
    """What a session's jobs did, as far as its state and usage need it."""

    started_at: datetime | None = None
    """When its first job started."""
    last_job_started: datetime | None = None
    last_job_completed: datetime | None = None
    pending: int = 0
    """Its jobs that are queued or running."""
    run_seconds: float = 0.0
    """Sum of its jobs' running times (to their end, or to now)."""

    @classmethod
    def of(cls, jobs: list[JobTimes], now: datetime | None = None) -> SessionActivity:
        """The activity of a session whose jobs are `jobs`."""
        now = now or utcnow()
        started = [job.started for job in jobs if job.started is not None]
        ended = [job.ended for job in jobs if job.ended is not None and job.started is not None]
        run = sum(
            max(((job.ended or now) - job.started).total_seconds(), 0.0)
            for job in jobs
            if job.started is not None
        )
        return cls(
            started_at=min(started, default=None),
            last_job_started=max(started, default=None),
            last_job_completed=max(ended, default=None),
            pending=sum(1 for job in jobs if not job.status.is_final),
            run_seconds=run,
        )


def expires_at(session: Session, activity: SessionActivity) -> datetime | None:
    """When the session reaches its `max_ttl`: from its first job's start, or, while none of
    its jobs started and none waits, from its making; None while its first job waits."""
    if activity.started_at is None:
        # Else a session made and forgotten would stay open, and count, for ever.
        if activity.pending:
            return None
        return session.created + timedelta(seconds=session.max_ttl)
    return activity.started_at + timedelta(seconds=session.max_ttl)


def session_state(
    session: Session, activity: SessionActivity, now: datetime | None = None
) -> SessionState:
    """The session's state now."""
    now = now or utcnow()
    expiry = expires_at(session, activity)
    if session.cancelled or (expiry is not None and now >= expiry):
        return SessionState.CLOSED
    if not session.accepting_jobs and activity.pending == 0:
        return SessionState.CLOSED
    if activity.started_at is None:
        return SessionState.OPEN
    if activity.pending:
        return SessionState.ACTIVE
    last = activity.last_job_completed or activity.last_job_started or activity.started_at
    if now - last < timedelta(seconds=session.interactive_ttl):
        return SessionState.ACTIVE
    return SessionState.INACTIVE


def hold_seconds(session: Session, most: int) -> int:
    """Seconds a dedicated session keeps its device idle after one of its jobs ended: its
    `interactive_ttl`, cut to `most` (QRT_SESSION_MAX_INTERACTIVE_TTL; a session stored before
    the operator lowered the bound is held no longer either)."""
    return min(session.interactive_ttl, most)


def takes_jobs(session: Session, activity: SessionActivity, now: datetime | None = None) -> bool:
    """Whether a job may join the session now."""
    state = session_state(session, activity, now)
    return session.accepting_jobs and state is not SessionState.CLOSED
