"""Errors as the API returns them: a status and a JSON body that names the problem."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError

from qrt_common.bus import BusUnavailable
from qrt_common.store import StoreUnavailable

from .context import GATEWAY
from .schemas import ErrorOut, dump


class ApiError(Exception):
    """An error to answer with `status` and `detail`, naming the request `field` at fault."""

    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.field = status, detail, field


def error_response(status: int, detail: str, field: str | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=dump(ErrorOut(detail=detail, field=field)),
        content_type="application/json",
    )


def from_validation_error(exc: ValidationError, prefix: str = "") -> ApiError:
    """The first problem pydantic found, as a 400 naming the field."""
    first = exc.errors()[0]
    path = ".".join(str(part) for part in first["loc"])
    field = f"{prefix}{path}" if path else (prefix.rstrip(".") or None)
    message = first["msg"]
    return ApiError(400, f"{field}: {message}" if field else message, field)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into a JSON body, whatever raised it."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.detail, exc.field)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[GATEWAY].settings.max_request_bytes
        return error_response(413, f"request body is larger than the limit of {limit} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason)
    except (StoreUnavailable, BusUnavailable) as exc:
        return error_response(503, f"service unavailable: {exc}")
