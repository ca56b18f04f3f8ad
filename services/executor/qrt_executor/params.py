"""A job's params decoded where its program runs, every failure a reason that says so.

The gateway keeps params as the JSON text it checked; what they decode into is only known where
the program runs: a Qiskit Runtime program's keyword arguments through RuntimeDecoder (circuits,
arrays, complex numbers, ...) in its job process, a PlanQK program's `data` and `params`. Params
that cannot be decoded there (a ragged array RuntimeDecoder cannot rebuild, broken base64 or
QPY, a shape the program's kind does not take) fail the job with "the params could not be
decoded: <where>: <why>", never with a decoder's traceback.

No qiskit here: the executor itself decodes one-shot programs' input, and never imports qiskit.
"""

from __future__ import annotations

import json
from typing import Any

from qrt_common.errors import ParamsUndecodable

LEAD = "the params could not be decoded"
MAX_WHY = 300
"""Characters of a decoder's own message kept in the reason."""


def _name(error: BaseException) -> str:
    name = type(error).__name__
    # binascii.Error, zlib.error: a bare "Error" says nothing.
    return f"{type(error).__module__}.{name}" if name.lower() == "error" else name


def _why(error: BaseException) -> str:
    if isinstance(error, RecursionError):
        return "nested too deeply"
    lines = str(error).strip().splitlines()
    why = f"{_name(error)}: {lines[0]}" if lines else _name(error)
    return why if len(why) <= MAX_WHY else why[: MAX_WHY - 1] + "…"


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if type(value) in names:
        return names[type(value)]
    return "a number" if isinstance(value, int | float) else f"a {type(value).__name__}"


def _culprit(text: str, decoder: type[json.JSONDecoder]) -> str:
    """The keyword argument `decoder` fails on (`params.<name>: `), found by decoding each
    alone; "" when plain JSON cannot tell (the text itself is broken)."""
    try:
        values = json.loads(text)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(values, dict):
        return ""
    for name, value in values.items():
        try:
            json.loads(json.dumps(value), cls=decoder)
        except Exception:
            return f"params.{name}: "
    return ""


def keyword_arguments(text: str, decoder: type[json.JSONDecoder]) -> dict[str, Any]:
    """A Qiskit Runtime program's keyword arguments: `text` decoded with `decoder`
    (RuntimeDecoder); raises ParamsUndecodable naming the argument at fault and why."""
    if text in ("", "{}"):
        return {}
    try:
        values = json.loads(text, cls=decoder)
    except Exception as exc:  # a decoder may raise anything: ValueError, KeyError, QpyError, ...
        raise ParamsUndecodable(f"{LEAD}: {_culprit(text, decoder)}{_why(exc)}") from None
    if not isinstance(values, dict):
        raise ParamsUndecodable(
            f"{LEAD}: they must be a JSON object of keyword arguments, not {_json_type(values)}"
        )
    return values


def planqk_arguments(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A PlanQK program's `data` and `params` (each `{}` when absent or null) from a job's
    params `{"data": {...}, "params": {...}}`; raises ParamsUndecodable saying why not."""
    try:
        values = json.loads(text) if text else {}
    except (ValueError, RecursionError) as exc:
        raise ParamsUndecodable(f"{LEAD}: {_why(exc)}") from None
    if not isinstance(values, dict):
        raise ParamsUndecodable(
            f"{LEAD}: a PlanQK program takes an object holding 'data' and 'params', "
            f"not {_json_type(values)}"
        )
    for name in values:
        if name not in ("data", "params"):
            raise ParamsUndecodable(
                f"{LEAD}: a PlanQK program takes 'data' and 'params', not '{name}'"
            )
    parts = []
    for name in ("data", "params"):
        part = values.get(name)
        if part is None:
            part = {}
        if not isinstance(part, dict):
            raise ParamsUndecodable(
                f"{LEAD}: '{name}' must be a JSON object, not {_json_type(part)}"
            )
        parts.append(part)
    return parts[0], parts[1]
