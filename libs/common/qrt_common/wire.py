"""Typed messages between processes: msgspec Structs, written by one side and validated where
they arrive.

Each process boundary has one module of message types that both sides import: the bus
(`qrt_common.messages`), an executor and its job processes (`qrt_executor.job_protocol`), a
2200 client and a 2300 device (`qrt_common.device_protocol`). A field renamed on one side is
then renamed on the other, or mypy says where it was not.

msgspec rather than pydantic (which qrt uses for HTTP bodies and settings): a job process
forked from the zygote reads its launch and writes its result with about 20 page faults more
than doing nothing, where pydantic's validators cost it about 120, a sixth of a no-op job's
faults (`bench/job_process.py`). Validation is strict: no "5" for 5, no true for 1.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec

from .errors import MalformedMessage

M = TypeVar("M")

Message = msgspec.Struct
"""The base class of every message type."""

_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {}
_ENCODER = msgspec.json.Encoder()


def decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    """The (cached) JSON decoder of message type `kind` (a Struct, or a union of tagged ones)."""
    found = _DECODERS.get(kind)
    if found is None:
        found = _DECODERS[kind] = msgspec.json.Decoder(kind)
    return found


def prepare(kinds: Iterable[Any]) -> None:
    """Build the decoders of `kinds` now, so that a process forked afterwards (a job process,
    from its zygote) need not."""
    for kind in kinds:
        decoder(kind)


_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")


def fault(error: msgspec.ValidationError) -> tuple[str, str]:
    """Where a message is at fault (a field path such as `payload.job_id`, or "" for the whole
    message) and what is wrong there, from msgspec's error."""
    match = _AT.match(str(error))
    assert match is not None  # the pattern matches any text
    what, path = match["what"], (match["path"] or "").lstrip(".")
    missing = _MISSING.match(what)
    if missing is not None:
        path = ".".join(part for part in (path, missing["field"]) if part)
        what = "required field missing"
    return path, what


def _malformed(kind: Any, error: msgspec.ValidationError) -> MalformedMessage:
    path, what = fault(error)
    return MalformedMessage(
        f"not a {_name(kind)}: {path}: {what}" if path else f"not a {_name(kind)}: {what}"
    )


def encode(message: Message) -> dict[str, Any]:
    """A message as a JSON-ready dict (what the bus carries)."""
    body: dict[str, Any] = msgspec.to_builtins(message)
    return body


def decode(kind: type[M], body: Any) -> M:
    """`body` (decoded JSON) validated as a `kind` message; raises MalformedMessage naming the
    field at fault."""
    try:
        return msgspec.convert(body, kind)
    except msgspec.ValidationError as exc:
        raise _malformed(kind, exc) from None


def to_json(message: Message) -> bytes:
    """A message as compact JSON."""
    return _ENCODER.encode(message)


def from_json(kind: Any, data: bytes | str) -> Any:
    """JSON text validated as a `kind` message (a Struct, or a union of tagged ones); raises
    MalformedMessage naming the field at fault, or saying it is not JSON."""
    try:
        return decoder(kind).decode(data)
    except msgspec.ValidationError as exc:
        raise _malformed(kind, exc) from None
    except msgspec.DecodeError as exc:
        raise MalformedMessage(f"not a {_name(kind)}: {exc}") from None


def _name(kind: Any) -> str:
    """A message type's name for people: its class, or the classes of a union."""
    members = [getattr(member, "__name__", "message") for member in getattr(kind, "__args__", ())]
    if len(members) > 1:
        return f"{', '.join(members[:-1])} or {members[-1]}"
    return str(getattr(kind, "__name__", "message"))
