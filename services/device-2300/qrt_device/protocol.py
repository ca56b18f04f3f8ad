"""The 2200/2300 messages: reading requests, writing replies and state messages.

Replies follow protocol v3 (QuTech's compute-runtime-schema); requests of the seed's 0.1.0
interface are answered too: a `version` field is echoed, `run_id` stands for `job_id`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeGuard

NIL_SESSION = "00000000-0000-0000-0000-000000000000"
"""The session id of a reply to a request that carried none."""


class State(StrEnum):
    """What the device publishes it is doing."""

    IDLE = "IDLE"
    EXECUTING = "EXECUTING"
    CALIBRATING = "CALIBRATING"
    OFFLINE = "OFFLINE"


class Refused(Exception):
    """A request the device answers with a failure reply carrying this message."""


@dataclass(frozen=True, slots=True)
class Request:
    """One request from a 2200 client."""

    command: str
    session_id: str
    payload: dict[str, Any] = field(default_factory=dict)
    version: str | None = None


@dataclass(frozen=True, slots=True)
class ExecuteArguments:
    """The payload of an `execute`."""

    job_id: int
    circuit: str
    shots: int
    include_raw_data: bool
    job_key: str
    """`job_id`, or `run_id` for protocol 0.1.0 clients: the reply uses the same key."""


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def read_request(frame: bytes) -> Request:
    """The request in `frame`; raises Refused (with what is wrong) for anything else. The
    failure reply still echoes the session id and version when they could be read."""
    try:
        body = json.loads(frame)
    except (ValueError, RecursionError):
        raise Refused("the request is not a JSON document") from None
    if not isinstance(body, dict):
        raise Refused("the request must be a JSON object")
    session_id = body.get("session_id")
    version = body.get("version") if isinstance(body.get("version"), str) else None
    command = body.get("command")
    payload = body.get("payload", {})
    if not isinstance(session_id, str):
        raise Refused("session_id is required and must be a string")
    if not isinstance(command, str):
        raise Refused("command is required and must be a string")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise Refused("payload must be an object")
    return Request(command, session_id, payload, version)


def session_of(frame: bytes) -> tuple[str, str | None]:
    """Best effort: the session id and version of a request that could not be read."""
    try:
        body = json.loads(frame)
    except (ValueError, RecursionError):
        return NIL_SESSION, None
    if not isinstance(body, dict):
        return NIL_SESSION, None
    session_id = body.get("session_id")
    version = body.get("version")
    return (
        session_id if isinstance(session_id, str) else NIL_SESSION,
        version if isinstance(version, str) else None,
    )


def execute_arguments(payload: dict[str, Any]) -> ExecuteArguments:
    """The arguments of an `execute`; raises Refused naming the field at fault."""
    job_key = "job_id" if "job_id" in payload or "run_id" not in payload else "run_id"
    job_id = payload.get(job_key)
    if not _is_int(job_id):
        raise Refused("payload.job_id is required and must be an integer")
    circuit = payload.get("circuit")
    if not isinstance(circuit, str):
        raise Refused("payload.circuit is required and must be a string of cQASM")
    shots = payload.get("number_of_shots")
    if not _is_int(shots) or shots <= 0:
        raise Refused("payload.number_of_shots is required and must be a positive integer")
    raw = payload.get("include_raw_data", False)
    if not isinstance(raw, bool):
        raise Refused("payload.include_raw_data must be true or false")
    return ExecuteArguments(job_id, circuit, shots, raw, job_key)


def success(request: Request, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """A success reply to `request`."""
    reply: dict[str, Any] = {"session_id": request.session_id, "status": "success"}
    if payload is not None:
        reply["payload"] = payload
    if request.version is not None:
        reply["version"] = request.version
    return reply


def failure(session_id: str, version: str | None, message: str) -> dict[str, Any]:
    """A failure reply carrying `message`."""
    reply: dict[str, Any] = {
        "session_id": session_id,
        "status": "failure",
        "payload": {"error_msg": message},
    }
    if version is not None:
        reply["version"] = version
    return reply


def publish_state(state: State) -> dict[str, Any]:
    """The heartbeat message announcing `state`."""
    return {"command": "publish_state", "payload": {"state": state.value, "timestamp": time.time()}}
