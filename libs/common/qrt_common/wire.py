"""Typed messages between processes: frozen dataclasses, written by one side and validated by
pydantic where they arrive.

Each process boundary has one module of message types that both sides import: the bus
(`qrt_common.messages`), an executor and its job processes (`qrt_executor.job_protocol`), a
2200 client and a 2300 device (`qrt_common.device_protocol`). A field renamed on one side is
then renamed on the other, or mypy says where it was not.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Annotated, Any, TypeVar, get_args, get_origin

from pydantic import TypeAdapter, ValidationError

from .errors import MalformedMessage

M = TypeVar("M")

_SCALARS = (str, int, float, bool, type(None))


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(cls.__dataclass_fields__)  # type: ignore[attr-defined]


def plain(value: Any) -> Any:
    """`value` with every dataclass instance in it (also inside lists, tuples and dicts) as a
    dict of its fields, lists and tuples as lists.

    `dataclasses.asdict` without its deep copy of every other value: the stores and the bus turn
    the dict into JSON or BSON at once, and the copy was most of the cost of storing a job.
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


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def adapter(kind: Any) -> TypeAdapter[Any]:
    """The (cached) pydantic validator of message type `kind` (a class or an annotated union)."""
    found = _ADAPTERS.get(kind)
    if found is None:
        found = _ADAPTERS[kind] = TypeAdapter(kind)
    return found


def prepare(kinds: Iterable[Any]) -> None:
    """Build the validators of `kinds` now: one costs up to 20 ms to build, which a process
    forked afterwards (a job process, from its zygote) then need not pay."""
    for kind in kinds:
        adapter(kind)


def describe(error: ValidationError) -> str:
    """The first problem pydantic found, as `field.path: what is wrong`."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def encode(message: Any) -> dict[str, Any]:
    """A message as a JSON-ready dict (what the bus carries)."""
    body: dict[str, Any] = plain(message)
    return body


def decode(kind: type[M], body: Any) -> M:
    """`body` (decoded JSON) validated as a `kind` message; raises MalformedMessage naming the
    first field at fault."""
    try:
        message: M = adapter(kind).validate_python(body)
    except ValidationError as exc:
        raise MalformedMessage(f"not a {_name(kind)}: {describe(exc)}") from None
    return message


def from_json(kind: Any, data: bytes | str) -> Any:
    """JSON text validated as a `kind` message (a class or an annotated union); raises
    MalformedMessage naming the first field at fault."""
    try:
        return adapter(kind).validate_json(data)
    except ValidationError as exc:
        raise MalformedMessage(f"not a {_name(kind)}: {describe(exc)}") from None


def to_json(message: Any) -> bytes:
    """A message as compact JSON."""
    data: bytes = adapter(type(message)).dump_json(message)
    return data


def _name(kind: Any) -> str:
    """A message type's name for people: its class, or the classes of an annotated union."""
    if get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    members = [getattr(member, "__name__", "message") for member in get_args(kind)]
    if len(members) > 1:
        return f"{', '.join(members[:-1])} or {members[-1]}"
    return str(getattr(kind, "__name__", "message"))
