"""The device's side of its worker process: start it when work is coming, hand it one task at
a time, replace it when it dies or runs past the time limit, and end it once it has been idle
for `worker_idle_seconds`.

Native code (libqasm's analyzer, Aer) runs only in the worker, so a circuit that makes it
crash or loop costs that worker alone: the execute gets a failure reply naming the signal or
the rule, the device goes on answering everyone, and a new worker starts at once.

The worker holds Qiskit, Aer, numpy and scipy (about 110 MiB), which a device without work has
no use for: it starts with the first session (`initialize`) or task, not with the device, and
ends after `worker_idle_seconds` without a task. Nothing the device answers needs it but
`execute`, which waits for its start (about 1.5 s of CPU).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import select
import signal
import sys
import time
from collections.abc import Callable

from qrt_common.errors import MalformedMessage

from .config import DeviceConfig
from .worker_protocol import (
    HEADER,
    Answer,
    Failed,
    Noise,
    Outcome,
    Ready,
    Rejected,
    Setup,
    Task,
    frame,
    length_of,
    read_answer,
)

logger = logging.getLogger(__name__)

START_SECONDS = 120.0
"""How long a new worker may take to import and warm up its simulator."""


def describe_exit(code: int) -> str:
    """How a worker ended, for people: the signal that killed it, or its exit code."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"crashed ({name})"
    return f"ended (exit code {code})"


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.dead = False
        # A pidfd turns readable the moment the process ends (before anyone collects it).
        self._pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self._pidfd = os.pidfd_open(process.pid)

    @classmethod
    async def start(cls, setup: Setup) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "qrt_device.worker", str(os.getpid()),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        worker = cls(process)
        try:
            answer = await asyncio.wait_for(worker.ask(setup), START_SECONDS)
            if not isinstance(answer, Ready):
                raise OSError(f"the simulator did not start: {_said(answer)}")
        except BaseException:
            worker.kill()
            with contextlib.suppress(BaseException):
                await worker.ended()
            raise
        logger.info("simulator worker started", extra={"pid": process.pid})
        return worker

    async def ask(self, message: Setup | Task) -> Answer:
        """Send `message` and return the answer; a worker that dies first answers `Failed`
        saying how it ended (and is `dead` from then on)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(frame(message))
            await self.process.stdin.drain()
            header = await self.process.stdout.readexactly(HEADER.size)
            body = await self.process.stdout.readexactly(length_of(header))
            return read_answer(body)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.dead = True
            code = await self.process.wait()
            return Failed(f"the simulator {describe_exit(code)} on this circuit")
        except MalformedMessage as exc:
            self.dead = True
            return Failed(f"the simulator answered something unreadable ({exc})")

    def ended_while_idle(self) -> bool:
        """True if the process ended though it had nothing to do."""
        if self.process.returncode is not None:
            return True
        if self._pidfd is None:
            stdout = self.process.stdout
            return stdout is not None and stdout.at_eof()
        return bool(select.select([self._pidfd], [], [], 0)[0])

    def kill(self) -> None:
        """End the process now (`ended` collects its exit)."""
        self.dead = True
        if self.process.stdin is not None:
            self.process.stdin.close()
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    async def ended(self) -> int:
        """The exit status, once the process ended."""
        try:
            return await self.process.wait()
        finally:
            if self._pidfd is not None:
                os.close(self._pidfd)
                self._pidfd = None


def _said(answer: Answer) -> str:
    if isinstance(answer, Failed):
        return answer.message
    return type(answer).__name__


class Supervisor:
    """Runs the device's tasks in a worker process, one at a time.

    A task gets the worker's `Outcome`; a worker that dies on a task makes it `Failed`
    ("the simulator crashed (SIGSEGV) on this circuit"), one still busy after the time limit
    is killed and the task `Rejected` by rule `max_execute_seconds`. Either way the next task
    runs on a new worker, started right away.
    """

    def __init__(self, config: DeviceConfig, noise: Callable[[], Noise | None]) -> None:
        """`noise()` gives the calibration of the moment, which a new worker warms up with."""
        self._config = config
        self._config_json = config.model_dump_json()
        self._noise = noise
        self._lock = asyncio.Lock()
        self._starting: asyncio.Task[_Worker] | None = None
        self._ending: set[asyncio.Task[int]] = set()
        self._closed = False
        self._tasks = 0
        """Tasks waiting for the worker or running on it: while any does, it is not idle."""
        self._idle_since = time.monotonic()
        self._retiring: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start a worker in the background unless one runs or starts already, so that a task
        about to come need not wait for all of its start (the device calls this on
        `initialize`)."""
        if self._closed:
            return
        self._worker_task()
        self._idle_since = time.monotonic()
        self._retire_later(self._config.worker_idle_seconds)

    def _worker_task(self) -> asyncio.Task[_Worker]:
        if self._starting is None:
            setup = Setup(self._config_json, self._noise())
            self._starting = asyncio.create_task(_Worker.start(setup))
            self._starting.add_done_callback(self._forget_if_failed)
        return self._starting

    def _forget_if_failed(self, starting: asyncio.Task[_Worker]) -> None:
        # A start that failed (say, timed out on a loaded machine) is not the next task's
        # answer: that task tries again.
        if starting.cancelled() or starting is not self._starting:
            return
        if (exc := starting.exception()) is not None:
            self._starting = None
            logger.error("the simulator did not start: %s", exc)

    def _end(self, worker: _Worker) -> None:
        worker.kill()
        ending = asyncio.create_task(worker.ended())
        self._ending.add(ending)
        ending.add_done_callback(self._ending.discard)
        self._starting = None

    def _replace(self, worker: _Worker) -> None:
        self._end(worker)
        if not self._closed:
            self._worker_task()

    def _retire_later(self, delay: float) -> None:
        """Look again in `delay` seconds whether the worker has been idle long enough."""
        if self._retiring is not None:
            self._retiring.cancel()
            self._retiring = None
        if not self._closed and math.isfinite(delay):
            self._retiring = asyncio.get_running_loop().call_later(delay, self._retire_if_idle)

    def _retire_if_idle(self) -> None:
        """End the worker if no task came for `worker_idle_seconds` (a task's end looks again,
        so a busy or starting worker is left alone)."""
        self._retiring = None
        starting = self._starting
        if self._tasks or starting is None or self._closed:
            return
        left = self._idle_since + self._config.worker_idle_seconds - time.monotonic()
        if left > 0 or not starting.done():
            self._retire_later(left if left > 0 else 1.0)  # or once it has started
            return
        self._starting = None
        if starting.cancelled() or starting.exception() is not None:
            return
        worker = starting.result()
        logger.info(
            "simulator worker ended after %g s without work",
            self._config.worker_idle_seconds,
            extra={"pid": worker.process.pid},
        )
        self._end(worker)

    @property
    def pid(self) -> int | None:
        """The process id of the worker that runs (or will run) the next task, if it started."""
        starting = self._starting
        if starting is None or not starting.done() or starting.cancelled():
            return None
        if starting.exception() is not None:
            return None
        return starting.result().process.pid

    @property
    def running(self) -> bool:
        """True while a worker process runs or starts (it is not needed before work comes)."""
        return self._starting is not None

    async def run(self, task: Task, limit: float) -> Outcome:
        """The outcome of `task`, which may take `limit` seconds (not counting a new worker's
        start, which the first task and the first after `worker_idle_seconds` without one
        wait for); never raises for what the worker does."""
        self._tasks += 1
        try:
            return await self._run(task, limit)
        finally:
            self._tasks -= 1
            if not self._tasks:
                self._idle_since = time.monotonic()
                self._retire_later(self._config.worker_idle_seconds)

    async def _run(self, task: Task, limit: float) -> Outcome:
        async with self._lock:
            for _ in range(3):
                starting = self._worker_task()
                try:
                    worker = await asyncio.shield(starting)
                except (OSError, TimeoutError) as exc:
                    if self._starting is starting:
                        self._starting = None
                    return Failed(f"the simulator could not start ({exc})")
                if not worker.ended_while_idle():
                    return await self._run_on(worker, task, limit)
                # It ended while idle (killed from outside): not this task's doing.
                logger.error("simulator worker ended while idle", extra={"pid": worker.process.pid})
                self._replace(worker)
            return Failed("the simulator keeps ending before it gets to work")

    async def _run_on(self, worker: _Worker, task: Task, limit: float) -> Outcome:
        try:
            answer = await asyncio.wait_for(worker.ask(task), limit)
        except TimeoutError:
            self._replace(worker)
            name = self._config.name
            return Rejected(
                "max_execute_seconds",
                0,
                f"parsing and simulating it took longer than {limit:g} s, the most {name} "
                "spends on one execute; the simulation was stopped",
            )
        except BaseException:
            # Cancelled mid-task (the device is closing): its answer must not reach the next.
            self._replace(worker)
            raise
        if isinstance(answer, Ready):
            worker.dead = True
            answer = Failed("the simulator answered out of turn")
        if worker.dead and self._closed:
            return Failed("the device is shutting down")
        if worker.dead:
            logger.error(
                "simulator worker lost: %s",
                answer.message if isinstance(answer, Failed) else answer,
            )
            self._replace(worker)
        return answer

    async def close(self) -> None:
        """Kill the worker, at whatever point it is."""
        self._closed = True
        self._retire_later(math.inf)
        starting, self._starting = self._starting, None
        if starting is not None:
            if not starting.done():
                starting.cancel()
            with contextlib.suppress(BaseException):
                worker = await starting
                worker.kill()
                await worker.ended()
        await asyncio.gather(*self._ending, return_exceptions=True)
