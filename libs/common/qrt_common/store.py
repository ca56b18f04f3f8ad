"""The job store: where jobs, their logs, interim results and final results are kept."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass, field

from .jobs import Job, JobStatus


@dataclass(frozen=True, slots=True)
class JobQuery:
    """Which jobs to list, newest first."""

    limit: int = 200
    offset: int = 0
    statuses: Collection[JobStatus] = ()
    program_id: str | None = None
    backend: str | None = None
    hub: str | None = None
    group: str | None = None
    project: str | None = None
    tags: Collection[str] = field(default=())
    """A job matches when it carries every one of these tags."""


@dataclass(frozen=True, slots=True)
class LogChunk:
    """A piece of a job's log, as one event carried it."""

    attempt: int
    seq: int
    text: str


@dataclass(frozen=True, slots=True)
class Interim:
    """One interim result a program published."""

    attempt: int
    index: int
    data: str


class StoreUnavailable(Exception):
    """The store cannot be reached right now."""


class JobStore(ABC):
    """Keeps jobs and what they produce. Every write is idempotent or compare-and-set."""

    async def open(self) -> None:
        """Connect and prepare the schema; called once before use."""

    async def close(self) -> None:
        """Release connections."""

    async def is_ready(self) -> bool:
        """True when the store answers."""
        return True

    @abstractmethod
    async def add_job(self, job: Job) -> None:
        """Store a new job."""

    @abstractmethod
    async def get_job(self, job_id: str) -> Job | None:
        """The job with this id, or None."""

    @abstractmethod
    async def list_jobs(self, query: JobQuery) -> tuple[list[Job], int]:
        """One page of the matching jobs, newest first, and how many match in all."""

    @abstractmethod
    async def replace_job(self, job: Job, *, expected: JobStatus) -> bool:
        """Write `job` only if the stored job still has status `expected`; True if it did."""

    @abstractmethod
    async def delete_job(self, job_id: str) -> bool:
        """Remove a job and everything it produced; True if it existed."""

    @abstractmethod
    async def append_log(self, job_id: str, attempt: int, seq: int, text: str) -> bool:
        """Add a chunk of log text; False if that chunk was stored already."""

    @abstractmethod
    async def log_chunks(self, job_id: str) -> list[LogChunk]:
        """The job's log in pieces, attempts and pieces in order."""

    async def read_log(self, job_id: str) -> str:
        """The job's whole log."""
        return "".join(chunk.text for chunk in await self.log_chunks(job_id))

    @abstractmethod
    async def add_interim(self, job_id: str, attempt: int, index: int, data: str) -> bool:
        """Keep an interim result; False if it was stored already."""

    @abstractmethod
    async def list_interims(self, job_id: str) -> list[Interim]:
        """The job's interim results in the order they were published."""

    @abstractmethod
    async def set_result(self, job_id: str, data: str) -> bool:
        """Keep the final result; the first one wins, False for a later one."""

    @abstractmethod
    async def get_result(self, job_id: str) -> str | None:
        """The final result, or None while there is none."""
