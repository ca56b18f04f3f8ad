"""Stand-ins for what `ibm_api` (IBM's REST API: the instance a `Service-CRN` header names, and
errors in IBM's shape) provides on its own branch, used by `ibm_sessions` and `ibm_metrics`
until the branches meet; the same rules, so the two can be swapped without a visible change."""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from qrt_common.errors import InvalidInput, QrtError

from .openapi import Parameter
from .plumbing import STATUS_OF, json_response

PREFIX = "/api/v1"
CRN_HEADER = "Service-CRN"
_INSTANCE = re.compile(r"[^/:\s]+/[^/:\s]+/[^/:\s]+")
_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          409: "conflict", 500: "internal_error", 503: "service_unavailable"}  # fmt: skip

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


CRN_PARAMETER = Parameter(
    CRN_HEADER, "The instance's CRN: crn:v1:...:<hub>/<group>/<project>::", where="header"
)


def crn_instance(crn: str | None) -> str:
    """The qrt instance `hub/group/project` a CRN names in its eighth field
    (`crn:v1:qrt:private:quantum-computing:local:a/qrt:<hub>/<group>/<project>::`); raises
    InvalidInput naming the header."""
    fields = (crn or "").split(":")
    if fields[0] != "crn" or len(fields) < 8 or not _INSTANCE.fullmatch(fields[7]):
        raise InvalidInput(
            f"{CRN_HEADER} {crn!r} names no qrt instance: its eighth field must be"
            " <hub>/<group>/<project>",
            field=CRN_HEADER,
        )
    return fields[7]


def request_instance(request: web.Request) -> str:
    """The instance the request's `Service-CRN` header names."""
    return crn_instance(request.headers.get(CRN_HEADER))


def ibm_errors(handler: Handler) -> Handler:
    """`handler` answering qrt's errors in IBM's error shape (`errors`, `trace`), with qrt's
    `detail` and `field` too (the shape the OpenAPI document gives every error)."""

    @functools.wraps(handler)
    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except QrtError as exc:
            status = next((code for kind, code in STATUS_OF if isinstance(exc, kind)), 500)
            if status == 500:
                raise
            code = _CODES.get(status, f"http_{status}")
            error: dict[str, Any] = {"code": code, "message": str(exc), "more_info": "/docs"}
            trace = uuid.uuid4().hex
            body = {"errors": [error], "trace": trace, "status_code": status,
                    "error": {"code": code, "message": str(exc)},
                    "detail": str(exc), "field": exc.field}  # fmt: skip
            response = json_response(json.dumps(body), status)
            response.headers["uber-trace-id"] = trace
            return response

    return answer


def ibm_time(value: datetime | None) -> str | None:
    """A time as IBM's API writes it: UTC, microseconds, `Z`."""
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
