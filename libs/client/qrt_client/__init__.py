"""A Python client for qrt, synchronous (`Client`) and asynchronous (`AsyncClient`).

    from qrt_client import Client

    with Client("http://127.0.0.1:8000") as client:
        job = client.run("sample-program", {"iterations": 3})
        for event in job.stream():
            print(event)
        print(job.result())

Errors are in `qrt_client.errors` (all subclasses of `QrtError`).
"""

from .aio import AsyncClient, AsyncJob, AsyncPrograms
from .errors import (
    ApiError,
    ArchiveError,
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidKey,
    JobCancelled,
    JobEnded,
    JobFailed,
    NotFound,
    QrtError,
    ResultUndecodable,
    StreamError,
    TooLarge,
    TransportError,
    Unauthorized,
    Unavailable,
    WaitTimeout,
)
from .models import (
    FINAL_STATUSES,
    Attempt,
    Backend,
    BackendDetail,
    Event,
    Execution,
    Interim,
    JobInfo,
    JobPage,
    Log,
    PairCalibration,
    Program,
    QubitCalibration,
    Result,
)
from .services import AsyncServices
from .sync import Client, Job, Programs, Services

__all__ = [
    "FINAL_STATUSES",
    "ApiError",
    "ArchiveError",
    "AsyncClient",
    "AsyncJob",
    "AsyncPrograms",
    "AsyncServices",
    "Attempt",
    "Backend",
    "BackendDetail",
    "Client",
    "Conflict",
    "Event",
    "Execution",
    "Forbidden",
    "Interim",
    "InvalidInput",
    "InvalidKey",
    "Job",
    "JobCancelled",
    "JobEnded",
    "JobFailed",
    "JobInfo",
    "JobPage",
    "Log",
    "NotFound",
    "PairCalibration",
    "Program",
    "Programs",
    "QrtError",
    "QubitCalibration",
    "Result",
    "ResultUndecodable",
    "Services",
    "StreamError",
    "TooLarge",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "WaitTimeout",
]  # fmt: skip
