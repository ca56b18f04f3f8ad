"""Structured service logs: one JSON object per line, carrying the job id when there is one."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

QRT_LOGGERS = (
    "qrt",
    "qrt_cli",
    "qrt_common",
    "qrt_gateway",
    "qrt_scheduler",
    "qrt_executor",
    "qrt_device",
)

current_job_id: ContextVar[str | None] = ContextVar("current_job_id", default=None)


class _JobIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            job_id = current_job_id.get()
            if job_id is not None:
                record.job_id = job_id
        return True


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Tag every log record written inside the block with `job_id`."""
    token = current_job_id.set(job_id)
    try:
        yield
    finally:
        current_job_id.reset(token)


_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "service",
    "job_id",
    "taskName",
}


class _TextFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL service message key=value ...`: a log line for people
    (QRT_LOG_FORMAT=text), with the fields a JSON line would carry."""

    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(service)s %(message)s", "%H:%M:%S")
        self._service = service

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS}
        job_id = getattr(record, "job_id", None)
        if job_id:
            fields = {"job": job_id, **fields}
        record.service = getattr(record, "service", self._service)
        line = super().formatMessage(record)
        return line + "".join(f" {k}={v}" for k, v in fields.items())


def configure_logging(level: str = "INFO", service: str = "qrt", form: str = "json") -> None:
    """Send all logs to stderr naming the service: as JSON lines, or (`form` "text") as lines
    for people."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_JobIdFilter())
    formatter: logging.Formatter = JsonFormatter(
        "{asctime}{levelname}{name}{message}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        static_fields={"service": service},
    )
    if form == "text":
        formatter = _TextFormatter(service)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries (qiskit logs every transpiler pass at INFO) speak only when something is wrong.
    root.setLevel(logging.WARNING)
    for name in QRT_LOGGERS:
        logging.getLogger(name).setLevel(level.upper())
