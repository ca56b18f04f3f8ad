"""IBM's `/api/v1/jobs`: run the V2 primitives (`sampler`, `estimator`; IBM's other programs,
such as `executor` or `noise-learner`, are refused naming these) as ordinary qrt jobs
and read, list, tag, cancel and delete them, as the stock qiskit-ibm-runtime client does.

A job made here is a qrt job like any other (listed, streamed and cancelled through `/jobs`
too): it belongs to the instance the `Service-CRN` header names, its params are the client's
`params` object (RuntimeEncoder JSON, decoded only by the program), its time limit the
client's `max_execution_time` (sent as `cost`), and it is submitted through `Gateway.submit`.
This API only sees the jobs of the instance its CRN names.
"""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from qrt_common.accounts import Role
from qrt_common.backends import SIMULATORS
from qrt_common.errors import InvalidInput, NotFound
from qrt_common.jobs import Job, JobStatus
from qrt_common.primitives import check_primitive_request
from qrt_common.programs import LONGEST_EXECUTION_TIME
from qrt_common.store.base import JobQuery
from qrt_common.submission import check_may_run, new_job, program_params

from .auth import principal
from .context import gateway
from .ibm_api import CRN_PARAMETER, PREFIX, ibm_json, job_json, request_instance
from .openapi import Parameter, Route
from .plumbing import bool_query, int_query, json_response, read_json, time_query, validated
from .schemas import MAX_ID_CHARS, MAX_TAG_CHARS, MAX_TAGS, SHOWN_AS_IS, STRICT

MAX_PAGE = 1000
"""The most jobs one page lists (as qrt's own `GET /jobs`)."""
MAX_PAGE_WITH_PARAMS = 10
"""The most jobs one page lists with their params (`exclude_params=false`): a job's params
may be as large as a request (QRT_MAX_REQUEST_BYTES), so a page holds at most this many
requests' worth. qiskit-ibm-runtime always sends `exclude_params=true` (10 jobs a page unless
told otherwise)."""
MAX_OFFSET = 2**62

_Tag = Annotated[str, Field(min_length=1, max_length=MAX_TAG_CHARS), SHOWN_AS_IS]


class IbmJobRequest(BaseModel):
    """What the client's `POST /jobs` sends (`Runtime.program_run`)."""

    model_config = STRICT | ConfigDict(extra="forbid")

    program_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    backend: str | None = Field(None, max_length=MAX_ID_CHARS)
    params: dict[str, Any] = Field(default_factory=dict)
    session_id: str | None = Field(None, min_length=1, max_length=MAX_ID_CHARS)
    tags: list[_Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    cost: int | None = Field(None, gt=0, le=LONGEST_EXECUTION_TIME)
    """The client's `max_execution_time`, in seconds."""
    log_level: str | None = Field(None, max_length=20)
    """Accepted: a job's log holds everything the program writes anyway."""
    start_session: bool | None = None
    """Refused: older clients' way to start a session with a job (a Session creates one)."""
    session_time: int | None = None
    runtime: str | None = None
    """A container image to run the job in: refused."""
    private: bool | None = None
    """Refused: qrt keeps every job's inputs and results."""
    calibration_id: str | None = None
    """Refused: a device runs with the calibration in force."""


class IbmTags(BaseModel):
    """The body of `PUT /jobs/{id}/tags`."""

    model_config = STRICT | ConfigDict(extra="forbid")

    tags: list[_Tag] = Field(max_length=MAX_TAGS)


def _refuse_unsupported(body: IbmJobRequest) -> None:
    """Raise InvalidInput naming what qrt does not do that the request asks for: a program
    other than the V2 primitives, params or options they refuse (`check_primitive_request`),
    an image, a private job, a calibration id, no backend."""
    simulator = None if body.backend is None else body.backend in SIMULATORS
    check_primitive_request(body.program_id, body.params, simulator=simulator)
    if body.runtime:
        raise InvalidInput("custom runtime images (options.image) are not supported",
                           field="runtime")  # fmt: skip
    if body.private:
        raise InvalidInput(
            "private jobs (options.private) are not supported: qrt keeps every job's inputs "
            "and results until they are deleted",
            field="private",
        )
    if body.start_session:
        raise InvalidInput(
            "start_session is not supported: open a session first (Session(backend=...))",
            field="start_session",
        )
    if body.calibration_id is not None:
        raise InvalidInput(
            "calibration_id is not supported: a device runs with the calibration in force",
            field="calibration_id",
        )
    if not body.backend:
        raise InvalidInput("backend is required: name the backend to run on", field="backend")


async def _job(request: web.Request, instance: str) -> Job:
    """The job the path names, if it belongs to `instance` and the caller may see it; raises
    NotFound otherwise (the same whether it exists or not)."""
    job_id = request.match_info["job_id"]
    job = await gateway(request).find_job(job_id, principal(request))
    if job.instance != instance:
        raise NotFound(f"job '{job_id}' not found")
    return job


async def create_job(request: web.Request) -> web.Response:
    gw = gateway(request)
    who = principal(request)
    instance = request_instance(request)
    gw.require(who, instance, Role.MEMBER, "submitting a job")
    body = validated(IbmJobRequest, await read_json(request))
    _refuse_unsupported(body)
    assert body.backend is not None  # checked by _refuse_unsupported
    gw.require_backend(body.backend)
    program = await gw.visible_program(body.program_id, who)
    if program is None:
        raise await gw.program_not_found(
            body.program_id,
            who,
            missing="is not installed on this qrt (programs.ini)",
            field="program_id",
        )
    check_may_run(program, instance)
    job = new_job(
        program,
        program_params(body.params, program),
        backend=body.backend,
        instance=instance,
        max_execution_time=body.cost,
        tags=body.tags,
        session_id=body.session_id,
        submitter=who.user if who.key_id is not None else None,
    )
    # IBM's sessions are made first (POST /sessions): an id naming none is refused.
    stored = await gw.submit(job, session_must_exist=True)
    return ibm_json({"id": stored.id, "backend": stored.backend})


async def get_job(request: web.Request) -> web.Response:
    job = await _job(request, request_instance(request))
    excluded = bool_query(request, "exclude_params")
    return json_response(job_json(job, with_params=not excluded))


async def get_results(request: web.Request) -> web.StreamResponse:
    gw = gateway(request)
    job = await _job(request, request_instance(request))
    result = await gw.store.get_result(job.id)
    if result is None:
        return web.Response(status=204)
    return web.Response(text=result, content_type="application/json")


async def get_logs(request: web.Request) -> web.StreamResponse:
    gw = gateway(request)
    job = await _job(request, request_instance(request))
    return web.Response(text=await gw.store.read_log(job.id), content_type="text/plain")


async def cancel_job(request: web.Request) -> web.Response:
    gw = gateway(request)
    who = principal(request)
    job = await _job(request, request_instance(request))
    gw.require(who, job.instance, Role.MEMBER, "cancelling a job")
    await gw.cancel(job, job.status.value)
    return web.Response(status=204)


async def delete_job(request: web.Request) -> web.Response:
    gw = gateway(request)
    who = principal(request)
    await gw.delete(await _job(request, request_instance(request)), who)
    return web.Response(status=204)


async def replace_tags(request: web.Request) -> web.Response:
    gw = gateway(request)
    who = principal(request)
    job = await _job(request, request_instance(request))
    gw.require(who, job.instance, Role.MEMBER, "tagging a job")
    tags = list(dict.fromkeys(validated(IbmTags, await read_json(request)).tags))
    if not await gw.store.set_job_tags(job.id, tags):
        raise NotFound(f"job '{job.id}' not found")
    return web.Response(status=204)


def _order(request: web.Request) -> bool:
    """Whether `sort` asks for the oldest jobs first; raises InvalidInput."""
    raw = request.query.get("sort", "DESC")
    if raw.upper() not in ("ASC", "DESC"):
        raise InvalidInput("query parameter 'sort' must be ASC or DESC", field="sort")
    return raw.upper() == "ASC"


async def list_jobs(request: web.Request) -> web.Response:
    gw = gateway(request)
    instance = request_instance(request)
    gw.require(principal(request), instance, Role.READER, "listing jobs")
    pending = bool_query(request, "pending")
    statuses = () if pending is None else {s for s in JobStatus if s.is_final != pending}
    with_params = bool_query(request, "exclude_params") is False
    if with_params:
        limit = int_query(request, "limit", MAX_PAGE_WITH_PARAMS, 1, MAX_PAGE_WITH_PARAMS)
    else:
        limit = int_query(request, "limit", 200, 1, MAX_PAGE)
    offset = int_query(request, "offset", 0, 0, MAX_OFFSET)
    query = JobQuery(
        limit=limit,
        offset=offset,
        statuses=statuses,
        program_id=request.query.get("program"),
        backend=request.query.get("backend"),
        tags=[t for raw in request.query.getall("tags", []) for t in raw.split(",") if t],
        session_id=request.query.get("session_id"),
        instances=(instance,),
        created_after=time_query(request, "created_after"),
        created_before=time_query(request, "created_before"),
        oldest_first=_order(request),
        with_params=with_params,
    )
    jobs, total = await gw.store.list_jobs(query)
    listed = ", ".join(job_json(job, with_params=with_params) for job in jobs)
    text = f'{{"jobs": [{listed}], "count": {total}, "limit": {limit}, "offset": {offset}}}'
    return json_response(text)


_JOB = f"{PREFIX}/jobs/{{job_id}}"
_OBJECT = {"type": "object"}
_TIME = {"format": "date-time"}
_LIST_FILTERS = (
    CRN_PARAMETER,
    Parameter("limit", "Page size, 1 to 1000 (default 200); with exclude_params=false 1 to "
              f"{MAX_PAGE_WITH_PARAMS} (default {MAX_PAGE_WITH_PARAMS}).", "integer",
              constraints={"minimum": 1, "maximum": MAX_PAGE}),
    Parameter("offset", "How many matching jobs to skip.", "integer",
              constraints={"minimum": 0, "maximum": MAX_OFFSET}),
    Parameter("pending", "true: only Queued and Running jobs; false: only ended ones.", "boolean"),
    Parameter("program", "Only jobs of this program."),
    Parameter("backend", "Only jobs on this backend."),
    Parameter("tags", "Only jobs carrying all these tags (repeated or comma-separated)."),
    Parameter("session_id", "Only jobs of this session."),
    Parameter("created_after", "Only jobs created after this ISO 8601 time.", constraints=_TIME),
    Parameter("created_before", "Only jobs created before this ISO 8601 time.", constraints=_TIME),
    Parameter("sort", "DESC (newest first, the default) or ASC.",
              constraints={"enum": ["ASC", "DESC"]}),
    Parameter("exclude_params", "false: include each job's params (then at most "
              f"{MAX_PAGE_WITH_PARAMS} jobs a page).", "boolean"),
)  # fmt: skip

ROUTES: tuple[Route, ...] = (
    Route("POST", f"{PREFIX}/jobs", create_job, "Run a V2 primitive (IBM API)", "ibm",
          response_schema=_OBJECT, body=IbmJobRequest, errors=(400, 403, 404, 409, 413, 429, 503),
          query=(CRN_PARAMETER,), description="program_id sampler or estimator; others are refused "
          "(400). Answers {id, backend}."),
    Route("GET", f"{PREFIX}/jobs", list_jobs, "List the instance's jobs (IBM API)", "ibm",
          response_schema=_OBJECT, errors=(400, 403, 503), query=_LIST_FILTERS),
    Route("GET", _JOB, get_job, "A job with its state (IBM API)", "ibm",
          response_schema=_OBJECT, errors=(400, 404, 503), query=(CRN_PARAMETER, Parameter(
              "exclude_params", "true: leave the params out.", "boolean"))),
    Route("GET", f"{_JOB}/results", get_results,
          "A job's result: the RuntimeEncoder JSON of its PrimitiveResult (IBM API)", "ibm",
          response_schema=_OBJECT, errors=(204, 400, 404, 503), query=(CRN_PARAMETER,),
          description="204 while the job has no result."),
    Route("GET", f"{_JOB}/logs", get_logs, "A job's log, as text (IBM API)", "ibm",
          response_schema={"type": "string"}, errors=(400, 404, 503), query=(CRN_PARAMETER,)),
    Route("POST", f"{_JOB}/cancel", cancel_job, "Cancel a queued or running job (IBM API)",
          "ibm", status=204, errors=(400, 403, 404, 409, 503), query=(CRN_PARAMETER,)),
    Route("DELETE", _JOB, delete_job, "Delete an ended job (IBM API)", "ibm", status=204,
          errors=(400, 403, 404, 409, 503), query=(CRN_PARAMETER,)),
    Route("PUT", f"{_JOB}/tags", replace_tags, "Replace a job's tags (IBM API)", "ibm",
          status=204, body=IbmTags, errors=(400, 403, 404, 503), query=(CRN_PARAMETER,)),
)  # fmt: skip
