"""The executor service: takes assignments, runs each in a warm job process, reports events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client.core import GaugeMetricFamily

from qrt_common.backends import SIMULATORS, backend_names
from qrt_common.bus.base import MessageBus, send_until_accepted
from qrt_common.errors import ParamsUndecodable, ProgramNotRunnable
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
    JobEvents,
    StopJob,
    executor_queue,
)
from qrt_common.metrics import JOB_DURATION, GaugeCollector, gauge, program_label, register
from qrt_common.program_limits import job_limits
from qrt_common.programs import Program, ProgramKind
from qrt_common.registry import ProgramRegistry
from qrt_common.settings import Settings
from qrt_common.wire import decode, encode

from . import landlock
from .device_client import DeviceClient, end_session
from .devices import DeviceDirectory, KnownDevice
from .job_protocol import DeviceAccess, JobLimits, Launch, SandboxPolicy
from .locator import LocatedProgram, ProgramLocator
from .markers import PlanQKStdout
from .oneshot import BubblewrapRunner, OneShotInput, OneShotRunner, run_one_shot
from .params import planqk_arguments
from .pool import WarmPool
from .precompile import Precompiler
from .runner import JobOutput, Outcome, run_job

logger = logging.getLogger(__name__)

REMEMBERED = 1024
"""How many stop requests for jobs not (yet) here, and finished attempts, an executor keeps."""

RELEASE = JobStatus.QUEUED
"""The "outcome" of a job this executor hands back unfinished."""


@dataclass(slots=True)
class _Running:
    assignment: Assignment
    stop: asyncio.Future[JobStatus]
    task: asyncio.Task[None]


def _remove(directory: str) -> None:
    """Remove a job's working directory and whatever a program left in it (blocking: an
    rmdir alone takes 0.3 ms, 3 ms at times, so the executor's `cleaner` thread does it)."""
    try:
        os.rmdir(directory)
    except OSError:
        shutil.rmtree(directory, True)


def sandbox_policy(settings: Settings) -> SandboxPolicy:
    """The sandbox every job process of an executor with `settings` runs in."""
    limits = JobLimits(
        memory_bytes=settings.job_max_memory_bytes,
        cpu_seconds=settings.job_max_cpu_seconds,
        processes=settings.job_max_processes,
        open_files=settings.job_max_open_files,
        temp_bytes=settings.job_temp_bytes,
    )
    # Real, resolved once as the executor starts: a job process follows no symbolic link
    # when it puts them back (one a job planted there would lead elsewhere).
    return SandboxPolicy(
        isolate=settings.job_sandbox == "namespaces",
        hidden=tuple(os.path.realpath(path) for path in settings.job_hidden_dirs),
        writable=tuple(os.path.realpath(path) for path in settings.job_writable_dirs),
        limits=limits,
    )


class Executor:
    """Runs the jobs the scheduler assigns to it, up to `capacity` at a time."""

    def __init__(
        self,
        settings: Settings,
        bus: MessageBus,
        registry: ProgramRegistry,
        pool: WarmPool | None = None,
        one_shot: OneShotRunner | None = None,
    ) -> None:
        self.id = settings.executor_id
        self.capacity = settings.executor_capacity
        self.devices = DeviceDirectory(
            settings.device_addresses, settings.device_timeout, on_found=self._announce
        )
        self._settings = settings
        self._bus = bus
        self.programs = ProgramLocator(registry, settings.max_program_bytes)
        self._cleaner = ThreadPoolExecutor(1, thread_name_prefix="qrt-workdirs")
        """Removes finished jobs' working directories, one at a time (`_remove`)."""
        self.sandbox = sandbox_policy(settings)
        # Real, as the job's sandbox takes the paths it puts back (`sandbox.isolate_job`).
        self._job_temp = os.path.realpath(tempfile.gettempdir())
        self.pool = pool or WarmPool(
            settings.warm_pool_size, settings.job_preload_modules, self.sandbox
        )
        self.running: dict[str, _Running] = {}
        self.one_shot = one_shot or BubblewrapRunner(
            hidden=[Path(path) for path in self.sandbox.hidden],
            limits=self.sandbox.limits,
            writable=[Path(path) for path in self.sandbox.writable],
        )
        self._precompiler = (
            Precompiler(self.one_shot) if isinstance(self.one_shot, BubblewrapRunner) else None
        )
        self._stopped: OrderedDict[tuple[str, int], JobStatus] = OrderedDict()
        self._finished: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._heartbeat: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self.draining = False
        self._unregister_metrics: Callable[[], None] = lambda: None
        self._watching: asyncio.Task[None] | None = None

    @property
    def backends(self) -> list[str]:
        """What a job placed here may run on: the simulators and the devices found."""
        return backend_names(self.devices.names())

    async def start(self) -> None:
        """Warm the pool, find the devices, then announce this executor and take assignments."""
        await asyncio.gather(
            self.pool.start(),
            self.devices.start(),
            asyncio.to_thread(self.programs.compile_registered),
        )
        if isinstance(self.one_shot, BubblewrapRunner) and not self.one_shot.available:
            logger.warning("bubblewrap (bwrap) is not installed: one-shot programs will fail")
        if (unscoped := landlock.unavailable_reason()) is not None:
            logger.warning(unscoped, extra={"landlock_abi": landlock.abi()})
        await self._bus.subscribe(CONTROL_TOPIC, self._on_control)
        await self._bus.consume(
            executor_queue(self.id), self._on_assignment, prefetch=self.capacity
        )
        await self.beat()
        self._heartbeat = asyncio.create_task(self._beat_forever())
        self._unregister_metrics = register(GaugeCollector(self._gauges))
        if self._settings.device_addresses:
            interval = self._settings.device_metrics_interval
            self._watching = asyncio.create_task(self.devices.watch(interval))
        logger.info("executor ready", extra={"executor_id": self.id, "capacity": self.capacity})

    def _gauges(self) -> list[GaugeMetricFamily]:
        return [
            gauge("qrt_executor_running_jobs", "Jobs running on this executor.", len(self.running)),
            gauge("qrt_executor_capacity", "Jobs this executor runs at once.", self.capacity),
            gauge("qrt_executor_warm_pool_size", "Job processes forked and waiting.",
                  self.pool.idle),
            *self.devices.gauges(),
        ]  # fmt: skip

    async def beat(self, *, leaving: bool = False) -> None:
        """Tell the scheduler this executor is alive and what it runs."""
        heartbeat = Heartbeat(
            executor_id=self.id,
            capacity=self.capacity,
            backends=self.backends,
            running={job_id: e.assignment.attempt for job_id, e in self.running.items()},
            exclusive_backends=self.devices.names(),
            devices=self.devices.reports(),
            draining=self.draining,
            leaving=leaving,
        )
        await self._bus.publish(HEARTBEAT_TOPIC, encode(heartbeat))

    async def _announce(self) -> None:
        with contextlib.suppress(Exception):
            await self.beat()

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(self._settings.heartbeat_interval)
            try:
                await self.beat()
            except Exception as exc:
                logger.warning("heartbeat not sent: %s", exc)

    async def _send(self, events: list[JobEvent]) -> None:
        batch = JobEvents(events[0].job_id, events)
        await send_until_accepted(self._bus, EVENTS_QUEUE, encode(batch))

    async def _on_assignment(self, body: dict[str, Any]) -> None:
        """Run one assignment to its end; the bus acknowledges it only then."""
        assignment = decode(Assignment, body)
        attempt = (assignment.job_id, assignment.attempt)
        while (earlier := self.running.get(assignment.job_id)) is not None and (
            earlier.assignment.attempt < assignment.attempt
        ):
            # The scheduler took the job back from this executor (it had lost sight of it) and
            # gives it a new attempt here: the stray one ends first.
            if not earlier.stop.done():
                earlier.stop.set_result(JobStatus.CANCELLED)
            await asyncio.shield(earlier.task)
        if assignment.job_id in self.running or attempt in self._finished:
            return  # a repeated assignment: this one is (or was) run here already
        stop: asyncio.Future[JobStatus] = asyncio.get_running_loop().create_future()
        remembered = self._stopped.pop(attempt, None)
        if remembered is not None:
            stop.set_result(remembered)
        elif self.draining:
            stop.set_result(RELEASE)
        # The job belongs to the executor, not to the bus's handler task: a broker connection
        # lost mid-job cancels the handler (the assignment comes again and is recognised as
        # running here), never the job.
        task = asyncio.create_task(self._own(assignment, stop))
        self.running[assignment.job_id] = _Running(assignment, stop, task)
        self._idle.clear()
        await asyncio.shield(task)

    async def _own(self, assignment: Assignment, stop: asyncio.Future[JobStatus]) -> None:
        try:
            with job_context(assignment.job_id):
                await self._run(assignment, stop)
        finally:
            self.running.pop(assignment.job_id, None)
            self._finished[(assignment.job_id, assignment.attempt)] = None
            while len(self._finished) > REMEMBERED:
                self._finished.popitem(last=False)
            if not self.running:
                self._idle.set()

    async def _on_control(self, body: dict[str, Any]) -> None:
        order = decode(StopJob, body)
        if order.executor_id != self.id:
            return
        entry = self.running.get(order.job_id)
        if entry is None or entry.assignment.attempt != order.attempt:
            # The assignment may still be on its way: remember the order for it.
            self._stopped[(order.job_id, order.attempt)] = order.status
            while len(self._stopped) > REMEMBERED:
                self._stopped.popitem(last=False)
        elif not entry.stop.done():
            entry.stop.set_result(order.status)

    async def _run(self, assignment: Assignment, stop: asyncio.Future[JobStatus]) -> None:
        output = JobOutput(
            assignment.job_id,
            assignment.attempt,
            self.id,
            self._send,
            max_log_bytes=self._settings.max_log_bytes,
            max_interims_bytes=self._settings.max_interims_bytes,
        )
        started = time.monotonic()
        # What can wait until the job's end is reported (its working directory's removal).
        async with contextlib.AsyncExitStack() as afterwards:
            try:
                outcome = await self._attempt(assignment, output, stop, afterwards)
            except asyncio.CancelledError:
                # Shutting down at once: the job stays placed here, and the scheduler runs it
                # again once this executor is known to be gone.
                await output.close()
                raise
            except Exception as exc:
                logger.exception("job attempt broke down")
                outcome = Outcome(JobStatus.FAILED, f"executor error: {exc}")
            program = program_label(assignment.program_id, assignment.program_digest)
            JOB_DURATION.labels(program, outcome.status.value).observe(time.monotonic() - started)
            if outcome.status is RELEASE:
                output.event(EventKind.RELEASED, reason=f"handed back by executor {self.id}")
            else:
                output.event(EventKind.FINISHED, status=outcome.status, reason=outcome.reason)
            await output.close()
            logger.info("job ended here", extra={"status": outcome.status.value})

    async def _attempt(
        self,
        assignment: Assignment,
        output: JobOutput,
        stop: asyncio.Future[JobStatus],
        afterwards: contextlib.AsyncExitStack,
    ) -> Outcome:
        """Run one attempt of `assignment` and return how it ended; what can wait until that
        is reported goes on `afterwards`."""
        if stop.done():
            return Outcome(stop.result(), "cancelled on request")
        in_use = {entry.assignment.program_digest or "" for entry in self.running.values()}
        if self._precompiler is not None:
            in_use |= self._precompiler.compiling
        try:
            located = await self.programs.locate(assignment, in_use)
        except ProgramNotRunnable as exc:
            return Outcome(JobStatus.FAILED, str(exc))
        program = located.program
        if located.compile_now and self._precompiler is not None:
            self._precompiler.later(located.search_path, assignment.program_digest or "")
        sandbox = self._sandbox_of(program, output)
        device = self.devices.get(assignment.backend)
        if device is None and assignment.backend not in SIMULATORS:
            return Outcome(
                JobStatus.FAILED, f"backend {assignment.backend!r} is not offered by {self.id}"
            )
        if program.kind is ProgramKind.ONE_SHOT:
            limits = None if sandbox is self.sandbox else sandbox.limits
            return await self._one_shot(assignment, located, output, stop, limits)
        proc = await self.pool.acquire()
        self._started(assignment, output)
        # One mkdir: less than a thread hop.
        workdir = tempfile.mkdtemp(prefix="qrt-job-", dir=self._job_temp)
        # After the end is reported, off the event loop, which streams the end to clients.
        afterwards.callback(self._cleaner.submit, _remove, workdir)
        session_id = str(uuid.uuid4())
        access = None
        if device is not None:
            access = DeviceAccess(
                address=device.address,
                static=device.static,
                timeout=self._settings.device_timeout,
                execute_timeout=self._settings.device_execute_timeout,
                session_id=session_id,
            )
        launch = Launch(
            job_id=assignment.job_id,
            kind=program.kind,
            module=program.module,
            search_path=located.search_path,
            project_dir=located.project_dir,
            backend=assignment.backend,
            params=assignment.params,
            workdir=workdir,
            device=access,
            limits=self._settings.result_limits,
            sandbox=sandbox,
            simulator_qubits=self._settings.simulator_qubits,
        )
        on_stdout = None
        if program.kind is ProgramKind.PYTHON_TEMPLATE:
            markers = PlanQKStdout(output, takes_result=False, limits=launch.limits)
            on_stdout = markers.line
        try:
            return await run_job(
                proc,
                launch,
                output,
                time_limit=assignment.max_execution_time,
                stop=stop,
                on_stdout=on_stdout,
            )
        finally:
            if proc.exit_code() is None:
                proc.kill()
            proc.close()
            if device is not None:
                # A job killed mid-session (cancel, timeout) leaves the device locked until
                # its lease runs out: end the session for it.
                await asyncio.to_thread(self._release, device, session_id)

    def _sandbox_of(self, program: Program, output: JobOutput) -> SandboxPolicy:
        """The sandbox of a job of `program`: this executor's, with the limits the program
        declares (`qrt_common.program_limits`, within this executor's ceilings); bounds
        `output`'s log the same way."""
        if not program.limits:
            return self.sandbox
        values, sources = job_limits(program.limits, self._settings)
        declared = {name: sources[name] for name in program.limits if name in sources}
        limits = JobLimits(
            memory_bytes=values["memory_bytes"],
            cpu_seconds=values["cpu_seconds"],
            processes=values["processes"],
            open_files=values["open_files"],
            temp_bytes=values["temp_bytes"],
            set_by=declared,
        )
        output.limit_log(values["log_bytes"], sources["log_bytes"])
        return msgspec.structs.replace(self.sandbox, limits=limits)

    async def _one_shot(
        self,
        assignment: Assignment,
        located: LocatedProgram,
        output: JobOutput,
        stop: asyncio.Future[JobStatus],
        limits: JobLimits | None = None,
    ) -> Outcome:
        self._started(assignment, output)
        try:
            data, params = planqk_arguments(assignment.params)
        except ParamsUndecodable as exc:
            output.log(f"[qrt] {exc}")
            return Outcome(JobStatus.FAILED, str(exc))
        inputs = OneShotInput(
            assignment.job_id, assignment.backend, json.dumps(data), json.dumps(params), limits
        )
        return await run_one_shot(
            self.one_shot,
            located.program.command,
            located.project_dir,
            inputs,
            output,
            time_limit=assignment.max_execution_time,
            stop=stop,
            limits=self._settings.result_limits,
        )

    def _started(self, assignment: Assignment, output: JobOutput) -> None:
        output.event(EventKind.RUNNING)
        if assignment.attempt > 1:
            output.log(f"[qrt] attempt {assignment.attempt} on executor {self.id}")

    def _release(self, device: KnownDevice, session_id: str) -> None:
        client = DeviceClient(device.address, timeout=self._settings.device_timeout)
        try:
            end_session(client, session_id)
        finally:
            client.close()

    async def drain(self, seconds: float) -> None:
        """Take no new job, let running ones finish for up to `seconds`, hand back the rest."""
        self.draining = True
        with contextlib.suppress(Exception):
            await self.beat()
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            for entry in list(self.running.values()):
                if not entry.stop.done():
                    entry.stop.set_result(RELEASE)
            await self._idle.wait()

    async def close(self) -> None:
        """Stop now: kill whatever still runs without reporting an outcome (the scheduler
        runs those jobs again elsewhere), say goodbye, close the pool."""
        self._unregister_metrics()
        if self._watching is not None:
            self._watching.cancel()
        self.draining = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        tasks = [entry.task for entry in self.running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.beat(leaving=True)
        await self.devices.close()
        await self.pool.close()
        if self._precompiler is not None:
            await self._precompiler.close()
        await asyncio.to_thread(self._cleaner.shutdown)
        self.programs.close()
