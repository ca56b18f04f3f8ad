"""The job store: where jobs, their logs, interim results and final results are kept, and the
programs users upload."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from ..archives import ProgramArchive
from ..jobs import Job, JobStatus
from ..programs import Program
from ..sessions import JobTimes, Session
from ..timeline import StageRecord
from .accounts import AccountStore


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
    instances: Collection[str] | None = None
    """Only jobs of these `hub/group/project` instances; None: of every one."""
    created_after: datetime | None = None
    created_before: datetime | None = None
    oldest_first: bool = False
    """List the oldest jobs first (IBM's `sort=ASC`) instead of the newest."""
    with_params: bool = True
    """False: the store does not read the jobs' params (which may be megabytes each), and each
    listed job's `params` is empty; for listings that do not show them."""


@dataclass(frozen=True, slots=True)
class ReplaceJob:
    """A step of `JobStore.write_steps`: `replace_job(job, expected=..., stage=...)`."""

    job: Job
    expected: JobStatus
    stage: StageRecord | None = None


@dataclass(frozen=True, slots=True)
class AddStage:
    """A step of `JobStore.write_steps`: `add_stage`."""

    record: StageRecord


@dataclass(frozen=True, slots=True)
class AppendLog:
    """A step of `JobStore.write_steps`: `append_log`."""

    attempt: int
    seq: int
    text: str


@dataclass(frozen=True, slots=True)
class AddInterim:
    """A step of `JobStore.write_steps`: `add_interim`."""

    attempt: int
    index: int
    data: str


@dataclass(frozen=True, slots=True)
class SetResult:
    """A step of `JobStore.write_steps`: `set_result`."""

    data: str


JobStep = ReplaceJob | AddStage | AppendLog | AddInterim | SetResult
"""One write of `JobStore.write_steps`, about one job."""


READ_PAGE = 500
"""Log chunks or interim results one paged read returns at most (see `JobStore.log_pages`)."""
PAGE_BYTES = 1024 * 1024
"""About how much text a page holds: pages of large pieces hold fewer of them."""
FIRST_PAGE = 64
"""Pieces the first read of a paged read asks for, before it knows how large they are."""

PartKey = tuple[int, int]
"""Where a log chunk or interim result sits in its job's output: (attempt, seq), in order."""


@dataclass(frozen=True, slots=True)
class LogChunk:
    """A piece of a job's log, as one event carried it."""

    attempt: int
    seq: int
    text: str

    @property
    def key(self) -> PartKey:
        return (self.attempt, self.seq)


@dataclass(frozen=True, slots=True)
class Interim:
    """One interim result a program published."""

    attempt: int
    index: int
    data: str

    @property
    def key(self) -> PartKey:
        return (self.attempt, self.index)


FAILURE_MEMORY = 30.0
"""Seconds a write that failed because the store could not write (a full disk) keeps the store
not ready, unless a later write succeeds: whoever retries it (the scheduler's ledger does,
every few seconds) keeps the memory fresh while the cause lasts."""


class WriteHealth:
    """Whether the store's writes work: the last write that failed because the store could not
    write (not because of what it wrote), until a later write succeeds or FAILURE_MEMORY
    seconds pass."""

    def __init__(self) -> None:
        self._failed: tuple[float, str] | None = None

    def failed(self, reason: str) -> None:
        self._failed = (time.monotonic(), reason)

    def succeeded(self) -> None:
        self._failed = None

    @property
    def failure(self) -> str | None:
        """Why writes fail now, or None."""
        if self._failed is None:
            return None
        at, reason = self._failed
        if time.monotonic() - at > FAILURE_MEMORY:
            self._failed = None
            return None
        return reason


class JobStore(AccountStore, ABC):
    """Keeps jobs and what they produce, and the accounts (`AccountStore`). Every job write is
    idempotent or compare-and-set."""

    async def open(self) -> None:
        """Connect and prepare the schema; called once before use."""

    async def close(self) -> None:
        """Release connections."""

    async def is_ready(self) -> bool:
        """True when the store answers and can write (a store whose disk is full is not
        ready)."""
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
    async def replace_job(
        self, job: Job, *, expected: JobStatus, stage: StageRecord | None = None
    ) -> bool:
        """Write `job` only if the stored job still has status `expected`; True if it did.
        A job's params never change once it is added: they are not written again (a job
        listed without them may be written back). With `stage`, the change's timeline entry
        is added with it (as `add_stage` does), in one write where the store has them."""

    async def write_steps(self, job_id: str, steps: Sequence[JobStep]) -> list[bool]:
        """Make `steps` (writes about job `job_id`), in order; what each returned, as the
        method it names would. A `ReplaceJob` that finds the job moved on (False) is the last
        step made: the later ones assumed it, and the answer is shorter than `steps`.

        Where the store has transactions (SQLite) the steps made are one write: all of them
        or, when it raises, none. Otherwise they are made one by one, and a failure after some
        returns those (the caller goes on from there); a failure of the first one raises
        (StoreUnavailable while the store is unavailable)."""
        done: list[bool] = []
        for step in steps:
            try:
                changed = await self._write_step(job_id, step)
            except Exception:
                if done:
                    return done
                raise
            done.append(changed)
            if isinstance(step, ReplaceJob) and not changed:
                break
        return done

    async def _write_step(self, job_id: str, step: JobStep) -> bool:
        if isinstance(step, ReplaceJob):
            return await self.replace_job(step.job, expected=step.expected, stage=step.stage)
        if isinstance(step, AddStage):
            return await self.add_stage(job_id, step.record)
        if isinstance(step, AppendLog):
            return await self.append_log(job_id, step.attempt, step.seq, step.text)
        if isinstance(step, AddInterim):
            return await self.add_interim(job_id, step.attempt, step.index, step.data)
        return await self.set_result(job_id, step.data)

    @abstractmethod
    async def delete_job(self, job_id: str) -> bool:
        """Remove a job and everything it produced; True if it existed."""

    @abstractmethod
    async def append_log(self, job_id: str, attempt: int, seq: int, text: str) -> bool:
        """Add a chunk of log text; False if that chunk was stored already."""

    @abstractmethod
    async def log_chunks(
        self,
        job_id: str,
        *,
        attempt: int | None = None,
        after: PartKey | None = None,
        limit: int | None = None,
    ) -> list[LogChunk]:
        """The job's log in pieces, attempts and pieces in order: only `attempt`'s when given,
        only those after the key `after`, at most `limit` of them. Large reads go by pages
        (`log_pages`)."""

    async def log_pages(
        self, job_id: str, *, attempt: int | None = None, page: int = READ_PAGE
    ) -> AsyncIterator[list[LogChunk]]:
        """The job's log in pages of at most `page` chunks and about PAGE_BYTES, in order (see
        `log_chunks`): a reader of a large log holds one page at a time, and each read is
        short."""

        async def read(after: PartKey | None, limit: int) -> list[LogChunk]:
            return await self.log_chunks(job_id, attempt=attempt, after=after, limit=limit)

        async for chunks in read_pages(read, lambda c: c.key, lambda c: len(c.text), page):
            yield chunks

    async def read_log(self, job_id: str) -> str:
        """The job's whole log."""
        return "".join(chunk.text for chunk in await self.log_chunks(job_id))

    @abstractmethod
    async def add_interim(self, job_id: str, attempt: int, index: int, data: str) -> bool:
        """Keep an interim result; False if it was stored already."""

    @abstractmethod
    async def list_interims(
        self,
        job_id: str,
        *,
        attempt: int | None = None,
        after: PartKey | None = None,
        limit: int | None = None,
    ) -> list[Interim]:
        """The job's interim results in the order they were published, chosen as `log_chunks`
        chooses log chunks. Large reads go by pages (`interim_pages`)."""

    async def interim_pages(
        self, job_id: str, *, attempt: int | None = None, page: int = READ_PAGE
    ) -> AsyncIterator[list[Interim]]:
        """The job's interim results in pages, as `log_pages` reads the log."""

        async def read(after: PartKey | None, limit: int) -> list[Interim]:
            return await self.list_interims(job_id, attempt=attempt, after=after, limit=limit)

        async for interims in read_pages(read, lambda i: i.key, lambda i: len(i.data), page):
            yield interims

    @abstractmethod
    async def last_interim(self, job_id: str, *, attempt: int | None = None) -> Interim | None:
        """The job's (or its attempt `attempt`'s) latest interim result, or None."""

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

    @abstractmethod
    async def set_job_tags(self, job_id: str, tags: Sequence[str]) -> bool:
        """Replace a job's tags, leaving the rest of it as it is; True if the job exists."""

    # sessions and timelines

    @abstractmethod
    async def add_session(self, session: Session) -> None:
        """Store a new session."""

    @abstractmethod
    async def get_session(self, session_id: str) -> Session | None:
        """The session with this id, or None."""

    @abstractmethod
    async def replace_session(self, session: Session) -> bool:
        """Write `session` over the stored one; False if there is none."""

    @abstractmethod
    async def session_job_times(self, session_id: str) -> list[JobTimes]:
        """Status, start and end of every job of the session (not the jobs themselves, whose
        params may be large)."""

    @abstractmethod
    async def add_stage(self, job_id: str, record: StageRecord) -> bool:
        """Add an entry to the job's timeline; False if it was stored already (same attempt,
        stage and time)."""

    @abstractmethod
    async def job_stages(self, job_id: str) -> list[StageRecord]:
        """The job's stored timeline entries, oldest first (deleted with the job)."""

    @abstractmethod
    async def job_with_idempotency_key(self, key: str) -> Job | None:
        """The job a submit with `Job.idempotency_key` `key` made, or None."""

    @abstractmethod
    async def active_jobs_of(self, submitter: str | None) -> int:
        """How many Queued or Running jobs `submitter` has (None: jobs submitted without API
        keys, `qrt dev`'s single user's)."""

    @abstractmethod
    async def active_jobs_in(self, instance: str) -> int:
        """How many Queued or Running jobs instance `instance` (hub/group/project) has."""


Part = TypeVar("Part")


async def read_pages(
    read: Callable[[PartKey | None, int], Awaitable[list[Part]]],
    key: Callable[[Part], PartKey],
    size: Callable[[Part], int],
    most: int = READ_PAGE,
) -> AsyncIterator[list[Part]]:
    """Pages of what `read(after, limit)` gives (the pieces after key `after`, at most
    `limit`), in order, up to `most` pieces each: a page holds more pieces while they are small
    (`size`: a piece's length) and fewer once they are large (about PAGE_BYTES); `key` is a
    piece's (attempt, seq)."""
    after: PartKey | None = None
    limit = min(FIRST_PAGE, most)
    while parts := await read(after, limit):
        yield parts
        if len(parts) < limit:
            return
        after = key(parts[-1])
        total = sum(size(part) for part in parts)
        grown = limit * 2 if total < PAGE_BYTES else limit * PAGE_BYTES // total
        limit = max(1, min(most, grown))
