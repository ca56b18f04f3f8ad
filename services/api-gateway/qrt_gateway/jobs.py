"""`/jobs`: submit, list, inspect, cancel and delete jobs; read their logs and results."""

from __future__ import annotations

from aiohttp import web

from qrt_common.accounts import Role
from qrt_common.backends import DEFAULT_BACKEND
from qrt_common.errors import InvalidInput
from qrt_common.jobs import JobStatus
from qrt_common.store.base import JobQuery
from qrt_common.submission import check_may_run, new_job, program_params

from .auth import principal
from .context import gateway
from .pacing import JsonBody
from .plumbing import (
    REPLAYED,
    attempt_query,
    bool_query,
    idempotency_key,
    int_query,
    json_response,
    read_json,
    time_query,
    validated,
)
from .schemas import JobCreated, JobList, JobOut, JobRequest, JobSummary, dump
from .strict import paced_strict_json

MAX_PAGE = 1000
MAX_OFFSET = 2**62


async def create_job(request: web.Request) -> web.Response:
    gw = gateway(request)
    who = principal(request)
    body = validated(JobRequest, await read_json(request))
    instance = f"{body.hub}/{body.group}/{body.project}"
    if not body.model_fields_set & {"hub", "group", "project"}:
        # Named none: the default instance, else the caller's one instance (as PlanQK's API).
        instance = who.submit_instance(instance) or instance
    gw.require(who, instance, Role.MEMBER, "submitting a job")
    program = await gw.visible_program(body.program_id, who)
    if program is None:
        raise await gw.program_not_found(body.program_id, who, field="programId")
    check_may_run(program, instance)
    backend = body.backend or DEFAULT_BACKEND
    gw.require_backend(backend)
    job = new_job(
        program,
        program_params(body.params, program),
        backend=backend,
        instance=instance,
        max_execution_time=body.max_execution_time,
        tags=body.tags,
        session_id=body.session_id,
        priority=body.priority,
        idempotency_key=idempotency_key(request),
        submitter=who.user if who.key_id is not None else None,
    )
    stored = await gw.submit(job)
    response = json_response(dump(JobCreated(id=stored.id)))
    if stored.id != job.id:
        response.headers[REPLAYED] = "true"
    return response


_STATUS_BY_NAME = {status.value.casefold(): status for status in JobStatus}
"""`completed` and `COMPLETED` name the status the API spells `Completed`."""


def _statuses(request: web.Request) -> set[JobStatus]:
    """The statuses the `pending` and `status` query parameters allow."""
    allowed = set(JobStatus)
    pending = bool_query(request, "pending")
    if pending is not None:
        allowed = {s for s in allowed if s.is_final != pending}
    named = request.query.getall("status", [])
    if named:
        unknown = [raw for raw in named if raw.strip().casefold() not in _STATUS_BY_NAME]
        if unknown:
            known = ", ".join(s.value for s in JobStatus)
            raise InvalidInput(
                f"unknown status {unknown[0]!r}; use one of: {known}", field="status"
            )
        allowed &= {_STATUS_BY_NAME[raw.strip().casefold()] for raw in named}
    return allowed


async def list_jobs(request: web.Request) -> web.Response:
    statuses = _statuses(request)
    query = JobQuery(
        limit=int_query(request, "limit", 200, 1, MAX_PAGE),
        offset=int_query(request, "offset", 0, 0, MAX_OFFSET),
        statuses=() if statuses == set(JobStatus) else statuses,
        program_id=request.query.get("program"),
        backend=request.query.get("backend"),
        hub=request.query.get("hub"),
        group=request.query.get("group"),
        project=request.query.get("project"),
        tags=[t for raw in request.query.getall("tags", []) for t in raw.split(",") if t],
        session_id=request.query.get("session_id"),
        instances=principal(request).instances,
        created_after=time_query(request, "created_after"),
        created_before=time_query(request, "created_before"),
        with_params=False,  # a summary shows none: the store leaves them unread
    )
    if not statuses:
        return json_response(dump(JobList(jobs=[], count=0)))
    jobs, total = await gateway(request).store.list_jobs(query)
    return json_response(dump(JobList(jobs=[JobSummary.of(j) for j in jobs], count=total)))


async def get_job(request: web.Request) -> web.Response:
    job = await gateway(request).find_job(request.match_info["job_id"], principal(request))
    return json_response(dump(JobOut.of(job)))


async def get_logs(request: web.Request) -> web.StreamResponse:
    gw = gateway(request)
    job = await gw.find_job(request.match_info["job_id"], principal(request))
    attempt = attempt_query(request, job.attempt)
    body = JsonBody(request)
    await body.write('"')
    async for page in gw.store.log_pages(job.id, attempt=attempt):
        await body.write_escaped("".join(chunk.text for chunk in page))
    await body.write('"')
    return await body.finish()


async def get_results(request: web.Request) -> web.StreamResponse:
    gw = gateway(request)
    job = await gw.find_job(request.match_info["job_id"], principal(request))
    result = await gw.store.get_result(job.id)
    if result is None and job.status.is_final and job.status is not JobStatus.COMPLETED:
        # Qiskit Runtime clients read the job's status before its result and never ask a
        # failed or cancelled one; anybody who does learns that no result will come.
        why = f" ({job.reason})" if job.reason else ""
        detail = f"job '{job.id}' ended {job.status.value}{why}: it has no result"
        refusal = {
            "detail": detail,
            "field": None,
            "status": job.status.value,
            "reason": job.reason,
        }
        return web.json_response(refusal, status=409)
    if result is None:
        return web.Response(status=204)
    body = JsonBody(request)
    await body.write_string(await paced_strict_json(result, body.pacer))
    return await body.finish()


async def cancel_job(request: web.Request) -> web.Response:
    gw = gateway(request)
    who = principal(request)
    job = await gw.find_job(request.match_info["job_id"], who)
    gw.require(who, job.instance, Role.MEMBER, "cancelling a job")
    await gw.cancel(job, job.status.value)
    return web.Response(status=204)


async def delete_job(request: web.Request) -> web.Response:
    gw = gateway(request)
    who = principal(request)
    await gw.delete(await gw.find_job(request.match_info["job_id"], who), who)
    return web.Response(status=204)
