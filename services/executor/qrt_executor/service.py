"""The executor service: takes assignments, runs each in a warm job process, reports events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from qrt_common.backends import SIMULATORS
from qrt_common.bus import MessageBus
from qrt_common.jobs import JobStatus
from qrt_common.logs import job_context
from qrt_common.messages import (
    CONTROL_TOPIC,
    EVENTS_QUEUE,
    HEARTBEAT_TOPIC,
    Assignment,
    EventKind,
    Heartbeat,
    JobEvent,
    StopJob,
    decode,
    encode,
    executor_queue,
)
from qrt_common.registry import ProgramRegistry
from qrt_common.settings import Settings

from .pool import WarmPool
from .runner import JobOutput, Outcome, run_job

logger = logging.getLogger(__name__)

REMEMBERED_STOPS = 1024
"""How many stop requests for jobs not (yet) here an executor remembers."""


@dataclass(slots=True)
class _Running:
    assignment: Assignment
    stop: asyncio.Future[JobStatus]
    task: asyncio.Task[None] | None = field(default=None)


class Executor:
    """Runs the jobs the scheduler assigns to it, up to `capacity` at a time."""

    def __init__(
        self,
        settings: Settings,
        bus: MessageBus,
        registry: ProgramRegistry,
        pool: WarmPool | None = None,
    ) -> None:
        self.id = settings.executor_id
        self.capacity = settings.executor_capacity
        self.backends = sorted(SIMULATORS)
        self._settings = settings
        self._bus = bus
        self._registry = registry
        self.pool = pool or WarmPool(settings.warm_pool_size)
        self.running: dict[str, _Running] = {}
        self._stopped: OrderedDict[str, str] = OrderedDict()
        self._heartbeat: asyncio.Task[None] | None = None
        self.draining = False

    async def start(self) -> None:
        """Warm the pool, then announce this executor and take assignments."""
        await self.pool.start()
        await self._bus.subscribe(CONTROL_TOPIC, self._on_control)
        await self._bus.consume(
            executor_queue(self.id), self._on_assignment, prefetch=self.capacity
        )
        await self.beat()
        self._heartbeat = asyncio.create_task(self._beat_forever())
        logger.info("executor ready", extra={"executor_id": self.id, "capacity": self.capacity})

    async def beat(self) -> None:
        """Tell the scheduler this executor is alive and what it runs."""
        heartbeat = Heartbeat(
            executor_id=self.id,
            capacity=self.capacity,
            backends=self.backends,
            running=sorted(self.running),
            draining=self.draining,
        )
        await self._bus.publish(HEARTBEAT_TOPIC, encode(heartbeat))

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat_interval)
            try:
                await self.beat()
            except Exception:
                logger.exception("heartbeat not sent")

    async def _send(self, event: JobEvent) -> None:
        await self._bus.send(EVENTS_QUEUE, encode(event))

    async def _on_assignment(self, body: dict[str, Any]) -> None:
        assignment = decode(Assignment, body)
        if assignment.job_id in self.running:
            return
        stop: asyncio.Future[JobStatus] = asyncio.get_running_loop().create_future()
        remembered = self._stopped.pop(assignment.job_id, None)
        if remembered is not None:
            stop.set_result(JobStatus(remembered))
        entry = _Running(assignment, stop)
        self.running[assignment.job_id] = entry
        entry.task = asyncio.create_task(self._run(entry))

    async def _on_control(self, body: dict[str, Any]) -> None:
        order = decode(StopJob, body)
        entry = self.running.get(order.job_id)
        if entry is None:
            self._stopped[order.job_id] = order.status
            while len(self._stopped) > REMEMBERED_STOPS:
                self._stopped.popitem(last=False)
        elif not entry.stop.done():
            entry.stop.set_result(JobStatus(order.status))

    async def _run(self, entry: _Running) -> None:
        assignment = entry.assignment
        with job_context(assignment.job_id):
            output = JobOutput(
                assignment.job_id,
                assignment.attempt,
                self.id,
                self._send,
                max_log_bytes=self._settings.max_log_bytes,
            )
            try:
                outcome = await self._attempt(assignment, output, entry.stop)
            except asyncio.CancelledError:
                # The executor is shutting down: the job stays Running in the store and the
                # scheduler hands it to another attempt once this executor is known to be gone.
                await output.close()
                self.running.pop(assignment.job_id, None)
                raise
            except Exception as exc:
                logger.exception("job attempt broke down")
                outcome = Outcome(JobStatus.FAILED, f"executor error: {exc}")
            output.event(EventKind.FINISHED, status=outcome.status.value, reason=outcome.reason)
            await output.close()
            self.running.pop(assignment.job_id, None)
            logger.info("job finished", extra={"status": outcome.status.value})

    async def _attempt(
        self, assignment: Assignment, output: JobOutput, stop: asyncio.Future[JobStatus]
    ) -> Outcome:
        if stop.done():
            return Outcome(stop.result(), "cancelled on request")
        program = self._registry.get(assignment.program_id)
        if program is None:
            return Outcome(
                JobStatus.FAILED, f"program {assignment.program_id!r} is no longer registered"
            )
        proc = await self.pool.acquire()
        output.event(EventKind.RUNNING)
        if assignment.attempt > 1:
            output.log(f"[qrt] attempt {assignment.attempt} on executor {self.id}")
        workdir = await asyncio.to_thread(tempfile.mkdtemp, prefix="qrt-job-")
        spec = {
            "job_id": assignment.job_id,
            "module": program.module,
            "programs_dir": self._registry.search_path,
            "backend": assignment.backend,
            "params": assignment.params,
            "workdir": workdir,
        }
        try:
            return await run_job(
                proc, spec, output, time_limit=assignment.max_execution_time, stop=stop
            )
        finally:
            if proc.exit_code() is None:
                proc.kill()
            proc.close()
            await asyncio.to_thread(shutil.rmtree, workdir, True)

    async def close(self) -> None:
        """Stop at once: kill running job processes without reporting them, close the pool.

        The jobs stay Running in the store; the scheduler runs them again elsewhere.
        """
        self.draining = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        tasks = [e.task for e in self.running.values() if e.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.pool.close()
