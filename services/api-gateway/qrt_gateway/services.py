"""`/services/{program_id}/`: PlanQK's Service API for every program.

A service execution is a job: the same one `/jobs` shows, under PlanQK's names. A PlanQK
program gets `{"data", "params"}` as they came; a Qiskit Runtime program gets the keys of
both as its keyword arguments.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from qrt_common.backends import DEFAULT_BACKEND
from qrt_common.jobs import DEFAULT_INSTANCE, Job, JobStatus, new_job_id
from qrt_common.programs import Program

from .context import Gateway, gateway
from .errors import ApiError, from_validation_error
from .jobs import enqueue, json_response, parse_json, planqk_params, program_params, request_cancel
from .schemas import (
    ExecutionOut,
    LogEntryOut,
    ServiceHealth,
    ServiceLog,
    ServiceRequest,
    dump,
    execution_status,
)

FAILURE_CODE = "500"
"""The code of a failure that the program itself gave no body for."""


async def _program(gw: Gateway, request: web.Request) -> Program:
    program_id = request.match_info["program_id"]
    program = await gw.program(program_id)
    if program is None:
        raise ApiError(404, f"service '{program_id}' not found")
    return program


async def _execution(request: web.Request) -> tuple[Gateway, Job]:
    gw = gateway(request)
    program = await _program(gw, request)
    execution_id = request.match_info["execution_id"]
    job = await gw.store.get_job(execution_id)
    if job is None or job.program_id != program.id:
        raise ApiError(404, f"execution '{execution_id}' of service '{program.id}' not found")
    return gw, job


def _execution_response(job: Job, status: int = 200, **headers: str) -> web.Response:
    response = json_response(dump(ExecutionOut.of(job)), status)
    response.headers.update(headers)
    return response


async def _read_input(request: web.Request, limit: int) -> Any:
    too_large = ApiError(413, f"the input is larger than the limit of {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    raw = await request.read()
    if len(raw) > limit:
        raise too_large
    return parse_json(raw)


def _job_params(program: Program, body: ServiceRequest) -> str:
    if program.kind.is_planqk:
        return planqk_params({"data": body.data, "params": body.params})
    data, params = body.data or {}, body.params or {}
    both = sorted(data.keys() & params.keys())
    if both:
        raise ApiError(400, f"'{both[0]}' is given in both data and params", f"params.{both[0]}")
    return program_params({**data, **params}, program)


async def health(request: web.Request) -> web.Response:
    await _program(gateway(request), request)
    return json_response(dump(ServiceHealth(status="Service is up and running")))


async def start_execution(request: web.Request) -> web.Response:
    gw = gateway(request)
    program = await _program(gw, request)
    raw = await _read_input(request, gw.settings.max_service_input_bytes)
    try:
        body = ServiceRequest.model_validate(raw)
    except ValidationError as exc:
        raise from_validation_error(exc) from None
    # An uploaded service's executions belong to the instance that uploaded it.
    hub, group, project = (program.owner or DEFAULT_INSTANCE).split("/")
    job = Job(
        id=new_job_id(),
        program_id=program.id,
        backend=DEFAULT_BACKEND,
        params=_job_params(program, body),
        max_execution_time=program.max_execution_time,
        hub=hub,
        group=group,
        project=project,
    )
    await enqueue(gw, job)
    location = f"/services/{program.id}/{job.id}"
    return _execution_response(job, 201, Location=location)


async def get_execution(request: web.Request) -> web.Response:
    _, job = await _execution(request)
    return _execution_response(job)


async def get_result(request: web.Request) -> web.Response:
    gw, job = await _execution(request)
    status = execution_status(job.status)
    if status not in ("SUCCEEDED", "FAILED"):
        raise ApiError(409, f"execution '{job.id}' is {status}: it has no result")
    stored = await gw.store.get_result(job.id)
    if stored is not None:
        return json_response(stored)
    if job.status is JobStatus.COMPLETED:
        return json_response("null")
    detail = job.reason or "the execution failed"
    return json_response(json.dumps({"code": FAILURE_CODE, "detail": detail}))


async def get_interim_results(request: web.Request) -> web.Response:
    gw, job = await _execution(request)
    last = request.query.get("last", "false").lower()
    if last not in ("true", "false"):
        raise ApiError(400, "query parameter 'last' must be true or false", "last")
    interims = [json.loads(interim.data) for interim in await gw.store.list_interims(job.id)]
    if last == "true":
        return json_response(json.dumps(interims[-1] if interims else None))
    return json_response(json.dumps(interims))


async def get_log(request: web.Request) -> web.Response:
    gw, job = await _execution(request)
    lines = (await gw.store.read_log(job.id)).splitlines()
    entries = [LogEntryOut(message=line, severity="INFO") for line in lines]
    return json_response(dump(ServiceLog(entries)))


async def cancel_execution(request: web.Request) -> web.Response:
    gw, job = await _execution(request)
    await request_cancel(gw, job, execution_status(job.status))
    return _execution_response(await gw.store.get_job(job.id) or job)
