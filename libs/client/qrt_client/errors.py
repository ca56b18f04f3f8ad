"""Every error the client raises, in one hierarchy (catch `QrtError` for all of them)::

QrtError
├── InvalidKey              an API key that cannot be sent (also a ValueError); names no key
├── ArchiveError            a program directory that is not uploaded as it is (a symlink
│                           leading out of it, an archive over MOST_ARCHIVE_BYTES; a ValueError)
├── TransportError          the platform could not be reached (after the retries a call makes)
├── ApiError                the platform answered with an error: .status, .detail, .field
│   ├── InvalidInput        400: bad input; .field names it (e.g. "params.iterations")
│   ├── Unauthorized        401: no key, or a key the platform does not know (also a
│   │                       stream closed with 4401: the key was revoked or expired)
│   ├── Forbidden           403: not allowed (a bundled program changed, a private one run)
│   ├── NotFound            404: no such program or job
│   ├── Conflict            409: not in this state (cancel an ended job, delete a running one)
│   ├── TooLarge            413: a body or archive over the platform's limit
│   └── Unavailable         503: a backing service of the platform is down
├── JobEnded                result() of a job that ended without completing: .job_id,
│   │                       .status, .reason, .result (an error body some programs leave)
│   ├── JobFailed           "Failed", or "Cancelled - Ran too long" (the platform stopped it)
│   └── JobCancelled        "Cancelled": somebody cancelled it
├── WaitTimeout             wait()/result() ran out of time (also a TimeoutError)
├── ResultUndecodable       a result or interim result this client cannot read back (nested
│                           too deeply, an integer of over 4300 digits; also a ValueError)
└── StreamError             a job's stream closed abnormally (.code, .reason)
"""

from __future__ import annotations

from typing import Any


class QrtError(Exception):
    """The base of every error the client raises."""


class InvalidKey(QrtError, ValueError):
    """The API key given cannot go into a request (a space, line break or other character no
    key holds); the message says which character where, never the key."""


class ArchiveError(QrtError, ValueError):
    """A program directory that is not uploaded as it is: a symbolic link in it leads out of
    it, or its archive is over the most any platform accepts."""


class TransportError(QrtError):
    """The platform could not be reached, or the connection broke (after retrying where a retry
    is safe)."""


class ApiError(QrtError):
    """The platform answered with an error status; `detail` and `field` are the server's JSON
    body (`{"detail": ..., "field": ...}`), `status` the HTTP status."""

    def __init__(self, status: int, detail: str, field: str | None = None) -> None:
        self.status, self.detail, self.field = status, detail, field
        where = f" (field {field})" if field else ""
        super().__init__(f"{status}: {detail}{where}")


class InvalidInput(ApiError):
    """400: the request was refused for bad input; `field` names the field at fault."""


class Unauthorized(ApiError):
    """401: no key was given, or the platform does not know it."""


class Forbidden(ApiError):
    """403: the key or instance may not do this."""


class NotFound(ApiError):
    """404: no such program, job or route."""


class Conflict(ApiError):
    """409: the thing is not in a state that allows this, or the name is taken."""


class TooLarge(ApiError):
    """413: the body or archive is over the platform's limit."""


class Unavailable(ApiError):
    """503: a backing service (store, bus) of the platform is down; try again later."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidInput,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    503: Unavailable,
}


def api_error(status: int, body: Any, text: str) -> ApiError:
    """The exception for an error answer: `body` the decoded JSON (or None), `text` the raw
    body, used as the detail when the body is not qrt's `{"detail", "field"}`."""
    detail, field = text.strip() or f"HTTP {status}", None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        detail = body["detail"]
        field = body.get("field") if isinstance(body.get("field"), str) else None
    return _BY_STATUS.get(status, ApiError)(status, detail, field)


class JobEnded(QrtError):
    """The job ended without completing, so it has no result to give."""

    def __init__(self, job_id: str, status: str, reason: str | None, result: Any = None) -> None:
        self.job_id, self.status, self.reason, self.result = job_id, status, reason, result
        why = f": {reason}" if reason else ""
        super().__init__(f"job {job_id} ended {status}{why}; it has no result")


class JobFailed(JobEnded):
    """The job failed (an exception, undecodable params, a bad result), or ran past its time
    limit ("Cancelled - Ran too long"). Its log (`job.logs()`) holds the traceback."""


class JobCancelled(JobEnded):
    """The job was cancelled before it completed."""


class WaitTimeout(QrtError, TimeoutError):
    """The job had not ended within the time `wait()` or `result()` was given."""


class ResultUndecodable(QrtError, ValueError):
    """A result or interim result (JSON text the platform kept) that this client cannot decode:
    nested deeper than Python's parser goes, an integer of more digits than Python converts
    (`sys.set_int_max_str_digits`), or an encoded value RuntimeDecoder refuses. Platforms of
    this version refuse such results when the program sends them; older ones kept them."""


class StreamError(QrtError):
    """A job's websocket stream closed abnormally: `code` is the close code (4404: the job was
    deleted; 1011: the platform failed), `reason` what the platform said."""

    def __init__(self, code: int | None, reason: str) -> None:
        self.code, self.reason = code, reason
        super().__init__(f"stream closed with code {code}: {reason or 'no reason given'}")
