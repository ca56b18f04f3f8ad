"""`/services/{program_id}/`: PlanQK's Service API for every program.

A service execution is a job: the same one `/jobs` shows, under PlanQK's names. A PlanQK
program gets `{"data", "params"}` as they came; a Qiskit Runtime program gets the keys of
both as its keyword arguments.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

from qrt_common.accounts import Principal, Role, check_instance_name
from qrt_common.errors import Conflict, InvalidInput, NotFound, TooLarge
from qrt_common.jobs import DEFAULT_INSTANCE, Job, JobStatus
from qrt_common.programs import Program, ProgramKind
from qrt_common.submission import check_may_run, new_job, service_params

from .auth import principal
from .context import Gateway, gateway
from .pacing import JsonBody
from .plumbing import (
    REPLAYED,
    attempt_query,
    bool_query,
    idempotency_key,
    json_response,
    parse_json,
    validated,
)
from .schemas import (
    ExecutionOut,
    ServiceHealth,
    ServiceRequest,
    dump,
    execution_status,
)
from .strict import dumps, paced_strict_json, strict_json

FAILURE_CODE = "500"
"""The code of a failure that the program itself gave no body for."""


async def _program(gw: Gateway, request: web.Request) -> Program:
    program_id = request.match_info["program_id"]
    who = principal(request)
    program = await gw.visible_program(program_id, who)
    if program is None:
        raise await gw.program_not_found(program_id, who, what="service")
    return program


async def _execution(request: web.Request) -> tuple[Gateway, Job]:
    gw, _, job = await _program_execution(request)
    return gw, job


async def _program_execution(request: web.Request) -> tuple[Gateway, Program, Job]:
    gw = gateway(request)
    program = await _program(gw, request)
    execution_id = request.match_info["execution_id"]
    job = await gw.store.get_job(execution_id)
    if job is None or job.program_id != program.id or principal(request).role(job.instance) is None:
        raise NotFound(f"execution '{execution_id}' of service '{program.id}' not found")
    return gw, program, job


def _execution_response(job: Job, status: int = 200, **headers: str) -> web.Response:
    response = json_response(dump(ExecutionOut.of(job)), status)
    response.headers.update(headers)
    return response


async def _read_input(request: web.Request, limit: int) -> Any:
    too_large = TooLarge(f"the input is larger than the limit of {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    raw = await request.read()
    if len(raw) > limit:
        raise too_large
    return parse_json(raw)


async def health(request: web.Request) -> web.Response:
    await _program(gateway(request), request)
    return json_response(dump(ServiceHealth(status="Service is up and running")))


async def start_execution(request: web.Request) -> web.Response:
    gw = gateway(request)
    program = await _program(gw, request)
    body = validated(
        ServiceRequest, await _read_input(request, gw.settings.max_service_input_bytes)
    )
    who = principal(request)
    instance = _instance(request, program, who)
    gw.require(who, instance, Role.MEMBER, "starting an execution")
    check_may_run(program, instance)
    params = service_params(program, body.data, body.params)
    key = idempotency_key(request)
    submitter = who.user if who.key_id is not None else None
    job = new_job(program, params, instance=instance, idempotency_key=key, submitter=submitter)
    stored = await gw.submit(job)
    headers = {"Location": f"/services/{program.id}/{stored.id}"}
    if stored.id != job.id:
        headers[REPLAYED] = "true"
    return _execution_response(stored, 201, **headers)


def _instance(request: web.Request, program: Program, who: Principal) -> str:
    """The instance an execution of `program` belongs to: the `instance` query parameter; else
    the program's owner (an uploaded program) when the caller belongs to it; else the default
    instance when the caller may submit there; else the one instance where they may. Raises
    InvalidInput when that leaves a choice (or none)."""
    named = request.query.get("instance")
    if named is not None:
        return check_instance_name(named)
    if program.owner is not None and who.role(program.owner) is not None:
        return program.owner
    instance = who.submit_instance(DEFAULT_INSTANCE)
    if instance is not None:
        return instance
    mine = who.member_of()
    raise InvalidInput(
        "name the instance the execution belongs to: ?instance=hub/group/project"
        + (f" (one of {', '.join(mine)})" if mine else " (you may submit in none)"),
        field="instance",
    )


async def get_execution(request: web.Request) -> web.Response:
    _, job = await _execution(request)
    return _execution_response(job)


async def get_result(request: web.Request) -> web.StreamResponse:
    gw, job = await _execution(request)
    status = execution_status(job.status)
    if status not in ("SUCCEEDED", "FAILED"):
        raise Conflict(f"execution '{job.id}' is {status}: it has no result")
    stored = await gw.store.get_result(job.id)
    if stored is not None:
        body = JsonBody(request)
        await body.write(await paced_strict_json(stored, body.pacer))
        return await body.finish()
    if job.status is JobStatus.COMPLETED:
        return json_response("null")
    detail = job.reason or "the execution failed"
    return json_response(dumps({"code": FAILURE_CODE, "detail": detail}))


async def get_interim_results(request: web.Request) -> web.StreamResponse:
    gw, job = await _execution(request)
    last = bool_query(request, "last")
    attempt = attempt_query(request, job.attempt)
    if last:
        latest = await gw.store.last_interim(job.id, attempt=attempt)
        return json_response("null" if latest is None else strict_json(latest.data))
    body = JsonBody(request)
    separator = "["
    async for page in gw.store.interim_pages(job.id, attempt=attempt):
        for interim in page:
            await body.write(separator + strict_json(interim.data))
            separator = ","
    await body.write("[]" if separator == "[" else "]")
    return await body.finish()


async def get_log(request: web.Request) -> web.StreamResponse:
    gw, program, job = await _program_execution(request)
    attempt = attempt_query(request, job.attempt)
    echoes = await _echoes(gw, job, attempt) if program.kind is ProgramKind.QISKIT_RUNTIME else None
    body = JsonBody(request)
    separator = "["
    lines = _Lines()
    async for page in gw.store.log_pages(job.id, attempt=attempt):
        for chunk in page:
            for line in lines.feed(chunk.text):
                if not _echoed(echoes, line):
                    await body.write(separator + _log_entry(line))
                    separator = ","
    for line in lines.end():
        if not _echoed(echoes, line):
            await body.write(separator + _log_entry(line))
            separator = ","
    await body.write("[]" if separator == "[" else "]")
    return await body.finish()


async def _echoes(gw: Gateway, job: Job, attempt: int | None) -> Counter[tuple[int, int]]:
    """The length and hash of each line a Qiskit Runtime program's `publish` printed into the
    log of `attempt` (None: every attempt): each interim result's text and the result's. The
    Qiskit Runtime API's log keeps them (as IBM's does); PlanQK's log holds the program's own
    lines, its interim results and result being served by their own routes."""
    echoes: Counter[tuple[int, int]] = Counter()
    async for page in gw.store.interim_pages(job.id, attempt=attempt):
        for interim in page:
            echoes[len(interim.data), hash(interim.data)] += 1
    if attempt is None or attempt == job.attempt:  # the result is the last attempt's
        result = await gw.store.get_result(job.id)
        if result is not None:
            echoes[len(result), hash(result)] += 1
    return echoes


def _echoed(echoes: Counter[tuple[int, int]] | None, line: str) -> bool:
    """Whether `line` is one of `echoes` not yet seen (then it is seen: each counts once)."""
    if not echoes:
        return False
    key = len(line), hash(line)
    if echoes[key] == 0:
        return False
    echoes[key] -= 1
    return True


def _log_entry(line: str) -> str:
    """A `LogEntryOut` as JSON, without a model a line: a log may have a million lines."""
    return dumps({"message": line, "severity": "INFO", "timestamp": None})


class _Lines:
    """Splits a text that arrives in pieces into lines, as `str.splitlines` splits the whole."""

    def __init__(self) -> None:
        self._rest: list[str] = []
        """The pieces of the last line, which may go on in the next piece (even a "\r" may be
        half of a "\r\n")."""

    def feed(self, text: str) -> list[str]:
        """The lines `text` completes (without their line breaks)."""
        parts = text.splitlines(keepends=True)
        if not parts:
            return []
        if len(parts) == 1 and parts[0].splitlines()[0] == parts[0]:  # no line break in it
            self._rest.append(text)
            return []
        lines = ("".join(self._rest) + parts[0]).splitlines(keepends=True) + parts[1:]
        self._rest = [lines.pop()]
        return [line.splitlines()[0] for line in lines]

    def end(self) -> list[str]:
        """The last line, if the text did not end with a line break."""
        rest, self._rest = "".join(self._rest), []
        return rest.splitlines()


async def cancel_execution(request: web.Request) -> web.Response:
    gw, job = await _execution(request)
    gw.require(principal(request), job.instance, Role.MEMBER, "cancelling an execution")
    await gw.cancel(job, execution_status(job.status))
    return _execution_response(await gw.store.get_job(job.id) or job)
