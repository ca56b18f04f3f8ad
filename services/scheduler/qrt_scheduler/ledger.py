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
from qrt_common.store.base import (
    AddInterim,
    AddStage,
    AppendLog,
    JobStep,
    JobStore,
    ReplaceJob,
    SetResult,
)
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
        anything. The ones that did are announced together. What they change is one write
        where the store has transactions (`JobStore.write_steps`). While the store is
        unavailable (StoreUnavailable: a full disk, MongoDB unreachable) the write is tried
        again, with `retry.until_available`'s backoff, and the job's later events wait."""
        if not events:
            return []
        applied: list[bool] = []
        async with self._serialized(events[0].job_id):
            while len(applied) < len(events):
                # Tried again here, in the job's turn: were the bus to try this message again
                # later instead, the job's next message (its end, sent once the log was) would
                # take the turn meanwhile, and the job would end with its log incomplete.
                rest = functools.partial(self._apply_some, events[len(applied) :])
                applied += await until_available(rest, what="the store")
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

    async def _apply_some(self, events: list[JobEvent]) -> list[bool]:
        """Store what `events` say, from the first, in one `write_steps`: for each event it got
        to (at least the first), whether it changed anything.

        Each event is judged against the job as the events before it left it (one read of the
        job for them all); should a status change find the job moved on (a compare-and-set
        that failed), the events after it are left for the next call, which reads the job
        again."""
        job = None
        if any(event.kind not in _OUTPUT for event in events):
            job = await self._store.get_job(events[0].job_id)
        steps: list[JobStep] = []
        step_of: list[int | None] = []  # each event's step (its index), None: nothing to do
        for event in events:
            step = self._plan(event, job)
            if step is None:
                step_of.append(None)
                continue
            step_of.append(len(steps))
            steps.append(step)
            if isinstance(step, ReplaceJob):
                job = step.job
        if not steps:
            return [False] * len(events)
        done = await self._store.write_steps(events[0].job_id, steps)
        for step, changed in zip(steps, done, strict=False):
            if changed and isinstance(step, ReplaceJob):
                _count(step)
        reached = len(events)
        if len(done) < len(steps):  # up to the event of the last step made
            reached = step_of.index(len(done) - 1) + 1
        return [k is not None and done[k] for k in step_of[:reached]]

    def _plan(self, event: JobEvent, job: Job | None) -> JobStep | None:
        """The write `event` makes of `job` (as stored, or as this message's earlier events
        left it), or None when it changes nothing."""
        attempt = event.attempt
        if event.kind is EventKind.LOG:
            return AppendLog(attempt, event.seq, event.data or "")
        if event.kind is EventKind.INTERIM:
            return AddInterim(attempt, event.seq, event.data or "")
        if job is None:
            return None
        # Only the executor a job is placed on may start it, give its result, release it or
        # end it; an attempt it has since lost (or an older one) may not.
        assigned_here = job.executor_id == event.executor_id
        live = job.status is JobStatus.RUNNING and attempt == job.attempt and assigned_here
        if event.kind is EventKind.RESULT:
            return SetResult(event.data or "") if live else None
        at = datetime.fromtimestamp(event.at, UTC)
        if event.kind is EventKind.RUNNING:
            if job.status is not JobStatus.QUEUED or attempt != job.attempt + 1:
                return None
            if not assigned_here:
                return None
            return _transition(job, JobStatus.RUNNING, at=at, executor_id=event.executor_id)
        if event.kind is EventKind.STAGE:
            if not live or event.stage is None or event.stage in _LEDGER_STAGES:
                return None
            return AddStage(StageRecord(attempt, event.stage, at, event.executor_id, event.data))
        if event.kind is EventKind.RELEASED:
            if live:
                return _transition(job, JobStatus.QUEUED, reason=event.reason)
            if job.status is JobStatus.QUEUED and job.executor_id == event.executor_id:
                return _placing(job, None)
            return None
        # FINISHED: only the attempt the store knows about may end the job.
        never_started = (
            job.status is JobStatus.QUEUED and attempt == job.attempt + 1 and assigned_here
        )
        if not (live or never_started) or event.status is None:
            return None
        return _transition(job, event.status, at=at, reason=event.reason)

    async def _write(self, step: ReplaceJob | None) -> bool:
        if step is None:
            return False
        changed = await self._store.replace_job(step.job, expected=step.expected, stage=step.stage)
        if changed:
            _count(step)
        return changed

    async def assign(self, job: Job, executor_id: str | None) -> bool:
        """Record that `executor_id` (None: no executor) is to run the queued `job`."""
        return await self._write(_placing(job, executor_id))

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
            moved = await self._write(_transition(job, to, reason=reason))
        if moved:
            await self._announce([event])
        return moved


_OUTPUT = frozenset({EventKind.LOG, EventKind.INTERIM})
"""Events stored whatever the job's state: no read of the job is needed for them."""


def _transition(
    job: Job,
    to: JobStatus,
    *,
    at: datetime | None = None,
    reason: str | None = None,
    executor_id: str | None = None,
) -> ReplaceJob | None:
    """The write that moves `job` to `to`, with the change's timeline entry; None (logged)
    when the move is not allowed."""
    try:
        moved = transition(job, to, at=at, reason=reason, executor_id=executor_id)
    except IllegalTransition as exc:
        logger.info("ignored: %s", exc, extra={"job_id": job.id})
        return None
    if to is JobStatus.RUNNING:
        record = StageRecord(moved.attempt, Stage.RUNNING, moved.started or utcnow(),
                             moved.executor_id)  # fmt: skip
    elif to is JobStatus.QUEUED:
        record = StageRecord(moved.attempt + 1, Stage.QUEUED, at or utcnow())
    else:
        record = StageRecord(moved.attempt, Stage.FINISHED, moved.ended or utcnow(),
                             job.executor_id, to.value)  # fmt: skip
    return ReplaceJob(moved, job.status, record)


def _placing(job: Job, executor_id: str | None) -> ReplaceJob | None:
    """The write that places the queued `job` on `executor_id` (None: takes it back from its
    executor); None unless the job is queued."""
    if job.status is not JobStatus.QUEUED:
        return None
    placed = dataclasses.replace(job, executor_id=executor_id)
    record = None
    if executor_id is not None:
        record = StageRecord(job.attempt + 1, Stage.ASSIGNED, utcnow(), executor_id)
    return ReplaceJob(placed, JobStatus.QUEUED, record)


def _count(step: ReplaceJob) -> None:
    """Count a status change made."""
    to = step.job.status
    if to.is_final:
        JOBS_ENDED.labels(to.value).inc()
    elif to is JobStatus.QUEUED and step.expected is JobStatus.RUNNING:
        REASSIGNMENTS.inc()
