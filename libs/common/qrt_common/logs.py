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


class _TextFormatter(logging.Formatter):
    """`HH:MM:SS LEVEL service message [job=...]`: a log line for people (QRT_LOG_FORMAT=text)."""

    def __init__(self, service: str) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(service)s %(message)s%(job)s", "%H:%M:%S")
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        record.service = getattr(record, "service", self._service)
        job_id = getattr(record, "job_id", None)
        record.job = f" [job {job_id}]" if job_id else ""
        return super().format(record)


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
