"""The warm pool: job processes forked ahead of time from a server that has qiskit loaded."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
from collections import deque
from dataclasses import dataclass
from multiprocessing.process import BaseProcess

from . import child

logger = logging.getLogger(__name__)

PRELOAD = ["qrt_executor.child", "qiskit", "qiskit_aer", "qiskit_ibm_runtime"]
"""Modules the fork server imports once, so job processes start with them loaded."""


@dataclass(slots=True)
class JobProcess:
    """A process that waits for one job, and the executor's ends of its three sockets."""

    process: BaseProcess
    control: socket.socket
    stdout: socket.socket
    stderr: socket.socket

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def is_alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        """Kill the process and everything it started."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def exit_code(self) -> int | None:
        """The exit code (negative: killed by that signal), or None while it runs."""
        return self.process.exitcode

    def close(self) -> None:
        for sock in (self.control, self.stdout, self.stderr):
            sock.close()
        with contextlib.suppress(ValueError):
            self.process.close()


class WarmPool:
    """Keeps `size` job processes forked and waiting; each runs exactly one job."""

    def __init__(self, size: int, preload: list[str] | None = None) -> None:
        self.size = size
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(PRELOAD if preload is None else preload)
        self._idle: deque[JobProcess] = deque()
        self._refill: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def idle(self) -> int:
        """How many processes wait for a job right now."""
        return len(self._idle)

    def _fork(self) -> JobProcess:
        pairs = [socket.socketpair() for _ in range(3)]
        process = self._context.Process(
            target=child.serve, args=tuple(theirs for _, theirs in pairs), daemon=False
        )
        process.start()
        for _, theirs in pairs:
            theirs.close()
        control, stdout, stderr = (ours for ours, _ in pairs)
        return JobProcess(process, control, stdout, stderr)

    async def start(self) -> None:
        """Start the fork server (the slow import happens here, once) and fill the pool."""
        await asyncio.to_thread(self._fork_and_keep)
        self._schedule_refill()
        logger.info("warm pool ready", extra={"size": self.size})

    def _fork_and_keep(self) -> None:
        self._idle.append(self._fork())

    def _schedule_refill(self) -> None:
        if self._closed or (self._refill is not None and not self._refill.done()):
            return
        self._refill = asyncio.create_task(self._fill())

    async def _fill(self) -> None:
        while not self._closed and len(self._idle) < self.size:
            try:
                await asyncio.to_thread(self._fork_and_keep)
            except Exception:
                logger.exception("could not fork a job process")
                await asyncio.sleep(1)

    async def acquire(self) -> JobProcess:
        """A process ready for a job: a waiting one, or a new fork if none waits."""
        while self._idle:
            proc = self._idle.popleft()
            if proc.is_alive():
                self._schedule_refill()
                return proc
            proc.close()
        proc = await asyncio.to_thread(self._fork)
        self._schedule_refill()
        return proc

    async def close(self) -> None:
        """Stop forking and end the waiting processes."""
        self._closed = True
        if self._refill is not None:
            self._refill.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refill
        while self._idle:
            proc = self._idle.popleft()
            proc.kill()
            await asyncio.to_thread(proc.process.join, 5)
            proc.close()
