"""A session's state and whether it takes jobs, from what its jobs did (IBM's rules)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from qrt_common.jobs import JobStatus
from qrt_common.sessions import (
    JobTimes,
    Session,
    SessionActivity,
    SessionMode,
    SessionState,
    expires_at,
    session_from_dict,
    session_state,
    session_to_dict,
    takes_jobs,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SESSION = Session("s", SessionMode.DEDICATED, "dev", "a/b/c", max_ttl=100, interactive_ttl=10,
                  created=T0)  # fmt: skip


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def activity(*jobs: JobTimes) -> SessionActivity:
    return SessionActivity.of(list(jobs), now=at(50))


def test_a_session_is_open_until_a_job_starts_then_active_inactive_and_closed():
    queued = activity(JobTimes(JobStatus.QUEUED, None, None))
    assert session_state(SESSION, activity(), at(1)) is SessionState.OPEN
    assert session_state(SESSION, queued, at(1000)) is SessionState.OPEN  # no job started yet
    running = activity(JobTimes(JobStatus.RUNNING, at(5), None))
    assert session_state(SESSION, running, at(6)) is SessionState.ACTIVE
    done = activity(JobTimes(JobStatus.COMPLETED, at(5), at(20)))
    assert session_state(SESSION, done, at(29)) is SessionState.ACTIVE
    assert session_state(SESSION, done, at(31)) is SessionState.INACTIVE
    assert takes_jobs(SESSION, done, at(31))
    # max_ttl runs from the first job's start: 5 + 100.
    assert session_state(SESSION, done, at(104)) is SessionState.INACTIVE
    assert session_state(SESSION, done, at(105)) is SessionState.CLOSED
    assert not takes_jobs(SESSION, done, at(105))


def test_a_session_that_never_gets_a_job_ends_its_max_ttl_after_it_was_made():
    assert session_state(SESSION, activity(), at(99)) is SessionState.OPEN
    assert session_state(SESSION, activity(), at(100)) is SessionState.CLOSED
    assert not takes_jobs(SESSION, activity(), at(100))
    # Jobs that ended before starting (cancelled in the queue) do not keep it open either.
    cancelled = activity(JobTimes(JobStatus.CANCELLED, None, at(3)))
    assert session_state(SESSION, cancelled, at(100)) is SessionState.CLOSED
    # A first job still waiting for its turn keeps it open: its time starts with that job.
    queued = activity(JobTimes(JobStatus.QUEUED, None, None))
    assert session_state(SESSION, queued, at(1000)) is SessionState.OPEN
    assert expires_at(SESSION, queued) is None


def test_a_closed_session_runs_its_jobs_to_the_end_and_a_cancelled_one_is_closed_at_once():
    closed = dataclasses.replace(SESSION, accepting_jobs=False, closed_at=at(6))
    running = activity(JobTimes(JobStatus.RUNNING, at(5), None))
    assert session_state(closed, running, at(7)) is SessionState.ACTIVE
    assert not takes_jobs(closed, running, at(7))
    done = activity(JobTimes(JobStatus.COMPLETED, at(5), at(8)))
    assert session_state(closed, done, at(9)) is SessionState.CLOSED
    cancelled = dataclasses.replace(closed, cancelled=True)
    assert session_state(cancelled, running, at(7)) is SessionState.CLOSED


def test_activity_adds_up_its_jobs():
    found = activity(
        JobTimes(JobStatus.COMPLETED, at(5), at(8)),
        JobTimes(JobStatus.RUNNING, at(10), None),
        JobTimes(JobStatus.QUEUED, None, None),
        JobTimes(JobStatus.CANCELLED, None, at(3)),  # cancelled before it started
    )
    assert found.started_at == at(5) and found.last_job_started == at(10)
    assert found.last_job_completed == at(8) and found.pending == 2
    assert found.run_seconds == 3 + 40  # the running one until now (50)


def test_a_session_survives_its_stored_form():
    stored = dataclasses.replace(SESSION, accepting_jobs=False, closed_at=at(6), owner="ada")
    assert session_from_dict(session_to_dict(stored)) == stored
