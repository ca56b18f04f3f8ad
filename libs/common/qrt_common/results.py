"""What a program's result and interim results must be for qrt to keep them, whatever the
program's kind: strict JSON, within a size limit.

- **Strict JSON** (RFC 8259): no `NaN`, `Infinity` or `-Infinity`, which Python's `json` writes
  for non-finite floats but JavaScript's, Go's and jq's parsers refuse. A result holding one is
  refused (the job fails, naming where it sits, `$.chisq`); so is an interim result (a Qiskit
  Runtime program's `publish` raises, a PlanQK marker line stays log). A number too large for a
  double (`1e999`) reads as infinity and is refused the same way. Numbers inside a numpy array
  are not JSON numbers (RuntimeEncoder carries arrays in binary) and may be anything.
- **Unicode text** (RFC 8259 §8.1, I-JSON RFC 7493 §2.1): a string holding a lone surrogate
  (`"\\ud800"`, which a Python string can hold) is refused the same way: UTF-8 cannot carry it
  and strict parsers replace or refuse it.
- **qrt's own notices**: an interim result that is a JSON object with the key `__qrt__`
  (`NOTICE_KEY`) is refused: a results stream uses that key for qrt's notices (a job's next
  attempt, before which everything it sent belongs to an earlier one), which a program must
  not be able to forge for the people who watch its jobs.
- **Size**: a result at most `QRT_MAX_RESULT_BYTES`, an interim result at most
  `QRT_MAX_INTERIM_BYTES`, counted as the UTF-8 bytes of its JSON text.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .wire import Message

MiB = 1024 * 1024
DEFAULT_MAX_RESULT_BYTES = 32 * MiB
LARGEST_MAX_RESULT_BYTES = 48 * MiB
"""A result travels in one bus message, which RabbitMQ takes up to 128 MiB by default, and a
JSON text quoted inside a message may take up to twice its size."""
DEFAULT_MAX_INTERIM_BYTES = 1 * MiB
LARGEST_MAX_INTERIM_BYTES = 8 * MiB
"""An interim result is kept in one MongoDB document, which holds at most 16 MiB."""
DEFAULT_MAX_INTERIMS_BYTES = 64 * MiB
"""All of a job attempt's interim results together (QRT_MAX_INTERIMS_BYTES)."""
READ_CHARS = 1 << 20
"""Results and interim results up to this length are read as JSON whole before they are kept:
one that a client could not read back (not JSON, nested too deeply, an integer of more digits
than Python converts) is refused. A longer one (only `json.dumps` writes those, unless a
program bypasses qrt's messenger) is searched for the words of what it may hold instead, since
reading tens of MiB would hold up every other job of its executor."""

NOTICE_KEY = "__qrt__"
"""The key of qrt's own notices on a results stream (`{"__qrt__": {"attempt": 2, ...}}`), which
no program's interim result may hold at its top level."""


class ResultLimits(Message, frozen=True):
    """The size limits of a job's results (QRT_MAX_RESULT_BYTES, QRT_MAX_INTERIM_BYTES)."""

    result_bytes: int = DEFAULT_MAX_RESULT_BYTES
    interim_bytes: int = DEFAULT_MAX_INTERIM_BYTES

    def of(self, *, interim: bool) -> int:
        """The limit of an interim result, or of the result."""
        return self.interim_bytes if interim else self.result_bytes


def text_bytes(text: str) -> int:
    """The size of `text` in UTF-8, without copying it when it is ASCII (as JSON text from
    `json.dumps` is)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _what(interim: bool, subject: str | None) -> str:
    return subject or ("an interim result" if interim else "the result")


def size_refusal(
    size: int, *, interim: bool, limits: ResultLimits, subject: str | None = None
) -> str | None:
    """Why a result (or interim result) of `size` bytes is refused, or None if it fits; the
    reason speaks of `subject` ("the result", "an interim result" unless given)."""
    limit = limits.of(interim=interim)
    if size <= limit:
        return None
    setting = "QRT_MAX_INTERIM_BYTES" if interim else "QRT_MAX_RESULT_BYTES"
    return f"{_what(interim, subject)} is larger than {setting} ({limit} bytes): {size} bytes"


def _member(key: str) -> str:
    return f".{key}" if key.isidentifier() else f"[{json.dumps(key)}]"


def non_finite(value: Any) -> tuple[str, str] | None:
    """The first non-finite float in a decoded JSON value, in document order: how JSON would
    spell it (`NaN`, `Infinity`, `-Infinity`) and where it sits (`$.a[3].b`); None if none."""
    waiting: list[tuple[Any, str]] = [(value, "$")]
    while waiting:
        item, path = waiting.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return ("NaN" if math.isnan(item) else "Infinity" if item > 0 else "-Infinity"), path
        if isinstance(item, dict):
            members = [(v, path + _member(str(k))) for k, v in item.items()]
            waiting.extend(reversed(members))
        elif isinstance(item, list):
            waiting.extend(reversed([(v, f"{path}[{n}]") for n, v in enumerate(item)]))
    return None


def lone_surrogate(value: Any) -> str | None:
    """Where the first string (key or value) holding a lone surrogate sits in a decoded JSON
    value (`$.a[3]`), in document order; None if none. `json.loads` joins the escapes of a
    valid pair into one character, so any surrogate left is alone."""
    waiting: list[tuple[Any, str]] = [(value, "$")]
    while waiting:
        item, path = waiting.pop()
        if isinstance(item, str) and _has_surrogate(item):
            return path
        if isinstance(item, dict):
            for key in item:
                if _has_surrogate(str(key)):
                    return path
            waiting.extend(reversed([(v, path + _member(str(k))) for k, v in item.items()]))
        elif isinstance(item, list):
            waiting.extend(reversed([(v, f"{path}[{n}]") for n, v in enumerate(item)]))
    return None


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _may_hold_surrogate(text: str) -> bool:
    """Whether JSON text `text` may decode to a lone surrogate: it escapes one (`\\udXXX`, as
    `json.dumps` writes them) or holds one."""
    lowered = "\\ud" in text or "\\uD" in text
    return lowered or _has_surrogate(text)


def refusal(
    text: str, *, interim: bool, limits: ResultLimits, subject: str | None = None
) -> str | None:
    """Why qrt refuses to keep `text` as a result (or an interim result), or None if it may;
    the reason speaks of `subject` as `size_refusal`'s does.

    `text` is JSON as Python's `json.dumps` writes it (which allows NaN and Infinity).
    """
    what = _what(interim, subject)
    too_large = size_refusal(text_bytes(text), interim=interim, limits=limits, subject=subject)
    if too_large is not None:
        return too_large
    numbers = "NaN" in text or "Infinity" in text
    notice = interim and NOTICE_KEY in text
    read = len(text) <= READ_CHARS
    if not read and not numbers and not notice and not _may_hold_surrogate(text):
        return None  # a long text, written by json.dumps, read only for what it may hold
    try:
        value = json.loads(text)
    except RecursionError:
        return (
            f"{what} is nested too deeply: JSON parsers stop at some depth (Python's, which "
            "qiskit-ibm-runtime's clients use, at about 1000 levels)"
        )
    except ValueError as exc:
        return f"{what} is not JSON: {exc}"
    if notice and isinstance(value, dict) and NOTICE_KEY in value:
        return (
            f"{what} holds the key {NOTICE_KEY!r} at its top level, which qrt keeps for its own "
            "notices on results streams: use another key"
        )
    found = non_finite(value) if numbers else None
    if found is not None:
        token, path = found
        return (
            f"{what} holds {token} at {path}; JSON has no NaN or Infinity (strict "
            "parsers refuse them): send null or a string in its place"
        )
    where = lone_surrogate(value)
    if where is not None:
        return (
            f"{what} holds a lone surrogate at {where}; JSON text must be Unicode (UTF-8 cannot "
            "carry half of a surrogate pair): send whole characters or bytes"
        )
    return None  # the words were in strings
