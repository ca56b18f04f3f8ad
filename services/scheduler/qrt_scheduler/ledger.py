"""The job ledger: the one place a job's status changes, and where job events are stored."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from qrt_common.bus.base import MessageBus
from qrt_common.errors import IllegalTransition
from qrt_common.jobs import Job, JobStatus, transition, utcnow
from qrt_common.messages import UPDATES_TOPIC, EventKind, JobEvent, JobEvents
from qrt_common.metrics import JOBS_ENDED, REASSIGNMENTS
from qrt_common.retry import until_available
from qrt_common.store.base import JobStore
from qrt_common.timeline import Stage, StageRecord
from qrt_common.wire import encode

logger = logging.getLogger(__name__)

_LEDGER_STAGES = frozenset({Stage.QUEUED, Stage.ASSIGNED, Stage.FINISHED})
"""Stages only the ledger records (it makes those changes); executors report the others."""


class Ledger:
    """Applies job events to the store, each at most once, then tells the gateways.

    Status changes are compare-and-set on the status the ledger read, and events of one job
    are applied one at a time, so a duplicate, late or reordered event never corrupts a job.
    A job's events are applied in the order their messages came: while the store cannot take
    one (a full disk), the job's later events wait behind it, so a job never ends before the
    log it wrote earlier is stored.
    """

    def __init__(self, store: JobStore, bus: MessageBus) -> None:
        self._store = store
        self._bus = bus
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def _serialized(self, job_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.setdefault(job_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[job_id]

    async def apply(self, event: JobEvent) -> bool:
        """Store what `event` says; True if it changed anything (and was announced)."""
        return (await self.apply_all([event]))[0]

    async def apply_all(self, events: list[JobEvent]) -> list[bool]:
        """Store what each of one job's `events` says, in order; for each, whether it changed
        anything. The ones that did are announced together. While the store is unavailable
        (StoreUnavailable: a full disk, MongoDB unreachable) an event is tried again, with
        `retry.until_available`'s backoff, and the job's later events wait."""
        if not events:
            return []
        applied = []
        async with self._serialized(events[0].job_id):
            for event in events:
                # Tried again here, in the job's turn: were the bus to try this message again
                # later instead, the job's next message (its end, sent once the log was) would
                # take the turn meanwhile, and the job would end with its log incomplete.
                apply = functools.partial(self._apply, event)
                applied.append(await until_available(apply, what="the store"))
        await self._announce([e for e, changed in zip(events, applied, strict=True) if changed])
        return applied

    async def _announce(self, events: list[JobEvent]) -> None:
        if not events:
            return
        # Streams also read the store, so a missed update delays a stream, it loses nothing:
        # a broker hiccup here must not undo the stored change's follow-up work.
        job_id = events[0].job_id
        try:
            await self._bus.publish(UPDATES_TOPIC, encode(JobEvents(job_id, events)))
        except Exception as exc:
            logger.warning("job update not announced: %s", exc, extra={"job_id": job_id})

    async def _apply(self, event: JobEvent) -> bool:
        job_id, attempt = event.job_id, event.attempt
        if event.kind is EventKind.LOG:
            return await self._store.append_log(job_id, attempt, event.seq, event.data or "")
        if event.kind is EventKind.INTERIM:
            return await self._store.add_interim(job_id, attempt, event.seq, event.data or "")
        job = await self._store.get_job(job_id)
        if job is None:
            return False
        # Only the executor a job is placed on may start it, give its result, release it or
        # end it; an attempt it has since lost (or an older one) may not.
        assigned_here = job.executor_id == event.executor_id
        if event.kind is EventKind.RESULT:
            live = job.status is JobStatus.RUNNING and attempt == job.attempt and assigned_here
            return live and await self._store.set_result(job_id, event.data or "")
        at = datetime.fromtimestamp(event.at, UTC)
        if event.kind is EventKind.RUNNING:
            if job.status is not JobStatus.QUEUED or attempt != job.attempt + 1:
                return False
            if not assigned_here:
                return False
            return await self._move(job, JobStatus.RUNNING, at=at, executor_id=event.executor_id)
        if event.kind is EventKind.STAGE:
            live = job.status is JobStatus.RUNNING and attempt == job.attempt and assigned_here
            if not live or event.stage is None or event.stage in _LEDGER_STAGES:
                return False
            record = StageRecord(attempt, event.stage, at, event.executor_id, event.data)
            return await self._store.add_stage(job_id, record)
        if event.kind is EventKind.RELEASED:
            if job.status is JobStatus.RUNNING and attempt == job.attempt and assigned_here:
                return await self._move(job, JobStatus.QUEUED, reason=event.reason)
            if job.status is JobStatus.QUEUED and job.executor_id == event.executor_id:
                return await self.assign(job, None)
            return False
        # FINISHED: only the attempt the store knows about may end the job.
        started = job.status is JobStatus.RUNNING and attempt == job.attempt and assigned_here
        never_started = (
            job.status is JobStatus.QUEUED and attempt == job.attempt + 1 and assigned_here
        )
        if not (started or never_started) or event.status is None:
            return False
        return await self._move(job, event.status, at=at, reason=event.reason)

    async def _move(
        self,
        job: Job,
        to: JobStatus,
        *,
        at: datetime | None = None,
        reason: str | None = None,
        executor_id: str | None = None,
    ) -> bool:
        try:
            moved = transition(job, to, at=at, reason=reason, executor_id=executor_id)
        except IllegalTransition as exc:
            logger.info("ignored: %s", exc, extra={"job_id": job.id})
            return False
        if not await self._store.replace_job(moved, expected=job.status):
            return False
        if to is JobStatus.RUNNING:
            record = StageRecord(moved.attempt, Stage.RUNNING, moved.started or utcnow(),
                                 moved.executor_id)  # fmt: skip
        elif to is JobStatus.QUEUED:
            record = StageRecord(moved.attempt + 1, Stage.QUEUED, at or utcnow())
        else:
            record = StageRecord(moved.attempt, Stage.FINISHED, moved.ended or utcnow(),
                                 job.executor_id, to.value)  # fmt: skip
        await self._record(job.id, record)
        if to.is_final:
            JOBS_ENDED.labels(to.value).inc()
        elif to is JobStatus.QUEUED:
            REASSIGNMENTS.inc()
        return True

    async def assign(self, job: Job, executor_id: str | None) -> bool:
        """Record that `executor_id` (None: no executor) is to run the queued `job`."""
        if job.status is not JobStatus.QUEUED:
            return False
        placed = dataclasses.replace(job, executor_id=executor_id)
        if not await self._store.replace_job(placed, expected=JobStatus.QUEUED):
            return False
        if executor_id is not None:
            await self._record(job.id, StageRecord(job.attempt + 1, Stage.ASSIGNED, utcnow(),
                                                   executor_id))  # fmt: skip
        return True

    async def _record(self, job_id: str, record: StageRecord) -> None:
        """Add a timeline entry for a change made already: a store that fails it costs the
        timeline its entry, never the change."""
        try:
            await self._store.add_stage(job_id, record)
        except Exception as exc:
            where = {"job_id": job_id, "stage": record.stage.value}
            logger.warning("timeline entry not stored: %s", exc, extra=where)

    async def request_cancel(self, job: Job) -> bool:
        """Record on the running `job` that it is to be cancelled."""
        if job.status is not JobStatus.RUNNING:
            return False
        marked = dataclasses.replace(job, cancel_requested=True)
        return await self._store.replace_job(marked, expected=JobStatus.RUNNING)

    async def change_status(self, job: Job, to: JobStatus, reason: str | None = None) -> bool:
        """Move `job` (as read from the store) to `to` and announce it; False if it had moved."""
        event = JobEvent(
            job_id=job.id,
            kind=EventKind.FINISHED,
            attempt=job.attempt,
            status=to,
            reason=reason,
        )
        async with self._serialized(job.id):
            moved = await self._move(job, to, reason=reason)
        if moved:
            await self._announce([event])
        return moved
