"""The warm pool: job processes forked ahead of time by the zygote, each waiting for one job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from qrt_common.errors import ZygoteGone
from qrt_common.wire import to_json

from .job_protocol import SandboxPolicy
from .process_tree import kill_tree
from .zygote import zygote_environment

logger = logging.getLogger(__name__)

ZYGOTE_START_SECONDS = 120.0


@dataclass(slots=True)
class JobProcess:
    """A process that waits for one job, and the executor's ends of its three sockets."""

    pid: int
    control: socket.socket
    stdout: socket.socket
    stderr: socket.socket
    exited: asyncio.Future[int | None]
    """Resolves to the exit code (negative: the killing signal), or None if it was lost."""
    pidfd: int | None = None
    """A pidfd of the process, opened as it was forked: killing it once it ended (its end
    reported before its exit: `runner`) never reaches a process that took its pid since."""

    def kill(self) -> None:
        """Kill the process and everything it started, in whatever session."""
        kill_tree(self.pid, self.pidfd)

    def exit_code(self) -> int | None:
        """The exit code, or None while the process runs."""
        return self.exited.result() if self.exited.done() else None

    def close(self) -> None:
        for sock in (self.control, self.stdout, self.stderr):
            sock.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


class Zygote:
    """The executor's end of a zygote process (see `qrt_executor.zygote`), which imports the
    modules `preload` names besides its own (QRT_JOB_PRELOAD); its job processes build the
    walls of `policy` (the executor's sandbox) while they wait for a job, and run only jobs
    launched with that policy."""

    def __init__(self, preload: Sequence[str] = (), policy: SandboxPolicy | None = None) -> None:
        self.preload = tuple(preload)
        self.policy = policy
        self._channel: socket.socket | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._forks: deque[asyncio.Future[int]] = deque()
        self._exits: dict[int, asyncio.Future[int | None]] = {}
        self._reader: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def start(self) -> None:
        """Start the zygote and wait until it has imported what job processes need."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # -P: the working directory stays out of sys.path, where the job sandbox would keep it
        # readable (in the images it is /tmp, which would replace the job's own /tmp).
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-P", "-m", "qrt_executor.zygote",
            str(theirs.fileno()), str(os.getpid()), ",".join(self.preload),
            to_json(self.policy).decode() if self.policy is not None else "",
            pass_fds=(theirs.fileno(),), env=zygote_environment(os.environ),
            stdin=asyncio.subprocess.DEVNULL,  # jobs never read the operator's terminal
        )  # fmt: skip
        theirs.close()
        ours.setblocking(False)
        self._channel = ours
        loop = asyncio.get_running_loop()
        ready = await asyncio.wait_for(loop.sock_recv(ours, 64), ZYGOTE_START_SECONDS)
        if ready != b"ready":
            raise ZygoteGone(f"the zygote did not start (said {ready!r})")
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._channel is not None
        loop = asyncio.get_running_loop()
        channel, fd = self._channel, self._channel.fileno()
        ended: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            try:
                while message := channel.recv(256):
                    self._take(message)
            except (BlockingIOError, InterruptedError):
                return  # read all there is; the next message calls again
            except (OSError, ValueError, IndexError):
                logger.exception("lost the zygote's channel")
            if not ended.done():
                ended.set_result(None)

        # One reader for the channel's life: `sock_recv` would add and remove one (two epoll
        # calls and the selector's bookkeeping) for each of a job's two messages.
        loop.add_reader(fd, readable)
        try:
            await ended
        finally:
            loop.remove_reader(fd)
            self._abandon()

    def _take(self, message: bytes) -> None:
        """Act on one message of the zygote: `forked PID` or `exited PID CODE`."""
        kind, pid_text, *rest = message.decode().split()
        pid = int(pid_text)
        if kind == "forked":
            self._exits[pid] = asyncio.get_running_loop().create_future()
            fork = self._forks.popleft()
            if fork.done():  # its fork() was cancelled: no job will ever come to it
                kill_tree(pid)
            else:
                fork.set_result(pid)
        elif kind == "exited" and pid in self._exits:
            self._exits.pop(pid).set_result(int(rest[0]))

    def _abandon(self) -> None:
        # Without the zygote no exit code will come: end the orphans and say so.
        for fork in self._forks:
            if not fork.done():
                fork.set_exception(ZygoteGone("the zygote ended"))
        self._forks.clear()
        for pid, exited in self._exits.items():
            kill_tree(pid)
            if not exited.done():
                exited.set_result(None)
        self._exits.clear()

    async def fork(self) -> JobProcess:
        """A new job process, waiting for its job on the returned control socket."""
        if not self.alive or self._channel is None:
            raise ZygoteGone("the zygote is not running")
        pairs = [socket.socketpair() for _ in range(3)]
        forked: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._forks.append(forked)
        try:
            socket.send_fds(self._channel, [b"fork"], [theirs.fileno() for _, theirs in pairs])
        except OSError as exc:
            self._forks.remove(forked)
            for pair in pairs:
                for sock in pair:
                    sock.close()
            raise ZygoteGone(f"could not reach the zygote: {exc}") from exc
        for _, theirs in pairs:
            theirs.close()
        pid = await forked
        control, stdout, stderr = (ours for ours, _ in pairs)
        pidfd = None
        with contextlib.suppress(OSError):  # a kernel before 5.3: signalled by its pid
            pidfd = os.pidfd_open(pid)
        return JobProcess(pid, control, stdout, stderr, self._exits[pid], pidfd)

    async def close(self) -> None:
        # The reader first, so it stops watching the channel's descriptor before that closes.
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._channel is not None:
            self._channel.close()
        if self._process is not None:
            try:
                await asyncio.wait_for(self._process.wait(), 5)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()


class WarmPool:
    """Keeps `size` job processes forked and waiting; each runs exactly one job. They start
    with the modules `preload` names imported and the walls of sandbox `policy` built (see
    `Zygote`)."""

    def __init__(
        self, size: int, preload: Sequence[str] = (), policy: SandboxPolicy | None = None
    ) -> None:
        self.size = size
        self._zygote = Zygote(preload, policy)
        self._idle: deque[JobProcess] = deque()
        self._refill: asyncio.Task[None] | None = None
        self._restarting = asyncio.Lock()
        self._closed = False

    @property
    def idle(self) -> int:
        """How many processes wait for a job right now."""
        return len(self._idle)

    async def start(self) -> None:
        """Start the zygote (the slow import happens there, once) and fill the pool."""
        await self._zygote.start()
        self._schedule_refill()
        logger.info("warm pool ready", extra={"size": self.size})

    async def _fork(self) -> JobProcess:
        zygote = self._zygote
        try:
            return await zygote.fork()
        except ZygoteGone:
            if self._closed:
                raise
            async with self._restarting:
                if self._zygote is zygote:  # nobody replaced it while we waited
                    logger.error("the zygote ended; starting a new one")
                    await zygote.close()
                    fresh = Zygote(zygote.preload, zygote.policy)
                    await fresh.start()
                    self._zygote = fresh
            return await self._zygote.fork()

    def _schedule_refill(self) -> None:
        if self._closed or (self._refill is not None and not self._refill.done()):
            return
        self._refill = asyncio.create_task(self._fill())

    async def _fill(self) -> None:
        while not self._closed and len(self._idle) < self.size:
            try:
                self._idle.append(await self._fork())
            except Exception:
                logger.exception("could not fork a job process")
                await asyncio.sleep(1)

    async def acquire(self) -> JobProcess:
        """A process ready for a job: a waiting one, or a new fork if none waits."""
        while self._idle:
            proc = self._idle.popleft()
            if not proc.exited.done():
                self._schedule_refill()
                return proc
            proc.close()
        proc = await self._fork()
        self._schedule_refill()
        return proc

    async def close(self) -> None:
        """Stop forking, end the waiting processes and the zygote."""
        self._closed = True
        if self._refill is not None:
            self._refill.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refill
        while self._idle:
            proc = self._idle.popleft()
            proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.exited), 5)
            proc.close()
        await self._zygote.close()
