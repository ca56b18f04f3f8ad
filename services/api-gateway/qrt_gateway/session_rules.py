"""Which jobs may join which session: the check every submit path makes (`Gateway.submit`)."""

from __future__ import annotations

from qrt_common.errors import Conflict, InvalidInput, NotFound
from qrt_common.jobs import Job
from qrt_common.sessions import Session, SessionActivity, session_state, takes_jobs
from qrt_common.store.base import JobStore


async def check_session(store: JobStore, job: Job, *, must_exist: bool = False) -> None:
    """Raise unless `job` may join the session it names (if it names one).

    A job of a stored session must belong to the session's instance (else NotFound, as for a
    session that does not exist), ask for the session's backend (InvalidInput naming
    `backend`), and come while the session takes jobs (Conflict: closed, cancelled, or past
    its max_ttl). A session id that names no stored session is the old test-server API's
    free-form id (there, the id of a session's first job) and is let through, unless
    `must_exist` (IBM's API, where sessions are made with `POST /sessions`): NotFound.
    """
    if job.session_id is None:
        return
    session = await store.get_session(job.session_id)
    if session is None or session.instance != job.instance:
        if session is None and not must_exist:
            return
        raise NotFound(f"session '{job.session_id}' not found", field="session_id")
    if job.backend != session.backend:
        raise InvalidInput(
            f"session '{session.id}' runs its jobs on backend '{session.backend}'; this job asks"
            f" for '{job.backend}'",
            field="backend",
        )
    activity = await session_activity(store, session)
    if not takes_jobs(session, activity):
        state = session_state(session, activity)
        why = "it was cancelled" if session.cancelled else (
            "it was closed" if not session.accepting_jobs else
            f"it reached its max_ttl of {session.max_ttl} s"
        )  # fmt: skip
        raise Conflict(
            f"session '{session.id}' takes no more jobs: {why} (state {state.value})",
            field="session_id",
        )


async def session_activity(store: JobStore, session: Session) -> SessionActivity:
    """What the session's jobs did so far."""
    return SessionActivity.of(await store.session_job_times(session.id))
