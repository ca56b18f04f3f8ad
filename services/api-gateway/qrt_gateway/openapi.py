"""The OpenAPI 3 document, built from the same route table the app serves, and the `/docs` page."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from .schemas import ErrorOut, LimitErrorOut

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

OPEN_TAGS = frozenset({"health", "tokens"})
"""Routes of these tags take no Authorization header (the token exchanges check their own)."""

_REASONS = {
    101: "Switching to the websocket protocol",
    200: "OK",
    201: "Created",
    204: "No content",
    400: "Bad request: the body names the field at fault",
    401: "No usable credentials (with QRT_AUTH): the body names the problem",
    403: "Forbidden: the caller's role does not allow it, or the program is bundled",
    404: "Not found",
    409: "Conflict with the current state (of the job, the program's name or jobs, or a name "
    "taken)",
    413: "Request body too large",
    429: "A submit limit is reached (the body names it): submit again after Retry-After seconds",
    503: "A backing service is unavailable",
}


_RETRY_AFTER = {
    "description": "Seconds to wait before submitting again.",
    "schema": {"type": "integer", "minimum": 1},
}


@dataclass(frozen=True, slots=True)
class Parameter:
    """A query parameter (or, `where="header"`, a request header) of a route."""

    name: str
    description: str
    type: str = "string"
    where: str = "query"
    constraints: dict[str, Any] = field(default_factory=dict)
    """More of the value's JSON schema: its bounds, format or allowed values."""


@dataclass(frozen=True, slots=True)
class Route:
    """One operation of the API: how it is served and how it is documented."""

    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    response: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    """Every other status the route answers: errors with an `ErrorOut` body, and statuses
    below 400 (204) with none."""
    query: tuple[Parameter, ...] = ()
    response_schema: dict[str, Any] | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _operation(route: Route) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", route.path)
    ]
    params += [
        {
            "name": q.name,
            "in": q.where,
            "description": q.description,
            "schema": {"type": q.type, **q.constraints},
        }
        for q in route.query
    ]
    responses: dict[str, Any] = {}
    ok: dict[str, Any] = {"description": _REASONS.get(route.status, "OK")}
    if route.response is not None:
        ok["content"] = {"application/json": {"schema": _ref(route.response)}}
    elif route.response_schema is not None:
        ok["content"] = {"application/json": {"schema": route.response_schema}}
    responses[str(route.status)] = ok
    for status in route.errors:
        if status < 400:  # another answer without a body (204: nothing yet)
            responses[str(status)] = {"description": _REASONS[status]}
            continue
        responses[str(status)] = {
            "description": _REASONS[status],
            "content": {"application/json": {"schema": _ref(ErrorOut)}},
        }
        if status == 429:
            responses["429"]["content"]["application/json"]["schema"] = _ref(LimitErrorOut)
            responses["429"]["headers"] = {"Retry-After": _RETRY_AFTER}
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__name__,
        "tags": [route.tag],
        "parameters": params,
        "responses": responses,
    }
    if route.description:
        operation["description"] = route.description
    if route.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(route.body)}},
        }
    if route.tag not in OPEN_TAGS:
        responses["401"] = {
            "description": _REASONS[401],
            "content": {"application/json": {"schema": _ref(ErrorOut)}},
        }
    else:
        operation["security"] = []
    operation.update(route.extra)
    return operation


def openapi_document(routes: Sequence[Route], *, title: str, version: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document describing `routes`."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (ErrorOut, "serialization"),
        (LimitErrorOut, "serialization"),
    ]
    for route in routes:
        if route.response is not None:
            models.append((route.response, "serialization"))
        if route.body is not None:
            models.append((route.body, "validation"))
    _, schemas = models_json_schema(
        list(dict.fromkeys(models)), by_alias=True, ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict[str, Any]] = {}
    operation_ids: set[str] = set()
    for route in routes:
        operation = _operation(route)
        if operation["operationId"] in operation_ids:
            # Two APIs name their handlers alike (`get_job` of the test server's and IBM's):
            # the later one is told apart by its module, as OpenAPI wants ids unique.
            module = route.handler.__module__.rpartition(".")[2]
            operation["operationId"] = f"{module}_{operation['operationId']}"
        operation_ids.add(operation["operationId"])
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (qrt_<id>_<secret>) or an access token from "
                    "POST /token or POST /identity/token; required when QRT_AUTH is on.",
                }
            },
        },
        "security": [{"bearer": []}],
    }
