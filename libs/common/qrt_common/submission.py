"""Submitting work: who may run a program, its params checked against its metadata, and the
new job made. The rules of every API that creates jobs (`/jobs`, PlanQK's `/services`)."""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Collection
from typing import Any

from .backends import DEFAULT_BACKEND
from .errors import Conflict, Forbidden, InvalidInput
from .jobs import DEFAULT_INSTANCE, Job, new_job_id
from .primitives import PRIMITIVE_PROGRAMS, check_primitive_request
from .programs import Program, planqk_input

PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "integer": (int,),
    "float": (int, float),
    "number": (int, float),
    "str": (str,),
    "string": (str,),
    "bool": (bool,),
    "boolean": (bool,),
    "dict": (dict,),
    "object": (dict,),
    "list": (list,),
    "array": (list,),
}
"""A parameter's declared type (Qiskit Runtime's and JSON Schema's words) to the Python types a
value of it may have; other declared types are not checked."""


def check_may_run(program: Program, instance: str) -> None:
    """Raise Forbidden (naming `programId`) unless `instance` (hub/group/project) may run
    `program`: a bundled or public one, or its own upload."""
    if not program.is_public and program.owner not in (None, instance):
        raise Forbidden(
            f"program '{program.id}' is private to {program.owner}; run it from that "
            "hub/group/project or make it public",
            field="programId",
        )


CIRCUIT_TYPE = "QuantumCircuit"
"""A parameter of this declared type takes a circuit as RuntimeEncoder writes it (QPY in a
`{"__type__": "QuantumCircuit"}` envelope) or a non-empty list of them, as Qiskit's
`backend.run` and `transpile` do."""


def _is_encoded_circuit(value: Any) -> bool:
    return isinstance(value, dict) and value.get("__type__") == CIRCUIT_TYPE


def _check_type(program: Program, name: str, value: Any) -> None:
    declared = program.parameter_type(name)
    if declared == CIRCUIT_TYPE:
        if not (
            _is_encoded_circuit(value)
            or (isinstance(value, list) and value and all(map(_is_encoded_circuit, value)))
        ):
            raise InvalidInput(
                f"parameter '{name}' must be a QuantumCircuit or a non-empty list of them "
                "(RuntimeEncoder-encoded)",
                field=f"params.{name}",
            )
        return
    expected = PARAM_TYPES.get((declared or "").lower())
    if expected is None or (isinstance(value, dict) and "__type__" in value):
        return  # undeclared, exotic or RuntimeEncoder-wrapped: the program decodes it
    wrong_bool = isinstance(value, bool) and bool not in expected
    if wrong_bool or not isinstance(value, expected):
        raise InvalidInput(
            f"parameter '{name}' must be of type {declared}, got {type(value).__name__}",
            field=f"params.{name}",
        )


def program_params(raw: Any, program: Program) -> str:
    """A job's params (the test server's list holding one JSON string, a JSON object or None)
    as the JSON text the job keeps, after checking them against the program's metadata;
    raises InvalidInput naming the field at fault.

    Only the outer object is parsed here; RuntimeEncoder values inside it are decoded by the
    program's own process.
    """
    if raw is None or raw == []:
        text, values = "{}", {}
    elif isinstance(raw, list):
        if len(raw) != 1 or not isinstance(raw[0], str):
            raise InvalidInput("params must be a list holding one JSON string", field="params")
        text = raw[0]
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"params[0] is not valid JSON: {exc}", field="params[0]") from None
        except RecursionError:
            raise InvalidInput("params[0] is nested too deeply", field="params[0]") from None
        if not isinstance(values, dict):
            raise InvalidInput("params[0] must encode a JSON object", field="params[0]")
    elif isinstance(raw, dict):
        text, values = json.dumps(raw), raw
    else:
        raise InvalidInput(
            "params must be a JSON object or a list of one JSON string", field="params"
        )
    if program.kind.is_planqk:
        return planqk_params(values, program)
    for name in program.required_parameters():
        if name not in values:
            raise InvalidInput(
                f"missing required parameter '{name}'{_misspelled(name, values)}",
                field=f"params.{name}",
            )
    for name, value in values.items():
        _check_type(program, name, value)
    if program.bundled and program.id in PRIMITIVE_PROGRAMS:
        # A V2 primitive's params and options, as far as they are known without the backend.
        check_primitive_request(program.id, values)
    return text


def _misspelled(name: str, values: dict[str, Any]) -> str:
    """A hint naming the given key that looks like a misspelling of parameter `name`."""
    close = difflib.get_close_matches(name, [str(key) for key in values], n=1, cutoff=0.75)
    return f"; params has '{close[0]}': a misspelling?" if close else ""


def planqk_params(values: dict[str, Any], program: Program | None = None) -> str:
    """The input of a PlanQK program, given as its keyword arguments `data` and `params`;
    raises InvalidInput for any other key or a value that is not an object, and for what
    breaks the parameters `program` declares (see `_check_planqk_inputs`)."""
    for name, value in values.items():
        if name not in ("data", "params"):
            raise InvalidInput(
                f"a PlanQK program takes 'data' and 'params', not '{name}'", field=f"params.{name}"
            )
        if value is not None and not isinstance(value, dict):
            raise InvalidInput(f"'{name}' must be a JSON object", field=f"params.{name}")
    data, params = values.get("data") or {}, values.get("params") or {}
    if program is not None and program.parameters:
        _check_planqk_inputs(program, {"data": data, "params": params})
    return planqk_input(data, params)


def _check_planqk_inputs(program: Program, parts: dict[str, dict[str, Any]]) -> None:
    """A PlanQK program's inputs against the parameters it declares, each named by the object
    that holds it (`data.n_qubits`, `params.shots`; other names are not checked): required
    ones given, declared types kept (null, which a template reads as it reads a key left out,
    is fine for one not required), and in an object that declares any, no key it does not
    declare (a template reads its inputs with `.get`: a misspelling would go unnoticed)."""
    declared = {
        p["name"]: p
        for p in program.parameters or ()
        if isinstance(p.get("name"), str) and p["name"].split(".", 1)[0] in parts
    }
    given = {
        f"{part}.{key}": value for part, values in parts.items() for key, value in values.items()
    }
    for name, parameter in declared.items():
        if parameter.get("required") is True and name not in given:
            raise InvalidInput(
                f"missing required parameter '{name}'{_misspelled(name, given)}",
                field=f"params.{name}",
            )
    checked = {name.split(".", 1)[0] for name in declared}
    for name, value in given.items():
        if name in declared:
            if value is not None or declared[name].get("required") is True:
                _check_type(program, name, value)
        elif name.split(".", 1)[0] in checked:
            close = difflib.get_close_matches(name, declared, n=1, cutoff=0.75)
            hint = f"; a misspelling of '{close[0]}'?" if close else ""
            raise InvalidInput(
                f"program '{program.id}' takes no parameter '{name}' (it takes "
                f"{', '.join(declared)}){hint}",
                field=f"params.{name}",
            )


def service_params(
    program: Program, data: dict[str, Any] | None, params: dict[str, Any] | None
) -> str:
    """The params of a PlanQK Service API execution of `program`: a PlanQK program takes
    `data` and `params` as they came, a Qiskit Runtime program the keys of both as its keyword
    arguments (a key in both is InvalidInput)."""
    if program.kind.is_planqk:
        return planqk_params({"data": data, "params": params}, program)
    data, params = data or {}, params or {}
    both = sorted(data.keys() & params.keys())
    if both:
        raise InvalidInput(
            f"'{both[0]}' is given in both data and params", field=f"params.{both[0]}"
        )
    return program_params({**data, **params}, program)


IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
"""What an `Idempotency-Key` may be: 1 to 255 visible ASCII characters (no spaces)."""


def checked_idempotency_key(key: str | None) -> str | None:
    """`key` (the header's value, None when absent) if usable; raises InvalidInput naming the
    header."""
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidInput(
            "Idempotency-Key must be 1 to 255 visible ASCII characters", field="Idempotency-Key"
        )
    return key


def new_job(
    program: Program,
    params: str,
    *,
    backend: str = DEFAULT_BACKEND,
    instance: str = DEFAULT_INSTANCE,
    max_execution_time: int | None = None,
    tags: Collection[str] = (),
    session_id: str | None = None,
    priority: int = 0,
    idempotency_key: str | None = None,
    submitter: str | None = None,
) -> Job:
    """A new queued job running `program` with `params` (checked JSON text) for `instance`
    (hub/group/project). Its time limit is the program's, or less if `max_execution_time`
    (seconds) asks for less. With an `idempotency_key` (checked), a second submit of the same
    instance and key gets this job (see `replayed`); the instance is the caller until callers
    have accounts. `submitter` is the user submitting it (None without API keys)."""
    limit = program.max_execution_time
    if max_execution_time:
        limit = min(max_execution_time, limit)
    hub, group, project = instance.split("/")
    asked = [program.id, backend, params, instance, sorted(tags), session_id, priority, limit]
    digest = hashlib.sha256(json.dumps(asked).encode()).hexdigest()
    return Job(
        id=new_job_id(),
        program_id=program.id,
        backend=backend,
        params=params,
        max_execution_time=limit,
        hub=hub,
        group=group,
        project=project,
        tags=tuple(tags),
        session_id=session_id,
        priority=priority,
        idempotency_key=None if idempotency_key is None else f"{instance} {idempotency_key}",
        request_digest=f"sha256:{digest}",
        submitter=submitter,
    )


def replayed(submitted: Job, stored: Job) -> bool:
    """Whether `stored` (what the store kept for `submitted`) is an earlier job of the same
    idempotency key: True for a retry of the same request, which gets that job; raises
    Conflict for the key used again for a different request."""
    if stored.id == submitted.id:
        return False
    if stored.request_digest != submitted.request_digest:
        key = (submitted.idempotency_key or "").split(" ", 1)[-1]
        raise Conflict(
            f"Idempotency-Key '{key}' was used for a different request (job {stored.id}); "
            "send a new key for a new request",
            field="Idempotency-Key",
        )
    return True
