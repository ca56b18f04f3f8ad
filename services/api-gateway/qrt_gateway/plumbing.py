"""HTTP plumbing every route module shares: JSON bodies in and out, query parameters, and every
error answered as JSON that names the problem.

Route handlers raise qrt's own errors (`qrt_common.errors`); `json_errors` answers each with
its status: InvalidInput 400, Unauthenticated 401 (with `WWW-Authenticate: Bearer`), Forbidden
403, NotFound 404, Conflict 409, TooLarge 413, UnsupportedEncoding 415, LimitReached 429 (with
`Retry-After`, the body naming the limit), Unavailable 503. What aiohttp refuses before any
middleware runs is answered in `protocol`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ValidationError

from qrt_common.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LimitReached,
    NotFound,
    QrtError,
    TooLarge,
    Unauthenticated,
    Unavailable,
    UnsupportedEncoding,
)
from qrt_common.metrics import HTTP_LATENCY, HTTP_REQUESTS
from qrt_common.submission import checked_idempotency_key

from .pacing import ClientGone, utf8
from .schemas import ErrorOut, LimitErrorOut, dump

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

B = TypeVar("B", bound=BaseModel)

STATUS_OF: tuple[tuple[type[QrtError], int], ...] = (
    (TooLarge, 413),
    (UnsupportedEncoding, 415),
    (InvalidInput, 400),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (LimitReached, 429),
    (Unavailable, 503),
)
"""The HTTP status of each kind of error, the first that matches (an archive too large is
also invalid input, and answers 413)."""


IDEMPOTENCY_KEY = "Idempotency-Key"
"""The request header that makes a submit safe to retry (IETF's
draft-ietf-httpapi-idempotency-key-header)."""
REPLAYED = "Idempotent-Replayed"
"""The response header saying a submit was a retry and answers with the first try's job."""


def idempotency_key(request: web.Request) -> str | None:
    """The request's `Idempotency-Key`, if it sent a usable one; raises InvalidInput."""
    return checked_idempotency_key(request.headers.get(IDEMPOTENCY_KEY))


def json_response(text: str, status: int = 200) -> web.Response:
    """A response whose body is the JSON text `text`."""
    return web.Response(
        status=status, body=utf8(text), content_type="application/json", charset="utf-8"
    )


def error_response(status: int, detail: str, field: str | None = None) -> web.Response:
    """The JSON error body `{"detail", "field"}` with `status`."""
    return json_response(dump(ErrorOut(detail=detail, field=field)), status)


def limit_response(exc: LimitReached) -> web.Response:
    """The 429 for a submit over a limit: the error body with the limit's name and
    `retry_after`, and the same seconds in `Retry-After` (RFC 6585 §4)."""
    body = LimitErrorOut(detail=str(exc), limit=exc.limit, retry_after=exc.retry_after)
    response = json_response(dump(body), 429)
    response.headers["Retry-After"] = str(exc.retry_after)
    return response


def parse_json(raw: bytes) -> Any:
    """A request body as JSON; raises InvalidInput saying why it is not."""
    if not raw:
        raise InvalidInput("request body is empty; send a JSON object")
    try:
        # `json.loads` with an argument builds a decoder per call, which cost a submit more
        # than decoding its body; the text as `json.loads` reads bytes.
        return _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except ValueError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidInput("request body is nested too deeply") from None


def _not_json(word: str) -> None:
    # Python's json reads NaN and Infinity; JSON has no such numbers, and qrt sends none.
    raise ValueError(f"{word} is not a JSON number (send null or a string in its place)")


_DECODER = json.JSONDecoder(parse_constant=_not_json)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON; raises InvalidInput saying why it is not."""
    return parse_json(await request.read())


_EXPECTED_JSON_TYPES = {
    "bool_type": "a JSON boolean (true or false)",
    "int_type": "a JSON integer",
    "float_type": "a JSON number",
    "string_type": "a JSON string",
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "list_type": "a JSON array",
}
"""The JSON type pydantic's type errors (strict request models) ask for, by error type."""


def json_type_name(value: object) -> str:
    """The JSON type of decoded JSON `value`, in words: "a string", "null", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a number with a decimal point or exponent"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def validated(model: type[B], body: object) -> B:
    """`body` (decoded JSON) as a `model`; raises InvalidInput naming the first field at fault
    and, for a field of the wrong JSON type, the type it must have and the one it has."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        expected = _EXPECTED_JSON_TYPES.get(first["type"])
        if expected is None:
            message = first["msg"]
        else:
            message = f"must be {expected}, not {json_type_name(first['input'])}"
            if field is None:
                message = f"the request body {message}"
        raise InvalidInput(f"{field}: {message}" if field else message, field=field) from None


def int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """Query parameter `name` as an integer from `low` to `high`; raises InvalidInput."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"query parameter '{name}' must be an integer", field=name) from None
    if not low <= value <= high:
        raise InvalidInput(f"query parameter '{name}' must be between {low} and {high}", field=name)
    return value


def attempt_query(request: web.Request, attempts: int) -> int | None:
    """Query parameter `attempt` (1 to `attempts`, the job's attempts so far) or None when absent:
    which run of a job that ran again a caller asks about; raises InvalidInput."""
    if "attempt" not in request.query:
        return None
    return int_query(request, "attempt", 1, 1, max(attempts, 1))


def bool_query(request: web.Request, name: str) -> bool | None:
    """Query parameter `name` as true or false (None when absent); raises InvalidInput."""
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw.lower() not in ("true", "false"):
        raise InvalidInput(f"query parameter '{name}' must be true or false", field=name)
    return raw.lower() == "true"


def time_query(request: web.Request, name: str) -> datetime | None:
    """Query parameter `name` as an ISO 8601 time (UTC when it has no offset); raises
    InvalidInput for a text that is no such time, or one that in UTC falls outside the years 1
    to 9999 (`0001-01-01T00:00:00+01:00`), which no store could compare."""
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            f"query parameter '{name}' must be an ISO 8601 time", field=name
        ) from None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(
            f"query parameter '{name}' is out of range: in UTC it falls outside the years 1 "
            "to 9999",
            field=name,
        ) from None
    return value


def json_errors(max_request_bytes: int) -> Middleware:
    """A middleware that turns every error into a JSON body, whatever raised it
    (`max_request_bytes`: the application's body limit, named in a 413)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except QrtError as exc:
            status = next((code for kind, code in STATUS_OF if isinstance(exc, kind)), 500)
            if status == 500:
                logger.exception("request failed", extra={"path": request.path})
            detail = f"service unavailable: {exc}" if isinstance(exc, Unavailable) else str(exc)
            if isinstance(exc, LimitReached):
                return limit_response(exc)
            response = error_response(status, detail, exc.field)
            if status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="qrt"'
            return response
        except web.HTTPRequestEntityTooLarge:
            limit = max_request_bytes
            response = error_response(
                413, f"request body is larger than the limit of {limit} bytes"
            )
            # The rest of the body is not read: this connection ends.
            response.force_close()
            return response
        except web.RequestPayloadError as exc:
            return _unreadable_body(request, exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(exc.status, exc.reason)
        except ClientGone as gone:
            # Any client can hang up mid-download, as often as it likes: not an error here.
            logger.info("client closed the connection during the answer",
                        extra={"path": request.path})  # fmt: skip
            return gone.response
        except ConnectionResetError:
            # A client that hangs up in the middle of its upload: nobody is left to answer.
            logger.info("client closed the connection during the request",
                        extra={"path": request.path})  # fmt: skip
            return error_response(400, "the client closed the connection during the request")
        except Exception as exc:
            logger.exception("request failed", extra={"path": request.path})
            return error_response(500, f"internal error ({type(exc).__name__}); see the log")

    return middleware


DECODED_CODINGS = frozenset({"identity", "gzip", "x-gzip", "deflate"})
"""The request `Content-Encoding`s the gateway decodes (aiohttp's, without the optional
packages for br and zstd; aiohttp hands any other coding, or a list of codings, on undecoded)."""


def body_headers(max_request_bytes: int) -> Middleware:
    """A middleware refusing, before a byte of the body is read, a body declared larger than
    `max_request_bytes` (413: `Content-Length: 99999999999` with a short body would otherwise
    keep the request waiting for bytes that never come) or in a content coding the gateway does
    not decode (415, RFC 9110 §15.5.16, rather than reading compressed bytes as JSON). Raises
    HTTPRequestEntityTooLarge and UnsupportedEncoding for the error middlewares to answer."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        declared = request.content_length
        if declared is not None and declared > max_request_bytes:
            raise web.HTTPRequestEntityTooLarge(max_request_bytes, declared)
        coding = request.headers.get("Content-Encoding")
        if coding is not None and coding.strip().lower() not in DECODED_CODINGS:
            raise UnsupportedEncoding(
                f"request body's Content-Encoding {coding!r} is not supported; send the body "
                "uncompressed, or compressed with gzip or deflate",
                field="Content-Encoding",
            )
        return await handler(request)

    return middleware


def _unreadable_body(request: web.Request, error: web.RequestPayloadError) -> web.Response:
    """The 400 for a body that cannot be read as declared (say, `Content-Encoding: gzip` on
    a body that is not gzip)."""
    cause: BaseException = error
    while (deeper := cause.__cause__ or cause.__context__) is not None:
        cause = deeper  # the decompressor's own words ("incorrect header check")
    encoding = request.headers.get("Content-Encoding")
    if encoding:
        detail = (
            f"request body cannot be decoded as its Content-Encoding {encoding!r} says: {cause}"
        )
        response = error_response(400, detail, "Content-Encoding")
    else:
        response = error_response(400, f"request body cannot be read: {cause}")
    # What is left of the body cannot be told from the next request: this connection ends.
    response.force_close()
    return response


@web.middleware
async def measured(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request by its route template (not its path: ids would explode)."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        HTTP_LATENCY.labels(route, request.method).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(route, request.method, str(status)).inc()
