"""`/jobs`: submit, list, inspect, cancel and delete jobs; read their logs and results."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from qrt_common.backends import DEFAULT_BACKEND
from qrt_common.jobs import Job, JobStatus, new_job_id
from qrt_common.messages import CANCEL_QUEUE, SUBMITTED_QUEUE, CancelJob, JobSubmitted, encode
from qrt_common.programs import Program, planqk_input
from qrt_common.store import JobQuery

from .context import Gateway, gateway
from .errors import ApiError, from_validation_error
from .schemas import JobCreated, JobList, JobOut, JobRequest, dump

MAX_PAGE = 1000

_PARAM_TYPES: dict[str, tuple[type, ...]] = {
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


def json_response(text: str, status: int = 200) -> web.Response:
    return web.Response(status=status, text=text, content_type="application/json")


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a 400 that says why it is not."""
    return parse_json(await request.read())


def parse_json(raw: bytes) -> Any:
    """A request body as JSON, or a 400 that says why it is not."""
    if not raw:
        raise ApiError(400, "request body is empty; send a JSON object")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply") from None


def _check_type(program: Program, name: str, value: Any) -> None:
    declared = program.parameter_type(name)
    expected = _PARAM_TYPES.get((declared or "").lower())
    if expected is None or (isinstance(value, dict) and "__type__" in value):
        return  # undeclared, exotic or RuntimeEncoder-wrapped: the program decodes it
    wrong_bool = isinstance(value, bool) and bool not in expected
    if wrong_bool or not isinstance(value, expected):
        raise ApiError(
            400,
            f"parameter '{name}' must be of type {declared}, got {type(value).__name__}",
            f"params.{name}",
        )


def program_params(raw: Any, program: Program) -> str:
    """The job's params as JSON text, after checking them against the program's metadata.

    Only the outer object is parsed here; RuntimeEncoder values inside it are decoded by the
    program's own process.
    """
    if raw is None or raw == []:
        text, values = "{}", {}
    elif isinstance(raw, list):
        if len(raw) != 1 or not isinstance(raw[0], str):
            raise ApiError(400, "params must be a list holding one JSON string", "params")
        text = raw[0]
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise ApiError(400, f"params[0] is not valid JSON: {exc}", "params[0]") from None
        except RecursionError:
            raise ApiError(400, "params[0] is nested too deeply", "params[0]") from None
        if not isinstance(values, dict):
            raise ApiError(400, "params[0] must encode a JSON object", "params[0]")
    elif isinstance(raw, dict):
        text, values = json.dumps(raw), raw
    else:
        raise ApiError(400, "params must be a JSON object or a list of one JSON string", "params")
    if program.kind.is_planqk:
        return planqk_params(values)
    for name in program.required_parameters():
        if name not in values:
            raise ApiError(400, f"missing required parameter '{name}'", f"params.{name}")
    for name, value in values.items():
        _check_type(program, name, value)
    return text


def planqk_params(values: dict[str, Any]) -> str:
    """The input of a PlanQK program, given as its keyword arguments `data` and `params`."""
    for name, value in values.items():
        if name not in ("data", "params"):
            raise ApiError(
                400, f"a PlanQK program takes 'data' and 'params', not '{name}'", f"params.{name}"
            )
        if value is not None and not isinstance(value, dict):
            raise ApiError(400, f"'{name}' must be a JSON object", f"params.{name}")
    return planqk_input(values.get("data") or {}, values.get("params") or {})


async def enqueue(gw: Gateway, job: Job) -> None:
    """Store `job` and announce it to the scheduler; a 503 (and no job) if it cannot be."""
    await gw.store.add_job(job)
    try:
        await gw.bus.send(SUBMITTED_QUEUE, encode(JobSubmitted.of(job)))
    except Exception as exc:
        # Accepting a job nobody will schedule would lose it silently: take it back.
        await gw.store.delete_job(job.id)
        raise ApiError(503, f"job not accepted, the message bus is unavailable: {exc}") from exc


async def create_job(request: web.Request) -> web.Response:
    gw = gateway(request)
    body = await read_json(request)
    try:
        spec = JobRequest.model_validate(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    program = await gw.program(spec.program_id)
    if program is None:
        raise ApiError(404, f"program '{spec.program_id}' not found", "programId")
    instance = f"{spec.hub}/{spec.group}/{spec.project}"
    if not program.is_public and program.owner not in (None, instance):
        raise ApiError(
            403,
            f"program '{program.id}' is private to {program.owner}; run it from that "
            "hub/group/project or make it public",
            "programId",
        )
    backend = spec.backend or DEFAULT_BACKEND
    if backend not in gw.backends():
        known = ", ".join(gw.backends())
        raise ApiError(400, f"unknown backend '{backend}'; available: {known}", "backend")
    limit = min(spec.max_execution_time or program.max_execution_time, program.max_execution_time)
    job = Job(
        id=new_job_id(),
        program_id=program.id,
        backend=backend,
        params=program_params(spec.params, program),
        max_execution_time=limit,
        hub=spec.hub,
        group=spec.group,
        project=spec.project,
        tags=tuple(spec.tags),
        session_id=spec.session_id,
        priority=spec.priority,
    )
    await enqueue(gw, job)
    return json_response(dump(JobCreated(id=job.id)))


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"query parameter '{name}' must be an integer", name) from None
    if not low <= value <= high:
        raise ApiError(400, f"query parameter '{name}' must be between {low} and {high}", name)
    return value


def _time_query(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"query parameter '{name}' must be an ISO 8601 time", name) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _statuses(request: web.Request) -> set[JobStatus]:
    """The statuses the `pending` and `status` query parameters allow."""
    allowed = set(JobStatus)
    pending = request.query.get("pending")
    if pending is not None:
        if pending.lower() not in ("true", "false"):
            raise ApiError(400, "query parameter 'pending' must be true or false", "pending")
        allowed = {s for s in allowed if s.is_final == (pending.lower() == "false")}
    named = request.query.getall("status", [])
    if named:
        try:
            allowed &= {JobStatus(raw) for raw in named}
        except ValueError:
            known = ", ".join(s.value for s in JobStatus)
            raise ApiError(400, f"unknown status; use one of: {known}", "status") from None
    return allowed


async def list_jobs(request: web.Request) -> web.Response:
    statuses = _statuses(request)
    query = JobQuery(
        limit=_int_query(request, "limit", 200, 1, MAX_PAGE),
        offset=_int_query(request, "offset", 0, 0, 2**62),
        statuses=() if statuses == set(JobStatus) else statuses,
        program_id=request.query.get("program"),
        backend=request.query.get("backend"),
        hub=request.query.get("hub"),
        group=request.query.get("group"),
        project=request.query.get("project"),
        tags=[t for raw in request.query.getall("tags", []) for t in raw.split(",") if t],
        session_id=request.query.get("session_id"),
        created_after=_time_query(request, "created_after"),
        created_before=_time_query(request, "created_before"),
    )
    if not statuses:
        return json_response(dump(JobList(jobs=[], count=0)))
    jobs, total = await gateway(request).store.list_jobs(query)
    return json_response(dump(JobList(jobs=[JobOut.of(j) for j in jobs], count=total)))


async def find_job(request: web.Request) -> Job:
    job_id = request.match_info["job_id"]
    job = await gateway(request).store.get_job(job_id)
    if job is None:
        raise ApiError(404, f"job '{job_id}' not found")
    return job


async def get_job(request: web.Request) -> web.Response:
    return json_response(dump(JobOut.of(await find_job(request))))


async def get_logs(request: web.Request) -> web.Response:
    job = await find_job(request)
    return json_response(
        json.dumps(await gateway(request).store.read_log(job.id), ensure_ascii=False)
    )


async def get_results(request: web.Request) -> web.Response:
    job = await find_job(request)
    result = await gateway(request).store.get_result(job.id)
    if result is None:
        return web.Response(status=204)
    return json_response(json.dumps(result, ensure_ascii=False))


async def request_cancel(gw: Gateway, job: Job, status: str) -> None:
    """Ask the scheduler to cancel `job`; a 409 naming `status` if it has already ended."""
    if job.status.is_final:
        raise ApiError(409, f"job '{job.id}' has already ended: {status}")
    await gw.bus.send(CANCEL_QUEUE, encode(CancelJob(job.id)))


async def cancel_job(request: web.Request) -> web.Response:
    job = await find_job(request)
    await request_cancel(gateway(request), job, job.status.value)
    return web.Response(status=204)


async def delete_job(request: web.Request) -> web.Response:
    job = await find_job(request)
    if not job.status.is_final:
        raise ApiError(409, f"job '{job.id}' is {job.status.value}; cancel it before deleting it")
    await gateway(request).store.delete_job(job.id)
    return web.Response(status=204)
