"""QuTech's 2200/2300 interface: the messages a 2200 client (an executor, a job's device backend)
and a 2300 device (`qrt device`) exchange over ZeroMQ, for both sides.

Requests are `{"session_id", "command", "payload"?, "version"?}` on a REQ socket; each gets a
reply `{"session_id", "status": "success" | "failure", "payload"?, "version"?}`; a failure's
payload is `{"error_msg"}`. The device also publishes `{"command": "publish_state", "payload":
{"state", "timestamp"}}`. Shapes follow protocol v3 of QuTech's compute-runtime-schema; requests
of its v1 and v2 schemas and of the seed's 0.1.0 interface are answered too (`version` echoed,
`run_id` for `job_id`, `get_static` and `get_dynamic` without a `session_id`).
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, field

from .errors import DeviceRefused, DeviceUnavailable, MalformedMessage
from .wire import Message, decode, fault, to_json

PROTOCOL_VERSION = 3
NIL_SESSION = "00000000-0000-0000-0000-000000000000"
"""The session id of a reply to a request that carried none."""


class Command(StrEnum):
    """What a 2200 client asks of a device."""

    INITIALIZE = "initialize"
    """Lock the device for the request's session."""
    EXECUTE = "execute"
    """Run a circuit (`ExecuteRequest`) in the locked session."""
    TERMINATE = "terminate"
    """Release the session's lock."""
    GET_STATIC = "get_static"
    """What the device is (`StaticInfo`)."""
    GET_DYNAMIC = "get_dynamic"
    """Its current calibration, as metrics."""
    SET_PUBLISH = "set_publish"
    """Turn the state heartbeat on or off (protocol 0.1.0; `SetPublish`)."""


class DeviceState(StrEnum):
    """What the device publishes it is doing."""

    IDLE = "IDLE"
    EXECUTING = "EXECUTING"
    CALIBRATING = "CALIBRATING"
    OFFLINE = "OFFLINE"


SESSION_COMMANDS = frozenset({Command.INITIALIZE, Command.EXECUTE, Command.TERMINATE})
"""Commands whose schemas require a `session_id` in every version; `get_static` and
`get_dynamic` may come without one (schema v1, the 0.1.0 documentation's examples), and so may
`set_publish`."""

FIELD_RULES: dict[str, str] = {
    "session_id": "must be a string (initialize, execute and terminate require one)",
    "command": "is required and must be a string",
    "payload": "must be an object",
    "payload.job_id": "is required and must be an integer",
    "payload.run_id": "must be an integer",
    "payload.circuit": "is required and must be a string of cQASM",
    "payload.number_of_shots": "is required and must be a positive integer",
    "payload.include_raw_data": "must be true or false",
    "payload.active": "is required and must be true or false",
}
"""What each request field must be, as a failure reply says it (compute-runtime-schema v3)."""


class Request(Message, frozen=True, omit_defaults=True, kw_only=True):
    """One request from a 2200 client."""

    session_id: str | None = None
    """Absent only where `SESSION_COMMANDS` allow it (`read_request` checks)."""
    command: str
    """A `Command`; any other is answered with a failure naming the known ones."""
    payload: Any = None
    """The command's arguments: an object for `execute` and `set_publish` (their readers check
    it); the schemas define none for the other commands, so there it is let be."""
    version: Any = None
    """The version text of schemas v1 and v2 and of protocol 0.1.0, echoed in the reply;
    anything else is ignored."""

    @property
    def echoed_version(self) -> str | None:
        """The version a reply echoes."""
        return self.version if isinstance(self.version, str) else None

    @property
    def reply_session(self) -> str:
        """The session id a reply carries: the request's, or `NIL_SESSION` if it had none."""
        return NIL_SESSION if self.session_id is None else self.session_id


class ExecuteRequest(Message, frozen=True, kw_only=True, omit_defaults=True):
    """The payload of an `execute` (fields left at their defaults are not sent)."""

    job_id: int | None = None
    run_id: int | None = None
    """Protocol 0.1.0's name of `job_id`; a reply to it carries both."""
    circuit: str
    """cQASM 1.0 or 3.0 text."""
    number_of_shots: Annotated[int, Meta(gt=0)]
    include_raw_data: bool = False

    @property
    def id(self) -> int:
        """The job id the reply repeats."""
        found = self.job_id if self.job_id is not None else self.run_id
        assert found is not None, "checked by read_execute"
        return found


class ExecuteResult(Message, frozen=True, omit_defaults=True):
    """The payload of an `execute`'s success reply (`run_id` only for a 0.1.0 request)."""

    job_id: int
    results: dict[str, int]
    """Little-endian bitstring (`b[n-1]...b[0]`) to how often it was measured."""
    raw_data: list[str]
    """Every shot's bitstring, in order, when asked for (else empty)."""
    run_id: int | None = None


class SetPublish(Message, frozen=True):
    """The payload of a `set_publish`."""

    active: bool


class StaticInfo(Message, frozen=True):
    """The payload of a `get_static` reply: what the device is."""

    name: str
    nqubits: int
    topology: list[tuple[int, int]]
    """Coupled qubit pairs; a two-qubit gate may act on a pair in either order."""
    pgs: list[str]
    """The primitive gate set: QuIS gate names and `measure`, `init`, `reset`, ..."""
    starttime: float
    protocol_version: int = PROTOCOL_VERSION
    default_compiler_config: dict[str, Any] = field(default_factory=dict)
    supports_raw_data: bool = False
    """Absent in a reply: false (compute-runtime-schema v3's default)."""


class StatePayload(Message, frozen=True):
    """What a `publish_state` message says."""

    state: DeviceState
    timestamp: float


class PublishState(Message, frozen=True):
    """The device's heartbeat on its PUB socket."""

    command: Literal["publish_state"]
    payload: StatePayload


class Reply(Message, frozen=True, omit_defaults=True):
    """A device's answer to one request. A client reads it leniently: any status but
    `success` is a refusal, a payload that is not an object is empty, any `version` goes."""

    session_id: str
    status: str
    """`success` or `failure`."""
    payload: Any = None
    version: Any = None


CLIENT_MESSAGES = (Reply, StaticInfo, ExecuteRequest)
"""The message types a 2200 client reads or writes (for `wire.prepare`)."""


# The device's side.


def _refusal(error: msgspec.ValidationError, prefix: str) -> DeviceRefused:
    path, what = fault(error)
    name = prefix + path.split(".")[0].split("[")[0] if path else prefix.rstrip(".")
    rule = FIELD_RULES.get(name)
    return DeviceRefused(f"{name} {rule}" if rule else f"{name or 'the request'}: {what}")


def read_request(frame: bytes) -> Request:
    """The request in `frame`; raises DeviceRefused (saying what is wrong) for anything else.
    The failure reply echoes the session id and version when they could be read
    (`session_of`)."""
    try:
        body = json.loads(frame)
    except (ValueError, RecursionError):
        raise DeviceRefused("the request is not a JSON document") from None
    if not isinstance(body, dict):
        raise DeviceRefused("the request must be a JSON object")
    request: Request = decode_strictly(Request, body, "")
    if request.session_id is None and request.command in SESSION_COMMANDS:
        raise DeviceRefused(f"session_id is required for {request.command}")
    return request


def decode_strictly(kind: Any, body: Any, prefix: str) -> Any:
    """`body` as a `kind`; raises DeviceRefused naming the field (under `prefix`) by its rule."""
    try:
        return msgspec.convert(body, kind)
    except msgspec.ValidationError as exc:
        raise _refusal(exc, prefix) from None


_INTEGERS = ("job_id", "run_id", "number_of_shots")


def _payload(request: Request) -> Any:
    """The payload to read as an object: `{}` if there is none, else as sent, except that an
    integer written with a zero fraction (`1.0`, `1e3`) becomes that integer, since JSON
    Schema's `integer` is any number without a fractional part."""
    payload = request.payload
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        return payload
    return {
        key: int(value)
        if key in _INTEGERS and isinstance(value, float) and value.is_integer()
        else value
        for key, value in payload.items()
    }


def read_execute(request: Request) -> ExecuteRequest:
    """The arguments of an `execute`; raises DeviceRefused naming the field at fault."""
    arguments: ExecuteRequest = decode_strictly(ExecuteRequest, _payload(request), "payload.")
    if arguments.job_id is None and arguments.run_id is None:
        raise DeviceRefused(f"payload.job_id {FIELD_RULES['payload.job_id']}")
    return arguments


def read_set_publish(request: Request) -> SetPublish:
    """The arguments of a `set_publish`; raises DeviceRefused naming the field at fault."""
    arguments: SetPublish = decode_strictly(SetPublish, _payload(request), "payload.")
    return arguments


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


def success(request: Request, payload: Message | dict[str, Any] | None = None) -> bytes:
    """A success reply to `request`, carrying `payload` if given."""
    body = msgspec.to_builtins(payload) if payload is not None else None
    return to_json(Reply(request.reply_session, "success", body, request.echoed_version))


def failure(session_id: str, version: str | None, message: str) -> bytes:
    """A failure reply carrying `message`."""
    return to_json(Reply(session_id, "failure", {"error_msg": message}, version))


def publish_state(state: DeviceState) -> bytes:
    """The heartbeat message announcing `state`."""
    return to_json(PublishState("publish_state", StatePayload(state, time.time())))


# The client's side.


def request_frame(
    command: Command | str, session_id: str, payload: Message | dict[str, Any] | None = None
) -> bytes:
    """A request to send, with `payload` if given."""
    body = msgspec.to_builtins(payload) if payload is not None else None
    return to_json(Request(session_id=session_id, command=str(command), payload=body))


def read_reply(frame: bytes, session_id: str, command: Command, address: str) -> dict[str, Any]:
    """The payload of the success reply in `frame` to session `session_id`'s `command`, sent to
    the device at `address`. Raises DeviceRefused for a failure reply (with the device's
    `error_msg`), DeviceUnavailable for anything that is not a reply to that session."""
    try:
        reply = decode(Reply, json.loads(frame))
    except (ValueError, RecursionError, MalformedMessage):
        reply = None
    if reply is None or reply.session_id != session_id:
        raise DeviceUnavailable(f"{address} answered {command} with {frame[:200]!r}")
    payload = reply.payload if isinstance(reply.payload, dict) else {}
    if reply.status != "success":
        error = payload.get("error_msg")
        raise DeviceRefused(str(error or f"{command} failed without a reason"))
    return payload
