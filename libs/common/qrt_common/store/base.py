"""The job store: where jobs, their logs, interim results and final results are kept, and the
programs users upload."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from ..archives import ProgramArchive
from ..jobs import Job, JobStatus
from ..programs import Program


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
    session_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


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
    async def add_job(self, job: Job) -> Job:
        """Store a new job and return it; when `job.idempotency_key` is that of a stored job,
        store nothing and return that one (whatever it asked for)."""

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

    @abstractmethod
    async def add_program(self, program: Program, archive: ProgramArchive) -> None:
        """Store an uploaded program (its `owner` set, its `digest` that of `archive`) and its
        archive; raises ProgramNameTaken if its owner has a program of that name."""

    @abstractmethod
    async def get_program(self, program_id: str) -> Program | None:
        """The uploaded program with this id, or None."""

    @abstractmethod
    async def program_archive(self, program_id: str) -> ProgramArchive | None:
        """The archive of the uploaded program with this id, or None."""

    @abstractmethod
    async def list_programs(self, owner: str) -> list[Program]:
        """The programs `owner` uploaded and every public one, by name."""

    @abstractmethod
    async def update_program(self, program: Program, archive: ProgramArchive | None = None) -> bool:
        """Replace a stored program's metadata, and its archive unless `archive` is None (the
        program's `digest` names the archive kept); False if there is no such program; raises
        ProgramNameTaken as `add_program` does."""

    @abstractmethod
    async def delete_program(self, program_id: str) -> bool:
        """Remove an uploaded program; True if it existed."""

    @abstractmethod
    async def purge(
        self,
        *,
        ended_before: datetime | None,
        logs_before: datetime | None,
        keys_before: datetime | None = None,
    ) -> int:
        """Remove jobs that ended before `ended_before` (with all they produced), log chunks
        written before `logs_before`, and the idempotency keys of jobs created before
        `keys_before` (such a key makes a new job again); None keeps them. Returns how many
        jobs went."""
