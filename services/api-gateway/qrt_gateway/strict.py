"""Strict JSON out: every body and frame the gateway sends is RFC 8259 JSON, without the `NaN`,
`Infinity` and `-Infinity` that Python's `json` writes for non-finite floats and that strict
parsers (JavaScript's, Go's, jq) refuse.

Executors refuse non-finite numbers in results and interim results, but a store may hold older
ones. The gateway sends each such number as `null`, as JavaScript's `JSON.stringify` does; the
rest of the text goes out as stored.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec

from .pacing import Pacer, contains_any

VALIDATED_BYTES = 64 * 1024
"""Stored texts up to this length are checked to be JSON before they go out as they are; a
longer one (written by the gateway's own kind of code, `json.dumps`) is only searched for the
words non-finite numbers are written as, which is several times cheaper."""

NON_FINITE_WORDS = ("NaN", "Infinity")


def dumps(value: Any) -> str:
    """`value` as strict JSON text (non-ASCII characters as they are); raises ValueError for a
    non-finite float."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def finite(value: Any) -> Any:
    """`value` (decoded JSON) with every non-finite float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def strict_json(text: str) -> str:
    """The stored JSON text `text` as strict JSON: as it is when it holds no non-finite
    number, else re-encoded with each one as null. A text that is not JSON at all (never
    written by qrt) goes out as a JSON string holding it."""
    if len(text) <= VALIDATED_BYTES:
        return _checked(text)
    if any(word in text for word in NON_FINITE_WORDS):
        return _repaired(text)
    return text


async def paced_strict_json(text: str, pacer: Pacer) -> str:
    """`strict_json(text)`, searching a long text a slice at a time with `pacer`."""
    if len(text) <= VALIDATED_BYTES:
        return _checked(text)
    if await contains_any(text, NON_FINITE_WORDS, pacer):
        return _repaired(text)
    return text


def _checked(text: str) -> str:
    try:
        msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):  # (a store may hold what executors refuse)
        return _repaired(text)
    return text


def _repaired(text: str) -> str:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return dumps(text)
    try:
        return dumps(finite(value))
    except RecursionError:
        return dumps(text)
