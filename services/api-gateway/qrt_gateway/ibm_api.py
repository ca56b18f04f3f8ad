"""What every route of IBM's Qiskit Runtime REST API (`/api/v1`, as the stock
`qiskit-ibm-runtime` client calls it) shares: the instance a request names in its `Service-CRN`
header, errors in IBM's shape, and jobs as IBM shows them.

The instance: the client sends the CRN it was given as `instance` in a `Service-CRN` header on
every request. qrt reads the CRN's service-instance field (the eighth, `crn:v1:<cname>:<ctype>:
<service>:<location>:<scope>:<service-instance>:...`) as a qrt instance `hub/group/project`, so
`crn:v1:qrt:private:quantum-computing:local:a/qrt:ibm-q/open/main::` is the instance
`ibm-q/open/main`.

Errors: `{"errors": [{"code", "message", "more_info", "target"?}], "trace", "status_code"}`,
IBM Cloud's error model, plus `{"error": {"code", "message"}}`, the part the client's
`RetrySession` copies into its exceptions (with an `uber-trace-id` header, whose absence makes
it append the whole body instead), plus qrt's own `detail` and `field`, as every other route
of qrt answers.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from qrt_common.errors import InvalidInput, LimitReached, QrtError
from qrt_common.jobs import Job, JobStatus, utcnow

from .openapi import Parameter
from .pacing import ClientGone
from .plumbing import STATUS_OF, json_response
from .schemas import TIME_FORMAT

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PREFIX = "/api/v1"
"""Where IBM's API lives (the client's `url_resolver` adds it to the server's address)."""
CRN_HEADER = "Service-CRN"
CRN_PARAMETER = Parameter(
    CRN_HEADER, "The instance's CRN: crn:v1:...:<hub>/<group>/<project>::", where="header"
)
"""The header every route of IBM's API reads its instance from, as the OpenAPI document
describes it."""
CRN_TEMPLATE = "crn:v1:qrt:private:quantum-computing:local:a/qrt:{instance}::"
"""The CRN qrt gives an instance `hub/group/project` (any CRN naming it in its eighth field
works as well)."""
_INSTANCE = re.compile(r"[^/:\s]+/[^/:\s]+/[^/:\s]+")

RAN_TOO_LONG = 1305
"""IBM's reason code for a job stopped at its maximum execution time (the client raises
RuntimeJobMaxTimeoutError for it)."""

ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}


def instance_crn(instance: str) -> str:
    """The CRN of the qrt instance `hub/group/project`."""
    return CRN_TEMPLATE.format(instance=instance)


def crn_instance(crn: str | None) -> str:
    """The qrt instance `hub/group/project` a CRN names; raises InvalidInput (naming the
    `Service-CRN` header) for a missing or malformed one."""
    example = instance_crn("<hub>/<group>/<project>")
    if not crn:
        raise InvalidInput(f"send the instance's CRN in the {CRN_HEADER} header: {example}",
                           field=CRN_HEADER)  # fmt: skip
    fields = crn.split(":")
    if fields[0] != "crn" or len(fields) < 8 or not _INSTANCE.fullmatch(fields[7]):
        raise InvalidInput(
            f"{CRN_HEADER} {crn!r} names no qrt instance: its eighth field must be "
            f"<hub>/<group>/<project>, as in {example}",
            field=CRN_HEADER,
        )
    return fields[7]


def request_instance(request: web.Request) -> str:
    """The qrt instance the request's `Service-CRN` header names; raises InvalidInput."""
    return crn_instance(request.headers.get(CRN_HEADER))


def error_body(status: int, message: str, field: str | None = None) -> dict[str, Any]:
    """IBM's error body for `status` with `message` (and the field at fault)."""
    code = ERROR_CODES.get(status, f"http_{status}")
    error: dict[str, Any] = {"code": code, "message": message, "more_info": "/docs"}
    if field is not None:
        where = "header" if field in (CRN_HEADER, "Content-Encoding") else "field"
        error["target"] = {"type": where, "name": field}
    return {
        "errors": [error],
        "trace": uuid.uuid4().hex,
        "status_code": status,
        "error": {"code": code, "message": message},
        "detail": message,
        "field": field,
    }


def error_response(status: int, message: str, field: str | None = None) -> web.Response:
    """An error answer of IBM's API."""
    body = error_body(status, message, field)
    response = json_response(json.dumps(body), status)
    response.headers["uber-trace-id"] = body["trace"]
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="qrt"'
    return response


def ibm_errors() -> Middleware:
    """A middleware answering every error of a path under PREFIX in IBM's shape (the
    gateway's own `json_errors` answers the others): qrt's errors with their status, HTTP
    errors (an unknown path, a method not allowed) with theirs, anything else with a 500."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(PREFIX + "/") and request.path != PREFIX:
            return await handler(request)
        try:
            return await handler(request)
        except QrtError as exc:
            status = next((code for kind, code in STATUS_OF if isinstance(exc, kind)), 500)
            if status == 500:
                logger.exception("request failed", extra={"path": request.path})
            response = error_response(status, str(exc), exc.field)
            if isinstance(exc, LimitReached):
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if exc.status == 413:
                response = error_response(413, "request body is too large")
                # The rest of the body is not read: this connection ends.
                response.force_close()
                return response
            return error_response(exc.status, f"{exc.reason}: {request.method} {request.path}")
        except ClientGone:
            raise  # not an error: json_errors lets the connection end quietly
        except Exception as exc:
            logger.exception("request failed", extra={"path": request.path})
            return error_response(500, f"internal error ({type(exc).__name__}); see the log")

    return middleware


def ibm_time(value: datetime | None) -> str | None:
    """A time as IBM's API writes it (UTC, microseconds, `Z`); `value` is timezone-aware."""
    return None if value is None else value.astimezone(UTC).strftime(TIME_FORMAT)


def job_state(job: Job) -> dict[str, Any]:
    """A job's `state` as IBM shows it: `status` one of Queued, Running, Completed, Failed,
    Cancelled; a job stopped at its time limit is Cancelled with reason code 1305."""
    if job.status is JobStatus.CANCELLED_RAN_TOO_LONG:
        limit = f"its max_execution_time of {job.max_execution_time} s"
        reason = job.reason or f"the job ran longer than {limit}"
        return {"status": "Cancelled", "reason": f"Ran too long: {reason}",
                "reason_code": RAN_TOO_LONG}  # fmt: skip
    state: dict[str, Any] = {"status": job.status.value}
    if job.reason:
        state["reason"] = job.reason
    return state


def usage_seconds(job: Job) -> float:
    """Seconds the job ran (so far, while it runs)."""
    if job.started is None:
        return 0.0
    end = job.ended or utcnow()
    return max((end - job.started).total_seconds(), 0.0)


def job_json(job: Job, *, with_params: bool) -> str:
    """A job as IBM's `GET /jobs/{id}` answers it, as JSON text (the params, kept as JSON
    text, are copied in as they are)."""
    state = job_state(job)
    seconds = round(usage_seconds(job), 3)
    fields: dict[str, Any] = {
        "id": job.id,
        "backend": job.backend,
        "state": state,
        "status": state["status"],
        "program": {"id": job.program_id},
        "created": ibm_time(job.created),
        "started": ibm_time(job.started),
        "ended": ibm_time(job.ended),
        "runtime": "",
        "cost": job.max_execution_time,
        "tags": list(job.tags),
        "session_id": job.session_id,
        "user_id": job.submitter,
        "private": False,
        "usage": {"quantum_seconds": seconds, "seconds": seconds},
    }
    text = json.dumps(fields)
    if with_params:
        text = f'{text[:-1]}, "params": {job.params}}}'
    return text


def ibm_json(body: Any, status: int = 200) -> web.Response:
    """A JSON answer of IBM's API."""
    return json_response(json.dumps(body), status)
