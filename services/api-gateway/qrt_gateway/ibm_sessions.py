"""IBM's sessions and batches (`/api/v1/sessions`), as the stock `qiskit-ibm-runtime` client's
`Session` and `Batch` call them: create, details, close (`PATCH accepting_jobs=false`) and
cancel (`DELETE /sessions/{id}/close`, which also cancels the session's queued jobs).

A session belongs to the instance its `Service-CRN` names; in another instance it is not found.
Its rules for jobs (backend, order, closing) are in `session_rules` and the scheduler.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from qrt_common.accounts import Principal, Role
from qrt_common.backends import SIMULATORS
from qrt_common.errors import Conflict, InvalidInput, NotFound
from qrt_common.jobs import JobStatus, utcnow
from qrt_common.sessions import (
    Session,
    SessionActivity,
    SessionMode,
    SessionState,
    expires_at,
    hold_seconds,
    new_session_id,
    session_state,
)
from qrt_common.store.base import JobQuery

from .auth import principal
from .context import Gateway, gateway
from .ibm_api import CRN_PARAMETER, PREFIX, crn_instance, ibm_time, request_instance
from .openapi import Route
from .plumbing import json_response, read_json
from .session_rules import session_activity

MAX_CANCELLED = 100_000
"""Queued jobs one cancel of a session cancels at most."""
HOLD_LOOKBACK = 200
"""Ended jobs of a device read to find the one that ended last (the device runs one at a
time, so the last ended is among the newest made, unless this many newer ones were cancelled
in the queue or the session's job waited behind this many)."""


@dataclasses.dataclass(frozen=True, slots=True)
class DeviceHold:
    """A dedicated session keeping a device idle for its next job."""

    session: Session
    until: datetime


async def device_hold(gw: Gateway, backend: str) -> DeviceHold | None:
    """The session holding device `backend` between its jobs now, by the scheduler's rule: the
    dedicated session of the job that ended last on it, while the session takes jobs and less
    than its interactive TTL (cut to QRT_SESSION_MAX_INTERACTIVE_TTL) passed since that end.
    None for a simulator or when no session holds it. (A scheduler restarted meanwhile has let
    the device go, though this still names the session.)"""
    if backend in SIMULATORS:
        return None
    final = [status for status in JobStatus if status.is_final]
    ended, _ = await gw.store.list_jobs(
        JobQuery(backend=backend, statuses=final, limit=HOLD_LOOKBACK, with_params=False)
    )
    # A job that never started (cancelled in the queue) never had the device.
    times = [(j.ended, j.session_id) for j in ended if j.ended and j.started is not None]
    last_end, session_id = max(times, key=lambda t: t[0], default=(None, None))
    if last_end is None or session_id is None:
        return None
    session = await gw.store.get_session(session_id)
    if session is None or session.mode is not SessionMode.DEDICATED:
        return None
    if session.cancelled or not session.accepting_jobs:
        return None
    ttl = hold_seconds(session, gw.settings.session_max_interactive_ttl)
    until = last_end + timedelta(seconds=ttl)
    return DeviceHold(session, until) if utcnow() < until else None


def hold_json(hold: DeviceHold, who: Principal) -> dict[str, Any]:
    """A hold as a backend's status shows it: when it ends for everybody; which session holds
    it, its instance and user only for the session's own instance and platform admins (who
    may then cancel it: `DELETE /api/v1/sessions/{id}/close`)."""
    session = hold.session
    shown: dict[str, Any] = {"until": ibm_time(hold.until)}
    if who.role(session.instance) is not None:
        shown.update(session_id=session.id, instance=session.instance, user_id=session.owner)
    return shown


def _int_field(body: dict[str, Any], name: str, default: int, most: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInput(f"{name} must be a whole number of seconds, at least 1", field=name)
    return min(value, most)


async def create_session(request: web.Request) -> web.Response:
    gw = gateway(request)
    who = principal(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object")
    instance = _instance(request, body)
    gw.require(who, instance, Role.MEMBER, "creating a session")
    modes = ", ".join(mode.value for mode in SessionMode)
    try:
        mode = SessionMode(str(body.get("mode")))
    except ValueError:
        raise InvalidInput(f"mode must be one of: {modes}", field="mode") from None
    backend = body.get("backend") or body.get("backend_name")
    if not isinstance(backend, str):
        raise InvalidInput("name the session's backend", field="backend")
    gw.require_backend(backend)
    settings = gw.settings
    max_ttl = _int_field(body, "max_ttl", settings.session_max_ttl, settings.session_max_ttl)
    # The interactive TTL holds a device idle for every other user: the operator bounds it.
    most_interactive = min(settings.session_max_interactive_ttl, max_ttl)
    interactive = _int_field(
        body,
        "interactive_ttl",
        min(settings.session_interactive_ttl, most_interactive),
        most_interactive,
    )
    session = Session(
        id=new_session_id(),
        mode=mode,
        backend=backend,
        instance=instance,
        max_ttl=max_ttl,
        interactive_ttl=interactive,
        owner=who.user if who.key_id is not None else None,
    )
    await gw.quotas.admit_session(session.owner, instance)
    await gw.store.add_session(session)
    return json_response(json.dumps(details(session, SessionActivity())))


def _instance(request: web.Request, body: dict[str, Any]) -> str:
    """The instance a create names: its `Service-CRN` header, else its body's `instance`."""
    if request.headers.get("Service-CRN"):
        return request_instance(request)
    return crn_instance(body.get("instance") if isinstance(body.get("instance"), str) else None)


async def _find(gw: Gateway, request: web.Request) -> Session:
    """The session the path names, if it belongs to the request's instance and the caller may
    see it; NotFound otherwise."""
    session_id = request.match_info["session_id"]
    who = principal(request)
    instance = request_instance(request)
    session = await gw.store.get_session(session_id)
    if session is None or session.instance != instance or who.role(instance) is None:
        raise NotFound(f"session '{session_id}' not found")
    return session


async def get_session(request: web.Request) -> web.Response:
    gw = gateway(request)
    session = await _find(gw, request)
    activity = await session_activity(gw.store, session)
    return json_response(json.dumps(details(session, activity)))


async def update_session(request: web.Request) -> web.Response:
    gw = gateway(request)
    session = await _find(gw, request)
    gw.require(principal(request), session.instance, Role.MEMBER, "closing a session")
    body = await read_json(request)
    accepting = body.get("accepting_jobs") if isinstance(body, dict) else None
    if not isinstance(accepting, bool):
        raise InvalidInput('send {"accepting_jobs": false}', field="accepting_jobs")
    if accepting and not session.accepting_jobs:
        raise Conflict(f"session '{session.id}' is closed; it cannot take jobs again")
    if not accepting and session.accepting_jobs:
        closed = dataclasses.replace(session, accepting_jobs=False, closed_at=utcnow())
        await gw.store.replace_session(closed)
    return web.Response(status=204)


async def cancel_session(request: web.Request) -> web.Response:
    gw = gateway(request)
    session = await _find(gw, request)
    gw.require(principal(request), session.instance, Role.MEMBER, "cancelling a session")
    if not session.cancelled:
        cancelled = dataclasses.replace(
            session, accepting_jobs=False, cancelled=True, closed_at=session.closed_at or utcnow()
        )
        await gw.store.replace_session(cancelled)
    # Its queued jobs will not run; running ones run to their end (IBM's rule).
    query = JobQuery(
        session_id=session.id, statuses=[JobStatus.QUEUED], limit=MAX_CANCELLED, with_params=False
    )
    queued, _ = await gw.store.list_jobs(query)
    for job in queued:
        with contextlib.suppress(Conflict):  # it ended meanwhile
            await gw.cancel(job, job.status.value)
    return web.Response(status=204)


def details(session: Session, activity: SessionActivity) -> dict[str, Any]:
    """A session as IBM's `GET /sessions/{id}` shows it (what the client's `Session.details()`,
    `status()` and `usage()` read)."""
    now = utcnow()
    state = session_state(session, activity, now)
    expiry = expires_at(session, activity)
    closed_at = session.closed_at
    if state is SessionState.CLOSED and closed_at is None and expiry is not None:
        closed_at = min(expiry, now)
    timestamps = [{"status": SessionState.OPEN.value, "timestamp": ibm_time(session.created)}]
    if activity.started_at is not None:
        timestamps.append(
            {"status": SessionState.ACTIVE.value, "timestamp": ibm_time(activity.started_at)}
        )
    if state is SessionState.CLOSED and closed_at is not None:
        timestamps.append({"status": SessionState.CLOSED.value, "timestamp": ibm_time(closed_at)})
    return {
        "id": session.id,
        "backend_name": session.backend,
        "mode": session.mode.value,
        "state": state.value,
        "state_reason": _reason(session, state),
        "accepting_jobs": session.accepting_jobs and state is not SessionState.CLOSED,
        "max_ttl": session.max_ttl,
        "interactive_ttl": session.interactive_ttl,
        "active_ttl": _active_ttl(expiry, now, session.max_ttl),
        "created_at": ibm_time(session.created),
        "started_at": ibm_time(activity.started_at),
        "activated_at": ibm_time(activity.started_at),
        "closed_at": ibm_time(closed_at) if state is SessionState.CLOSED else None,
        "last_job_started": ibm_time(activity.last_job_started),
        "last_job_completed": ibm_time(activity.last_job_completed),
        "elapsed_time": _elapsed(session, activity, now),
        "timestamps": timestamps,
        "user_id": session.owner,
        "pending_jobs": activity.pending,
    }


def _reason(session: Session, state: SessionState) -> str | None:
    if state is not SessionState.CLOSED:
        return None
    if session.cancelled:
        return "cancelled"
    return "closed" if not session.accepting_jobs else "max_ttl reached"


def _active_ttl(expiry: Any, now: Any, max_ttl: int) -> int:
    """Seconds left until max_ttl (all of it before the first job starts)."""
    if expiry is None:
        return max_ttl
    return max(int((expiry - now) / timedelta(seconds=1)), 0)


def _elapsed(session: Session, activity: SessionActivity, now: Any) -> float:
    """Usage in seconds, as IBM counts it: a dedicated session's from its first job's start to
    its last job's end (or now, while one runs); a batch's, its jobs' running times added."""
    if session.mode is SessionMode.BATCH:
        return round(activity.run_seconds, 3)
    if activity.started_at is None:
        return 0.0
    end = now if activity.pending else (activity.last_job_completed or now)
    return round(max((end - activity.started_at).total_seconds(), 0.0), 3)


_SESSION = f"{PREFIX}/sessions/{{session_id}}"
_ERRORS = (400, 401, 403, 404, 409, 503)

ROUTES: tuple[Route, ...] = (
    Route("POST", f"{PREFIX}/sessions", create_session,
          "Create a session or batch (IBM API)", "ibm", errors=_ERRORS,
          query=(CRN_PARAMETER,), response_schema={"type": "object"},
          description="Body: `{\"mode\": \"batch\"|\"dedicated\", \"backend\", \"max_ttl\"?, "
          "\"interactive_ttl\"?}`; the instance is the one the Service-CRN header names."),
    Route("GET", _SESSION, get_session, "A session's details (IBM API)", "ibm",
          errors=_ERRORS, query=(CRN_PARAMETER,), response_schema={"type": "object"}),
    Route("PATCH", _SESSION, update_session,
          "Close a session: `{\"accepting_jobs\": false}` (IBM API)", "ibm", status=204,
          errors=_ERRORS, query=(CRN_PARAMETER,)),
    Route("DELETE", f"{_SESSION}/close", cancel_session,
          "Cancel a session: it takes no more jobs and its queued jobs are cancelled (IBM "
          "API)", "ibm", status=204, errors=_ERRORS, query=(CRN_PARAMETER,)),
)  # fmt: skip
