"""The scheduler: decides which executor runs which job, and owns the job ledger.

Its state lives in modules of its own: the fair queue (`queue`), the live executors
(`executors`), the placements (`placements`); this module holds what it does about each message
it hears, and its sweeps.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from qrt_common.bus.base import MessageBus, send_until_accepted
from qrt_common.errors import MalformedMessage
from qrt_common.jobs import Job, JobStatus, utcnow
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
    JobEvents,
    JobSubmitted,
    StopJob,
    executor_queue,
)
from qrt_common.metrics import (
    ASSIGNMENT_WAIT,
    JOBS_SUBMITTED,
    GaugeCollector,
    gauge,
    register,
)
from qrt_common.sessions import Session, SessionActivity, SessionMode, expires_at, hold_seconds
from qrt_common.settings import Settings
from qrt_common.store.base import JobQuery, JobStore
from qrt_common.wire import decode, encode

from .executors import ExecutorState, LiveExecutors
from .ledger import Ledger
from .placements import DeviceHold, Placement, Placements
from .queue import PendingQueue

logger = logging.getLogger(__name__)

ALL = 1_000_000
RETRY_SECONDS = 1.0
"""How long placing waits after the store failed it, before it tries again."""


class Scheduler:
    """Assigns queued jobs to executors with free capacity and a matching backend.

    Jobs wait in a fair priority queue; a device backend (an *exclusive* one) runs one job at a
    time across all executors. The assignment is written to the job before it is sent, so after
    a restart the scheduler knows what is placed where and never places a job twice.
    """

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
        self.pending = PendingQueue()
        self.executors = LiveExecutors()
        self.placed = Placements()
        self.sessions: dict[str, Session | None] = {}
        """Sessions of the jobs this scheduler has seen, by id (None: no stored session has
        that id, as with the old API's free-form session ids)."""
        self.holds: dict[str, DeviceHold] = {}
        """Devices a dedicated session keeps between its jobs, by backend name."""
        self.cancelling: set[str] = set()
        """Running jobs a user cancelled, until they end: the stop order is repeated."""
        self._started_at = 0.0
        self._stood_still_until = 0.0
        """`time.monotonic()` when this scheduler last found it had itself stood still."""
        # Until executors have had time to report in, a placed job is not an orphan.
        self._orphan_grace = settings.heartbeat_timeout if orphan_grace is None else orphan_grace
        self._examined: str | None = None
        """The job a dispatch round has taken from the queue and is reading from the store."""
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._placing: set[asyncio.Task[None]] = set()
        self._unregister_metrics: Callable[[], None] = lambda: None

    async def start(self) -> None:
        """Re-read queue and placements from the store, then follow the bus."""
        self._started_at = time.monotonic()
        queued, _ = await self._store.list_jobs(
            JobQuery(statuses=[JobStatus.QUEUED], limit=ALL, with_params=False)
        )
        running, _ = await self._store.list_jobs(
            JobQuery(statuses=[JobStatus.RUNNING], limit=ALL, with_params=False)
        )
        await self._learn_sessions([*queued, *running])
        self._adopt(queued)
        self.cancelling = {job.id for job in running if job.cancel_requested}
        for job in [*queued, *running]:
            if job.executor_id is not None:
                attempt = job.attempt + (job.status is JobStatus.QUEUED)
                self.placed[job.id] = Placement(
                    job.executor_id, job.backend, attempt, job.session_id, job.instance
                )
        await self._bus.subscribe(HEARTBEAT_TOPIC, self._on_heartbeat)
        await self._bus.consume(SUBMITTED_QUEUE, self._on_submitted, prefetch=64)
        await self._bus.consume(EVENTS_QUEUE, self._on_events, prefetch=64)
        await self._bus.consume(CANCEL_QUEUE, self._on_cancel, prefetch=16)
        await self._bus.consume_dead_letters(self._on_dead_letter)
        self._tasks = [
            asyncio.create_task(self._dispatch_forever()),
            asyncio.create_task(self._watch_executors()),
            asyncio.create_task(self._sweep_forever()),
        ]
        self._tasks.append(asyncio.create_task(self._purge_forever()))
        self._unregister_metrics = register(GaugeCollector(self._gauges))
        self._wake.set()
        logger.info("scheduler ready", extra={"queued": len(self.pending)})

    def _gauges(self) -> list[GaugeMetricFamily]:
        depth = self.pending.depth_by_backend()
        for executor in self.executors:  # a zero is data too: an empty queue
            for backend in executor.backends:
                depth.setdefault(backend, 0)
        return [
            gauge("qrt_jobs", "Jobs waiting (Queued) or placed on executors (Running).",
                  {("Queued",): len(self.pending), ("Running",): len(self.placed)}, ("status",)),
            gauge("qrt_scheduler_queue_depth", "Jobs waiting for an executor, by backend.",
                  {(backend,): n for backend, n in depth.items()}, ("backend",)),
            gauge("qrt_executors_live", "Executors heard from within the heartbeat timeout.",
                  len(self.executors)),
            gauge("qrt_executors_capacity", "Jobs the live executors can run at once.",
                  self.executors.capacity()),
        ]  # fmt: skip

    async def close(self) -> None:
        self._unregister_metrics()
        tasks = [*self._tasks, *self._placing]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # What the scheduler hears.

    def _holds(self, job_id: str) -> bool:
        """True if the job is queued here, placed, or being placed right now."""
        return job_id in self.pending or job_id in self.placed or job_id == self._examined

    async def _on_submitted(self, body: dict[str, Any]) -> None:
        submitted = decode(JobSubmitted, body)
        if submitted.session_id is not None:
            await self._learn_session(submitted.session_id)
        if not self._holds(submitted.job_id):
            JOBS_SUBMITTED.inc()
            self.pending.add(submitted)
            self._wake.set()

    def _adopt(self, queued: list[Job]) -> int:
        """Queue the jobs of `queued` (read from the store) that nobody placed and this
        scheduler does not hold; how many there were."""
        adopted = 0
        for job in queued:
            if job.executor_id is None and not self._holds(job.id):
                self.pending.add(JobSubmitted.of(job))
                adopted += 1
        if adopted:
            self._wake.set()
        return adopted

    async def sweep(self) -> int:
        """Queue what the store holds queued and this scheduler does not: a gateway that stored
        a job and died before announcing it must not strand it. A job stored within the last
        sweep interval is left to its announcement. Returns how many jobs were picked up."""
        settled = utcnow() - timedelta(seconds=self._settings.sweep_interval)
        query = JobQuery(
            statuses=[JobStatus.QUEUED], created_before=settled, limit=ALL, with_params=False
        )
        queued, _ = await self._store.list_jobs(query)
        await self._learn_sessions(queued)
        adopted = self._adopt(queued)
        if adopted:
            JOBS_SUBMITTED.inc(adopted)
            logger.warning("queued jobs nobody announced picked up", extra={"jobs": adopted})
        return adopted

    async def _learn_session(self, session_id: str) -> None:
        """Read the session `session_id` from the store, once."""
        if session_id not in self.sessions:
            self.sessions[session_id] = await self._store.get_session(session_id)

    async def _learn_sessions(self, jobs: list[Job]) -> None:
        for job in jobs:
            if job.session_id is not None:
                await self._learn_session(job.session_id)

    def _hold_device(self, ended: Placement) -> bool:
        """Keep the device a dedicated session's job ran on for the session's next job, for
        the session's interactive_ttl (IBM's rule: the backend is the session's while it is
        active); True if it did."""
        session_id = ended.session_id
        session = None if session_id is None else self.sessions.get(session_id)
        if session is None or session.mode is not SessionMode.DEDICATED:
            return False
        if ended.backend not in self.executors.exclusive_backends():
            return False
        ttl = float(hold_seconds(session, self._settings.session_max_interactive_ttl))
        self.holds[ended.backend] = DeviceHold(session.id, time.monotonic() + ttl)
        # When it runs out, the jobs it held back may go.
        asyncio.get_running_loop().call_later(ttl, self._wake.set)
        return True

    async def _confirm_hold(self, ended: Placement) -> None:
        """Let the device go at once if the session takes no more jobs."""
        hold = self.holds.get(ended.backend)
        if hold is None:
            return
        session = await self._store.get_session(hold.session_id)
        if session is None or not session.accepting_jobs or session.cancelled:
            self._release_hold(ended.backend, hold)

    def _release_hold(self, backend: str, hold: DeviceHold) -> None:
        if self.holds.get(backend) is hold:
            del self.holds[backend]
            self._wake.set()

    def _forget_sessions(self) -> None:
        """Drop the sessions no waiting, placed or holding job needs any more (read again
        from the store should one come back)."""
        needed = {job.session_id for job in self.pending}
        needed |= {p.session_id for _, p in self.placed.items()}
        needed |= {hold.session_id for hold in self.holds.values()}
        for session_id in [s for s in self.sessions if s not in needed]:
            del self.sessions[session_id]

    async def _end_expired_sessions(self) -> None:
        """Cancel the waiting jobs of sessions past their max_ttl (IBM's rule: the session
        ends, its queued jobs do not run; its running ones run to their end)."""
        waiting: dict[str, list[str]] = {}
        for submitted in self.pending:
            if submitted.session_id is not None and self.sessions.get(submitted.session_id):
                waiting.setdefault(submitted.session_id, []).append(submitted.job_id)
        for session_id, job_ids in waiting.items():
            session = self.sessions.get(session_id)
            if session is None:
                continue
            activity = SessionActivity.of(await self._store.session_job_times(session_id))
            expiry = expires_at(session, activity)
            if expiry is None or utcnow() < expiry:
                continue
            reason = f"its session {session_id} reached its max_ttl of {session.max_ttl} s"
            for job_id in job_ids:
                # Taken out of the queue first, so no dispatch places it meanwhile.
                if self.pending.remove(job_id) is None:
                    continue
                job = await self._store.get_job(job_id)
                if job is None or job.status is not JobStatus.QUEUED:
                    continue
                if job.executor_id is not None or not await self.ledger.change_status(
                    job, JobStatus.CANCELLED, reason
                ):
                    self.pending.add(JobSubmitted.of(job))  # placed or moved meanwhile

    async def _review_holds(self) -> None:
        """Let go of the devices held for sessions that ran out of time or were closed."""
        self._forget_sessions()
        now = time.monotonic()
        for backend, hold in list(self.holds.items()):
            session = None
            if hold.until > now:
                session = await self._store.get_session(hold.session_id)
            if session is None or not session.accepting_jobs or session.cancelled:
                self._release_hold(backend, hold)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.sweep_interval)
            try:
                await self.sweep()
            except Exception:
                logger.exception("store sweep failed")

    async def _on_heartbeat(self, body: dict[str, Any]) -> None:
        beat = decode(Heartbeat, body)
        if beat.leaving:
            if self.executors.leave(beat.executor_id) is not None:
                logger.info("executor left", extra={"executor_id": beat.executor_id})
                await self._forget(beat.executor_id, "its executor shut down")
            return
        if self.executors.heard(beat):
            logger.info("executor joined", extra={"executor_id": beat.executor_id})
            await self._stop_strays(beat)
        now = time.monotonic()
        for job_id, attempt in beat.running.items():
            if self.placed.holds(job_id, beat.executor_id, attempt):
                self.placed.confirm(job_id, now)
                if job_id in self.cancelling:  # the last order may have been missed
                    await self._stop(job_id, JobStatus.CANCELLED, beat.executor_id, attempt)
        self._wake.set()

    async def _on_events(self, body: dict[str, Any]) -> None:
        batch = decode(JobEvents, body)
        if any(event.job_id != batch.job_id for event in batch.events):
            raise MalformedMessage(f"events of other jobs in a message about job {batch.job_id}")
        applied = await self.ledger.apply_all(batch.events)
        for event, changed in zip(batch.events, applied, strict=True):
            await self._follow_up(event, changed)

    async def _follow_up(self, event: JobEvent, applied: bool) -> None:
        """What the scheduler itself does about an event the ledger has seen."""
        if event.kind is EventKind.RUNNING and not applied and not await self._is_live(event):
            # Cancelled, or placed elsewhere, while this attempt was on its way: stop it.
            await self._stop(event.job_id, JobStatus.CANCELLED, event.executor_id, event.attempt)
        elif event.kind is EventKind.FINISHED:
            placement = self.placed.get(event.job_id)
            held = False
            if applied and placement is not None:
                # Before the place is freed: the dispatch it wakes must see the hold.
                held = self._hold_device(placement)
            self._unplace(event.job_id, event.executor_id, event.attempt)
            if held and placement is not None:
                await self._confirm_hold(placement)
            if event.job_id not in self.placed:
                self.cancelling.discard(event.job_id)
        elif event.kind is EventKind.RELEASED:
            self._unplace(event.job_id, event.executor_id, event.attempt)
            # Also when the release was applied by an earlier delivery of this message.
            job = await self._store.get_job(event.job_id)
            released = job is not None and job.status is JobStatus.QUEUED
            if (
                released
                and job is not None
                and job.executor_id is None
                and job.id not in self.placed
            ):
                self.pending.add(JobSubmitted.of(job))
                self._wake.set()

    async def _stop_strays(self, beat: Heartbeat) -> None:
        """An executor (back) in sight may still run jobs that were taken from it while it was
        out of sight and placed elsewhere: stop those attempts."""
        for job_id, attempt in beat.running.items():
            if self.placed.holds(job_id, beat.executor_id, attempt):
                continue
            job = await self._store.get_job(job_id)
            if job is not None and job.executor_id == beat.executor_id:
                current = job.attempt + (job.status is JobStatus.QUEUED)
                if current == attempt and not job.status.is_final:
                    continue
            where = {"job_id": job_id, "executor_id": beat.executor_id}
            logger.warning("stopping a stray attempt", extra=where)
            await self._stop(job_id, JobStatus.CANCELLED, beat.executor_id, attempt)

    async def _is_live(self, event: JobEvent) -> bool:
        """True if `event` is a repeat from the attempt the job is running now."""
        job = await self._store.get_job(event.job_id)
        return (
            job is not None
            and job.status is JobStatus.RUNNING
            and job.attempt == event.attempt
            and job.executor_id == event.executor_id
        )

    async def _on_cancel(self, body: dict[str, Any]) -> None:
        request = decode(CancelJob, body)
        job = await self._store.get_job(request.job_id)
        if job is None or job.status.is_final:
            return
        if job.status is JobStatus.QUEUED:
            self.pending.remove(job.id)
            if await self.ledger.change_status(job, JobStatus.CANCELLED, "cancelled on request"):
                self.placed.pop(job.id)
                self._wake.set()
                if job.executor_id is not None:
                    await self._stop(job.id, JobStatus.CANCELLED, job.executor_id, job.attempt + 1)
                return
            job = await self._store.get_job(request.job_id) or job
        if job.status is JobStatus.RUNNING and job.id not in self.placed:
            # Running, as far as the store knows, on no executor this scheduler knows of (its
            # end was lost): nothing else would ever end it.
            if job.executor_id is not None:
                await self._stop(job.id, JobStatus.CANCELLED, job.executor_id, job.attempt)
            await self.ledger.change_status(job, JobStatus.CANCELLED, "cancelled on request")
            return
        if job.status is JobStatus.RUNNING and job.executor_id is not None:
            await self.ledger.request_cancel(job)
            self.cancelling.add(job.id)
            await self._stop(job.id, JobStatus.CANCELLED, job.executor_id, job.attempt)

    async def _on_dead_letter(self, body: dict[str, Any]) -> None:
        job_id = body.get("job_id")
        if not isinstance(job_id, str):
            return
        job = await self._store.get_job(job_id)
        if job is None or job.status.is_final:
            return
        reason = f"a message about this job could not be handled: {body.get('_reason')}"
        if job.status is JobStatus.RUNNING and job.executor_id is not None:
            await self._stop(job.id, JobStatus.FAILED, job.executor_id, job.attempt)
        # The job is failed before it is let go: should the store refuse, its placement stays,
        # and the watch over executors ends it later; a job nobody holds would run forever.
        await self.ledger.change_status(job, JobStatus.FAILED, reason)
        self.pending.remove(job.id)
        self.placed.pop(job.id)

    async def _stop(self, job_id: str, status: JobStatus, executor_id: str, attempt: int) -> None:
        order = StopJob(job_id, status, executor_id, attempt)
        await self._bus.publish(CONTROL_TOPIC, encode(order))

    # Placing jobs.

    def _unplace(self, job_id: str, executor_id: str, attempt: int) -> None:
        """Free the job's place, unless the report is about another placement."""
        if self.placed.release(job_id, executor_id, attempt):
            self._wake.set()

    async def _dispatch_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._dispatch()
            except Exception:
                logger.exception("dispatch round failed")
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()

    async def _dispatch(self) -> None:
        """Place every queued job that has somewhere to go.

        Places are taken here, one job after another; recording each placement and sending
        its assignment run concurrently, so one job's store write and broker confirm do not
        hold up the next.
        """
        busy = self.placed.busy(self.executors.exclusive_backends())
        # A dedicated session runs its jobs one at a time, in the order they were submitted:
        # only its oldest waiting job may go, and only while none of its jobs is placed.
        # Which sessions are dedicated, as this round starts (the cache may shrink meanwhile).
        dedicated = {
            session_id
            for session_id, session in self.sessions.items()
            if session is not None and session.mode is SessionMode.DEDICATED
        }
        in_session = {p.session_id for _, p in self.placed.items() if p.session_id in dedicated}
        next_of_session: dict[str, tuple[float, str]] = {}
        for waiting in self.pending:
            session_id = waiting.session_id
            if session_id in dedicated:
                turn = (waiting.created, waiting.job_id)
                next_of_session[session_id] = min(next_of_session.get(session_id, turn), turn)

        now = time.monotonic()
        holds = {b: h.session_id for b, h in self.holds.items() if h.until > now}

        cap = self._settings.instance_max_running_jobs
        running = self.placed.by_instance()

        def in_turn(job: JobSubmitted) -> bool:
            if cap and running[job.instance] >= cap:
                return False
            session_id = job.session_id
            holder = holds.get(job.backend)
            if holder is not None and holder != session_id:
                return False
            if session_id not in dedicated:
                return True
            turn = (job.created, job.job_id)
            # A job queued since the round began has no turn noted: none of its session waited.
            return session_id not in in_session and next_of_session.get(session_id, turn) == turn

        def choose(job: JobSubmitted) -> ExecutorState | None:
            return self.placed.choose(job, self.executors, busy) if in_turn(job) else None

        while (submitted := self.pending.take(lambda j: choose(j) is not None)) is not None:
            executor = choose(submitted)
            assert executor is not None
            self._examined = submitted.job_id
            try:
                job = await self._store.get_job(submitted.job_id)
            except Exception:
                self.pending.add(submitted)  # not placed: it waits for the next round
                raise
            finally:
                self._examined = None
            if job is None or job.status is not JobStatus.QUEUED:
                continue
            placement = Placement(
                executor.id, job.backend, job.attempt + 1, job.session_id, job.instance
            )
            self.placed[job.id] = placement
            running[job.instance] += 1
            if job.session_id in dedicated:
                in_session.add(job.session_id)
                if holds.get(job.backend) == job.session_id:
                    del holds[job.backend]
                    self.holds.pop(job.backend, None)
            if job.backend in executor.exclusive:
                busy.add(job.backend)
            task = asyncio.create_task(self._place(job, placement))
            self._placing.add(task)
            task.add_done_callback(self._placing.discard)

    async def _place(self, job: Job, placement: Placement) -> None:
        """Record `job` as placed, then send it to its executor; give the place back if the
        job moved on meanwhile (cancelled) or the store could not record it."""
        try:
            placed = await self.ledger.assign(job, placement.executor_id)
        except Exception:
            logger.exception("placement not recorded", extra={"job_id": job.id})
            await asyncio.sleep(RETRY_SECONDS)  # not a loop of failing writes
            placed = False
            self.pending.add(JobSubmitted.of(job))
        if not placed:
            if self.placed.get(job.id) is placement:
                self.placed.pop(job.id)
            self._wake.set()
            return
        ASSIGNMENT_WAIT.observe(max(0.0, (utcnow() - job.created).total_seconds()))
        await self._send_assignment(job, placement.executor_id)

    async def _send_assignment(self, job: Job, executor_id: str) -> None:
        # Executors never reach the store: an uploaded program's code travels with its job.
        archive = await self._store.program_archive(job.program_id)
        assignment = Assignment(
            job_id=job.id,
            program_id=job.program_id,
            backend=job.backend,
            params=job.params,
            max_execution_time=job.max_execution_time,
            attempt=job.attempt + 1,
            program_digest=None if archive is None else archive.digest,
            program_archive=None if archive is None else base64.b64encode(archive.data).decode(),
        )
        await send_until_accepted(self._bus, executor_queue(executor_id), encode(assignment))

    # Retention.

    async def _purge_forever(self) -> None:
        while True:
            try:
                await self.purge()
            except Exception:
                logger.exception("retention sweep failed")
            await asyncio.sleep(self._settings.purge_interval)

    async def purge(self) -> int:
        """Remove the jobs and logs older than their retention and forget idempotency keys
        older than theirs; how many jobs went."""
        now = utcnow()
        job_retention, log_retention = self._settings.job_retention, self._settings.log_retention
        purged = await self._store.purge(
            ended_before=now - timedelta(seconds=job_retention) if job_retention else None,
            logs_before=now - timedelta(seconds=log_retention) if log_retention else None,
            keys_before=now - timedelta(seconds=self._settings.idempotency_retention),
        )
        if purged:
            logger.info("finished jobs past their retention removed", extra={"jobs": purged})
        return purged

    # Executors that go silent.

    async def _watch_executors(self) -> None:
        interval = min(1.0, self._settings.heartbeat_timeout / 4)
        while True:
            asleep = time.monotonic()
            await asyncio.sleep(interval)
            if time.monotonic() - asleep > interval + self._settings.heartbeat_timeout / 2:
                # This scheduler itself stood still (frozen, starved of CPU): it heard nothing
                # meanwhile, which says nothing of the executors.
                self._stood_still_until = time.monotonic()
            try:
                await self._reap()
            except Exception:
                logger.exception("executor check failed")

    async def _reap(self) -> None:
        now = time.monotonic()
        # Heartbeats missed while this scheduler was cut off from the broker, or stood still,
        # say nothing.
        heard_from = max(self._bus.connected_since, self._stood_still_until)
        for executor_id in self.executors.silent(now, heard_from, self._settings.heartbeat_timeout):
            self.executors.leave(executor_id)
            logger.warning("executor lost", extra={"executor_id": executor_id})
        if now - self._started_at < self._orphan_grace:
            return
        for job_id, executor_id in self.placed.orphans(self.executors).items():
            await self._reclaim(job_id, f"executor {executor_id} was lost")
        await self._reconcile(now, heard_from)
        await self._review_holds()
        await self._end_expired_sessions()

    async def _reconcile(self, now: float, heard_from: float) -> None:
        """A job placed on a live executor that has not shown up in its heartbeats for a
        while never reached it (say, the scheduler died between placing and sending): send
        the assignment again. The executor ignores an assignment it already holds. Silence
        while this scheduler was cut off or stood still (before `heard_from`) says nothing."""
        for job_id, placement in self.placed.items():
            state = self.executors.get(placement.executor_id)
            if state is None or job_id in state.running:
                continue
            heard_of = max(placement.heard_of, heard_from)
            if now - heard_of < self._settings.heartbeat_timeout:
                continue
            job = await self._store.get_job(job_id)
            if job is None or job.status.is_final:
                self.placed.pop(job_id)
            elif job.status is JobStatus.QUEUED and job.executor_id == placement.executor_id:
                logger.warning("assignment sent again", extra={"job_id": job_id})
                self.placed[job_id] = Placement(
                    placement.executor_id,
                    placement.backend,
                    placement.attempt,
                    placement.session_id,
                    placement.instance,
                )
                await self._send_assignment(job, placement.executor_id)
            elif (
                job.status is JobStatus.RUNNING
                and now - heard_of > 3 * self._settings.heartbeat_timeout
            ):
                # Its executor is alive but has long stopped listing it: the attempt is gone.
                await self._reclaim(job_id, f"executor {placement.executor_id} lost the job")

    async def _forget(self, executor_id: str, why: str) -> None:
        for job_id in self.placed.on(executor_id):
            await self._reclaim(job_id, why)

    async def _reclaim(self, job_id: str, why: str) -> None:
        """Take a job back from an executor that is gone: queue it again, or fail it.

        The placement goes first, so that the executor, should it show up again meanwhile,
        has its attempt stopped as a stray; if the store fails, it is put back for the next
        sweep to try again."""
        placement = self.placed.pop(job_id)
        self._wake.set()
        try:
            job = await self._store.get_job(job_id)
            if job is not None and not job.status.is_final:
                await self._take_back(job, why)
        except Exception:
            if placement is not None:
                self.placed.restore(job_id, placement)
            raise

    async def _take_back(self, job: Job, why: str) -> None:
        if job.status is JobStatus.QUEUED:
            if await self.ledger.assign(job, None):
                self.pending.add(JobSubmitted.of(job))
            return
        if job.cancel_requested:
            self.cancelling.discard(job.id)
            await self.ledger.change_status(job, JobStatus.CANCELLED, "cancelled on request")
            return
        if job.attempt >= self._settings.max_attempts:
            reason = f"{why}; gave up after {job.attempt} attempts"
            await self.ledger.change_status(job, JobStatus.FAILED, reason)
            return
        if await self.ledger.change_status(job, JobStatus.QUEUED, why):
            self.pending.add(JobSubmitted.of(job))
            logger.info("job queued again", extra={"job_id": job.id, "why": why})
