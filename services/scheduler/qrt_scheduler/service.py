"""The scheduler: decides which executor runs which job, and owns the job ledger."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from qrt_common.bus import MessageBus
from qrt_common.jobs import Job, JobStatus
from qrt_common.messages import (
    CANCEL_QUEUE,
    CONTROL_TOPIC,
    EVENTS_QUEUE,
    HEARTBEAT_TOPIC,
    SUBMITTED_QUEUE,
    Assignment,
    CancelJob,
    EventKind,
    Heartbeat,
    JobEvent,
    JobSubmitted,
    StopJob,
    decode,
    encode,
    executor_queue,
)
from qrt_common.settings import Settings
from qrt_common.store import JobQuery, JobStore

from .ledger import Ledger

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ExecutorState:
    """What the scheduler knows of one executor."""

    id: str
    capacity: int
    backends: frozenset[str]
    last_seen: float
    draining: bool = False
    assigned: set[str] = field(default_factory=set)

    @property
    def free(self) -> int:
        return 0 if self.draining else self.capacity - len(self.assigned)


class Scheduler:
    """Assigns queued jobs to executors with free capacity and a matching backend."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore,
        bus: MessageBus,
        *,
        orphan_grace: float | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._bus = bus
        self.ledger = Ledger(store, bus)
        self.pending: dict[str, JobSubmitted] = {}
        self.executors: dict[str, ExecutorState] = {}
        self._started_at = 0.0
        # Until executors have had time to report what they run, a Running job is not an orphan.
        self._orphan_grace = settings.heartbeat_timeout if orphan_grace is None else orphan_grace
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Re-read the queue from the store, then follow submissions, events and heartbeats."""
        self._started_at = time.monotonic()
        queued, _ = await self._store.list_jobs(
            JobQuery(statuses=[JobStatus.QUEUED], limit=1_000_000)
        )
        for job in reversed(queued):
            self.pending[job.id] = JobSubmitted.of(job)
        await self._bus.subscribe(HEARTBEAT_TOPIC, self._on_heartbeat)
        await self._bus.consume(SUBMITTED_QUEUE, self._on_submitted, prefetch=64)
        await self._bus.consume(EVENTS_QUEUE, self._on_event, prefetch=64)
        await self._bus.consume(CANCEL_QUEUE, self._on_cancel, prefetch=16)
        self._tasks = [
            asyncio.create_task(self._dispatch_forever()),
            asyncio.create_task(self._watch_executors()),
        ]
        self._wake.set()
        logger.info("scheduler ready", extra={"queued": len(self.pending)})

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _on_submitted(self, body: dict[str, Any]) -> None:
        submitted = decode(JobSubmitted, body)
        self.pending[submitted.job_id] = submitted
        self._wake.set()

    async def _on_heartbeat(self, body: dict[str, Any]) -> None:
        beat = decode(Heartbeat, body)
        state = self.executors.get(beat.executor_id)
        if state is None:
            state = ExecutorState(
                beat.executor_id, beat.capacity, frozenset(beat.backends), time.monotonic()
            )
            self.executors[beat.executor_id] = state
            logger.info("executor joined", extra={"executor_id": beat.executor_id})
        state.capacity, state.backends = beat.capacity, frozenset(beat.backends)
        state.draining, state.last_seen = beat.draining, time.monotonic()
        self._wake.set()

    async def _on_event(self, body: dict[str, Any]) -> None:
        event = decode(JobEvent, body)
        applied = await self.ledger.apply(event)
        if event.kind is EventKind.RUNNING and not applied:
            # The job was cancelled (or reassigned) while this attempt was on its way.
            await self._stop(event.job_id, JobStatus.CANCELLED)
        elif event.kind is EventKind.FINISHED:
            state = self.executors.get(event.executor_id)
            if state is not None:
                state.assigned.discard(event.job_id)
            self._wake.set()

    async def _on_cancel(self, body: dict[str, Any]) -> None:
        request = decode(CancelJob, body)
        job = await self._store.get_job(request.job_id)
        if job is None or job.status.is_final:
            return
        if job.status is JobStatus.QUEUED:
            self.pending.pop(job.id, None)
            if await self.ledger.change_status(job, JobStatus.CANCELLED, "cancelled on request"):
                await self._stop(job.id, JobStatus.CANCELLED)
                return
            job = await self._store.get_job(request.job_id) or job
        if job.status is JobStatus.RUNNING:
            await self._stop(job.id, JobStatus.CANCELLED)

    async def _stop(self, job_id: str, status: JobStatus) -> None:
        await self._bus.publish(CONTROL_TOPIC, encode(StopJob(job_id, status.value)))

    async def _dispatch_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._dispatch()
            except Exception:
                logger.exception("dispatch round failed")
                await asyncio.sleep(1)
                self._wake.set()

    def _pick(self, backend: str) -> ExecutorState | None:
        candidates = [e for e in self.executors.values() if e.free > 0 and backend in e.backends]
        return max(candidates, key=lambda e: e.free, default=None)

    async def _dispatch(self) -> None:
        for submitted in list(self.pending.values()):
            executor = self._pick(submitted.backend)
            if executor is None:
                continue
            job = await self._store.get_job(submitted.job_id)
            self.pending.pop(submitted.job_id, None)
            if job is None or job.status is not JobStatus.QUEUED:
                continue
            assignment = Assignment(
                job_id=job.id,
                program_id=job.program_id,
                backend=job.backend,
                params=job.params,
                max_execution_time=job.max_execution_time,
                attempt=job.attempt + 1,
            )
            executor.assigned.add(job.id)
            await self._bus.send(executor_queue(executor.id), encode(assignment))

    async def _watch_executors(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self._settings.heartbeat_timeout / 4))
            try:
                await self._reap()
            except Exception:
                logger.exception("executor check failed")

    async def _reap(self) -> None:
        now = time.monotonic()
        for state in list(self.executors.values()):
            if now - state.last_seen > self._settings.heartbeat_timeout:
                del self.executors[state.id]
                logger.warning("executor lost", extra={"executor_id": state.id})
                await self._requeue_unstarted(state.assigned)
        if now - self._started_at < self._orphan_grace:
            return
        running, _ = await self._store.list_jobs(
            JobQuery(statuses=[JobStatus.RUNNING], limit=1_000_000)
        )
        for job in running:
            if job.executor_id not in self.executors:
                await self._retry(job, f"executor {job.executor_id} was lost")

    async def _requeue_unstarted(self, job_ids: set[str]) -> None:
        # Assignments a lost executor never started are still Queued: schedule them again.
        for job_id in job_ids:
            job = await self._store.get_job(job_id)
            if job is not None and job.status is JobStatus.QUEUED:
                self.pending[job.id] = JobSubmitted.of(job)
                self._wake.set()

    async def _retry(self, job: Job, why: str) -> None:
        if job.attempt >= self._settings.max_attempts:
            reason = f"{why}; gave up after {job.attempt} attempts"
            await self.ledger.change_status(job, JobStatus.FAILED, reason)
            return
        if await self.ledger.change_status(job, JobStatus.QUEUED, why):
            self.pending[job.id] = JobSubmitted.of(job)
            self._wake.set()
            logger.info("job queued again", extra={"job_id": job.id, "why": why})
