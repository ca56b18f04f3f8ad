"""The gateway's HTTP connections: what aiohttp refuses before any route or middleware runs (a
request line or header over its limit, a body in a content coding it cannot decode, a request
that is no HTTP) answered as JSON like every other error, and logged as one WARNING line
rather than an ERROR traceback, since the client is at fault.

aiohttp offers no hook for these answers (aio-libs/aiohttp#3287): its parser fails while
reading the request head, and `RequestHandler.handle_error` answers in plain text. So the
gateway serves through `GatewayRunner`, whose connections are `RequestHandler`s answering as
`plumbing.error_response` does. Such answers carry qrt's error body `{"detail", "field"}` on
every path, `/api/v1` too: the path was never read.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    ContentEncodingError,
    HttpProcessingError,
    LineTooLong,
)

from qrt_common.connections import CappedConnection, CappedRunner, CappedServer

from .plumbing import error_response

logger = logging.getLogger(__name__)

MAX_REQUEST_LINE = 8192
"""Bytes of request target (path and query) the gateway reads; longer is answered 414. It
differs from MAX_HEADER_FIELD only so that aiohttp's LineTooLong, which says nothing else, tells
which limit was passed. (aiohttp's pure-Python parser, used only without its C extension, counts
the whole request line, and a head line still without its CRLF, against it.)"""
MAX_HEADER_FIELD = 8190
"""Bytes of a request header's name, or of its name and value, the gateway reads (aiohttp's
default); longer is answered 431."""
MAX_HEADERS = 128
"""Request headers the gateway reads (aiohttp's default); more is answered 431."""


def refusal(exc: HttpProcessingError) -> tuple[int, str, str | None]:
    """The status, detail and field at fault of the answer to a request aiohttp could not
    parse: 414 for a request target over MAX_REQUEST_LINE bytes (RFC 9110 §15.5.15), 431 for a
    header over MAX_HEADER_FIELD bytes or over MAX_HEADERS headers (RFC 6585 §5), 415 for a
    body in a content coding aiohttp cannot decode (RFC 9110 §15.5.16), else 400."""
    if isinstance(exc, LineTooLong):
        if exc.args[1] == MAX_REQUEST_LINE:
            return 414, f"request target is longer than {MAX_REQUEST_LINE} bytes", None
        return 431, f"a request header is longer than {MAX_HEADER_FIELD} bytes", None
    if isinstance(exc, BadHttpMessage) and exc.message == "Too many headers received":
        return 431, f"request has more than {MAX_HEADERS} headers", None
    if isinstance(exc, ContentEncodingError):
        # aiohttp's words name the coding, and a Python package the gateway does not have.
        words = exc.message.split(". Please install")[0]
        detail = (
            f"request body's Content-Encoding is not supported ({words}); send the body "
            "uncompressed, or compressed with gzip or deflate"
        )
        return 415, detail, "Content-Encoding"
    status = exc.code if 400 <= exc.code < 500 else 400
    return status, f"malformed HTTP request: {exc.message}", None


def _one_line(exc: HttpProcessingError) -> str:
    return " ".join(str(exc.message).split())


class _Connection(CappedConnection):
    """One client connection of the gateway, answering what it cannot parse as JSON (and
    counted against the process's connection limit: `qrt_common.connections`)."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The JSON answer when aiohttp cannot parse a request (`exc` an
        HttpProcessingError), a handler times out (504) or fails outside every middleware
        (500); the connection closes after it. Raises ConnectionError when part of a response
        was sent already, as aiohttp does."""
        if request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        if isinstance(exc, HttpProcessingError):
            status, detail, field = refusal(exc)
            # Scanners sending TLS or junk to the port: not worth a warning each.
            level = logging.DEBUG if isinstance(exc, BadHttpMethod) else logging.WARNING
            logger.log(level, "request refused: %s: %s", status, _one_line(exc),
                       extra={"remote": request.remote, "status": status})  # fmt: skip
            response = error_response(status, detail, field)
        elif status == 504:
            response = error_response(504, "the request took too long to answer")
        else:
            self.log_exception("request failed", exc_info=exc)
            response = error_response(500, f"internal error ({type(exc).__name__}); see the log")
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """Log a failure of the connection: a client's body that cannot be read as declared
        (aiohttp meets it again while draining what the handler left) as one WARNING line,
        anything else as aiohttp does."""
        exc = kw.get("exc_info")
        if isinstance(exc, web.RequestPayloadError) and isinstance(
            exc.__cause__, HttpProcessingError
        ):
            exc = exc.__cause__
        if isinstance(exc, HttpProcessingError):
            logger.warning("connection closed: unreadable request body: %s", _one_line(exc))
            return
        super().log_exception(*args, **kw)


class _Server(CappedServer):
    connection_class = _Connection


class GatewayRunner(CappedRunner):
    """A `CappedRunner` whose connections answer requests aiohttp cannot parse as JSON, reading
    request targets up to MAX_REQUEST_LINE bytes and headers up to MAX_HEADER_FIELD bytes."""

    server_class = _Server

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("max_line_size", MAX_REQUEST_LINE)
        kwargs.setdefault("max_field_size", MAX_HEADER_FIELD)
        kwargs.setdefault("max_headers", MAX_HEADERS)
        super().__init__(app, **kwargs)
