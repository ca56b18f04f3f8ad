"""Running one job attempt in a job process: its output becomes job events, in order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from qrt_common.backends import MAX_SHOTS
from qrt_common.device_protocol import Command
from qrt_common.errors import DeviceRefused, DeviceUnavailable, MalformedMessage
from qrt_common.jobs import JobStatus
from qrt_common.messages import EventKind, JobEvent
from qrt_common.metrics import CIRCUITS, SHOTS
from qrt_common.results import DEFAULT_MAX_INTERIMS_BYTES, refusal, text_bytes
from qrt_common.timeline import Stage
from qrt_common.wire import from_json, to_json

from .device_client import DeviceClient
from .job_protocol import (
    DeviceAccess,
    DeviceAnswer,
    DeviceCall,
    Exit,
    Failure,
    Final,
    Frame,
    Interim,
    Launch,
    Usage,
)
from .pool import JobProcess
from .sandbox import signal_reason

logger = logging.getLogger(__name__)

LOG_FLUSH_SECONDS = 0.05
EVENT_LINGER_SECONDS = 0.02
"""How long an event waits for others to share its message; the end of an attempt goes at once.
A short job's start, log, result and end then make one message instead of several, for each
of which the broker, the scheduler and every gateway pay."""
LOG_CHUNK_BYTES = 64 * 1024
MAX_LINE_BYTES = 1024 * 1024
DRAIN_SECONDS = 2.0
"""How long output may still arrive after the process exited before the rest is dropped."""

CLOSE_SECONDS = 0.1
"""How long a job process that said it exits at its time limit has to close its sockets."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a job attempt ended."""

    status: JobStatus
    reason: str | None = None


class JobOutput:
    """Turns a job attempt's output into numbered events and sends them in order.

    Log lines are batched into chunks (every 50 ms or 64 KiB) so a chatty program costs
    a few messages a second, not one per line. Events go in batches: one send is under way
    at a time, and a batch waits up to EVENT_LINGER_SECONDS for more events unless the attempt
    ended.
    """

    def __init__(
        self,
        job_id: str,
        attempt: int,
        executor_id: str,
        send: Callable[[list[JobEvent]], Awaitable[None]],
        *,
        max_log_bytes: int,
        max_interims_bytes: int = DEFAULT_MAX_INTERIMS_BYTES,
    ) -> None:
        self.job_id, self.attempt, self.executor_id = job_id, attempt, executor_id
        self._send = send
        self._max_log_bytes = max_log_bytes
        self._log_limit_set_by = "QRT_MAX_LOG_BYTES"
        self._max_interims_bytes = max_interims_bytes
        self._interims_bytes = 0
        self._interims_dropped = False
        self._outbox: asyncio.Queue[JobEvent | None] = asyncio.Queue()
        self._ended = asyncio.Event()
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._log_bytes = 0
        self._truncated = False
        self._seq = {EventKind.LOG: 0, EventKind.INTERIM: 0}
        self._timer: asyncio.TimerHandle | None = None
        self.overflowed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Resolves when the log reached `max_log_bytes`: the job must end."""
        self._drainer = asyncio.create_task(self._drain())

    @property
    def overflow_reason(self) -> str:
        """Why a job whose log overflowed failed."""
        return f"log output limit reached: {self._max_log_bytes} bytes ({self._log_limit_set_by})"

    def limit_log(self, max_bytes: int, set_by: str) -> None:
        """Bound the log at `max_bytes` instead (a program's own limit), which `set_by` set
        (named when the job fails of it); before anything was logged."""
        self._max_log_bytes, self._log_limit_set_by = max_bytes, set_by

    def log(self, line: str, *, counted: bool = True) -> None:
        """Add one line of output to the job's log; unless `counted`, its bytes do not count
        against the log's limit (an echo of what another limit bounds)."""
        if self._truncated:
            return
        size = len(line.encode()) + 1
        if counted:
            if self._log_bytes + size > self._max_log_bytes:
                self._truncated = True
                line, size = f"[qrt] log truncated at {self._max_log_bytes} bytes", 0
                if not self.overflowed.done():
                    self.overflowed.set_result(None)
            self._log_bytes += size
        self._pending.append(line + "\n")
        self._pending_bytes += size
        if self._pending_bytes >= LOG_CHUNK_BYTES:
            self._flush_log()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(LOG_FLUSH_SECONDS, self._flush_log)

    def would_overflow(self, line: str) -> bool:
        """Whether logging `line` counted would go past the log's limit."""
        if self._truncated or self._log_bytes + 4 * len(line) + 1 <= self._max_log_bytes:
            return False  # no character takes more than 4 bytes: the line is not encoded
        return self._log_bytes + len(line.encode()) + 1 > self._max_log_bytes

    def uncount(self, line: str) -> None:
        """Take a logged line's bytes off the log's count (it echoed what another limit
        bounds)."""
        if not self._truncated:
            self._log_bytes -= len(line.encode()) + 1

    @property
    def interims_dropped(self) -> bool:
        """Whether this attempt's interim results reached QRT_MAX_INTERIMS_BYTES."""
        return self._interims_dropped

    def interim(self, data: str) -> bool:
        """Queue an interim result (JSON text already held to the rules of `results.py`),
        unless the attempt's interim results reached QRT_MAX_INTERIMS_BYTES: then it and
        every later one are dropped, with a note in the log. Whether it was kept."""
        if self._interims_dropped:
            return False
        self._interims_bytes += text_bytes(data)
        if self._interims_bytes > self._max_interims_bytes:
            self._interims_dropped = True
            self.log(
                f"[qrt] later interim results dropped: this attempt's reached "
                f"QRT_MAX_INTERIMS_BYTES ({self._max_interims_bytes} bytes)"
            )
            return False
        self.event(EventKind.INTERIM, data=data)
        return True

    def _flush_log(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            self._put(EventKind.LOG, data="".join(self._pending))
            self._pending.clear()
            self._pending_bytes = 0

    def _put(self, kind: EventKind, **fields: Any) -> None:
        seq = self._seq.get(kind, 0)
        if kind in self._seq:
            self._seq[kind] += 1
        event = JobEvent(
            job_id=self.job_id,
            kind=kind,
            attempt=self.attempt,
            executor_id=self.executor_id,
            seq=seq,
            **fields,
        )
        self._outbox.put_nowait(event)
        if kind in (EventKind.FINISHED, EventKind.RELEASED):
            self._ended.set()

    def event(self, kind: EventKind, **fields: Any) -> None:
        """Queue an event after all the log written before it."""
        self._flush_log()
        self._put(kind, **fields)

    async def _drain(self) -> None:
        closed = False
        while not closed and (first := await self._outbox.get()) is not None:
            if not self._ended.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ended.wait(), EVENT_LINGER_SECONDS)
            batch = [first]
            while not self._outbox.empty():
                event = self._outbox.get_nowait()
                if event is None:
                    closed = True
                    break
                batch.append(event)
            try:
                await self._send(batch)
            except Exception:
                kinds = ", ".join(event.kind for event in batch)
                logger.exception("lost events (%s) of job %s", kinds, self.job_id)

    async def close(self) -> None:
        """Send everything queued, then stop."""
        self._flush_log()
        self._outbox.put_nowait(None)
        self._ended.set()
        await self._drainer


class LineSplitter:
    """Cuts a byte stream into lines (without their newlines); a line longer than `max_line`
    bytes comes in pieces. A long line's chunks are joined once, when it ends."""

    def __init__(self, max_line: int | None) -> None:
        self._max_line = max_line
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[str]:
        """The lines `chunk` completes."""
        lines: list[str] = []
        if b"\n" in chunk:
            first, *rest, last = chunk.split(b"\n")
            self._parts.append(first)
            lines.append(b"".join(self._parts).decode("utf-8", "replace"))
            lines.extend(line.decode("utf-8", "replace") for line in rest)
            self._parts, self._size = [last] if last else [], len(last)
        elif chunk:
            self._parts.append(chunk)
            self._size += len(chunk)
        if self._max_line is not None and self._size > self._max_line:
            # An endless line is cut into pieces rather than held in memory.
            lines.extend(self.finish())
        return lines

    def finish(self) -> list[str]:
        """The unfinished line, if any: the stream ended."""
        rest = b"".join(self._parts)
        self._parts, self._size = [], 0
        return [rest.decode("utf-8", "replace")] if rest else []


async def output_lines(reader: asyncio.StreamReader, max_line: int | None) -> AsyncIterator[str]:
    """The lines `reader` delivers, without their newlines; a line longer than `max_line`
    bytes comes in pieces."""
    splitter = LineSplitter(max_line)
    while True:
        try:
            chunk = await reader.read(65536)
        except ConnectionError:
            # A killed process may reset its end of the socket: that is the end of its output.
            chunk = b""
        if not chunk:
            break
        for line in splitter.feed(chunk):
            yield line
    for line in splitter.finish():
        yield line


class Pace:
    """How much a job's three sockets together deliver: RATE a second after the first BURST,
    counted in lines, each BYTES_A_LINE bytes of them counting as one line more (a frame of 1
    MiB is read as JSON whole: `qrt_common.results`). Past that the executor stops reading
    them until the budget has refilled, so the job's writes block (it waits) instead of the
    event loop, which the executor's other jobs share, and under `qrt dev` the API too: four
    jobs sending usage frames as fast as they could held `qrt dev` at 100% of a core, and
    another user's `GET /jobs` took 180-500 ms instead of 2. Once the job process ended, what
    it left in its sockets is read without a pause (`finish`)."""

    RATE = 5000.0
    BURST = 50000.0
    BYTES_A_LINE = 400

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tokens = self.BURST
        self._stamp = self._loop.time()
        self._paused = False
        self._finished = False
        self.readers: list[_SocketLines] = []

    def spend(self, lines: int, size: int) -> None:
        """`lines` of `size` bytes in all were taken; pause the readers while the budget is
        spent."""
        if self._finished or not size:
            return
        now = self._loop.time()
        cost = lines + size / self.BYTES_A_LINE
        self._tokens = min(self.BURST, self._tokens + (now - self._stamp) * self.RATE) - cost
        self._stamp = now
        if self._tokens < 0 and not self._paused:
            self._paused = True
            for reader in self.readers:
                reader.pause()
            self._loop.call_later(-self._tokens / self.RATE, self._resume)

    def finish(self) -> None:
        """No more pauses: the job process ended."""
        self._finished = True
        self._resume()

    def _resume(self) -> None:
        if self._paused:
            self._paused = False
            for reader in self.readers:
                reader.resume()


class _SocketLines:
    """Hands each line a job process writes to one of its sockets to `take`, straight from the
    event loop's reader callback (no stream, transport or task per socket: a job has three),
    at the `pace` of its job. `ended` resolves at the end of the output."""

    def __init__(
        self, sock: socket.socket, take: Callable[[str], None], max_line: int | None, pace: Pace
    ) -> None:
        self._sock = sock
        self._take = take
        self._splitter = LineSplitter(max_line)
        self._loop = asyncio.get_running_loop()
        self._pace = pace
        pace.readers.append(self)
        self.ended: asyncio.Future[None] = self._loop.create_future()
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._readable)

    def pause(self) -> None:
        """Stop reading until `resume`."""
        if not self.ended.done():
            self._loop.remove_reader(self._sock.fileno())

    def resume(self) -> None:
        if not self.ended.done():
            self._loop.add_reader(self._sock.fileno(), self._readable)

    def pull(self) -> None:
        """Take every line already written to the socket now, not when the event loop next
        gets to it."""
        while not self.ended.done() and self._readable():
            pass

    def _readable(self) -> bool:
        """Take what the socket holds (one read); whether there was anything."""
        try:
            chunk = self._sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            # A killed process may reset its end of the socket: that is the end of its output.
            chunk = b""
        lines = self._splitter.feed(chunk) if chunk else self._splitter.finish()
        try:
            for line in lines:
                self._take(line)
        finally:
            if not chunk:
                self.stop()
        self._pace.spend(len(lines), len(chunk))
        return bool(chunk)

    def stop(self) -> None:
        """Stop reading (at the end of the output, or when no more is wanted)."""
        if not self.ended.done():
            self._loop.remove_reader(self._sock.fileno())
            self.ended.set_result(None)


class Echoes:
    """Tells a job process's echo of an interim result it published from the rest of its
    stdout, so that the echo counts against QRT_MAX_INTERIMS_BYTES only, never the log's limit;
    likewise the echo of its final result, which counts against the result's limit only.

    `UserMessenger.publish` sends the interim frame, then prints its text (the log shows every
    published message, as in Qiskit Runtime): the echo stays on stdout, in order with what the
    program prints. A stdout line that is the text of the oldest interim frame not yet echoed
    is its echo: logged without counting when the interim was kept, dropped with it when it
    was not. The frame was written before the line, so before a line is judged the frames
    already written are taken (`pull`). At most MAX_PENDING frames wait for their echo, and a
    line is looked for among the first LOOK_AHEAD (a frame sent without `publish` has none);
    only the echo of a kept interim goes uncounted, once per interim, so the log stays within
    its limit plus QRT_MAX_INTERIMS_BYTES.

    The final result is printed before its frame is sent, so its echo may come first: a line
    logged is remembered (the last LOOK_AHEAD) to be uncounted when the first final result's
    frame turns out to be its text, and a line that would end the log is held until the next
    line, the end of the output or HOLD_SECONDS, by which time the frame written after it has
    been taken. Only the first final result's echo goes uncounted (a program may publish
    several), so the log stays within its limit plus the result's.
    """

    MAX_PENDING = 1024
    LOOK_AHEAD = 16
    HOLD_SECONDS = 5.0

    def __init__(self, output: JobOutput) -> None:
        self._output = output
        self._pending: deque[tuple[int, int, bool]] = deque()
        self._logged: deque[str] = deque(maxlen=self.LOOK_AHEAD)
        self._held: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._final = False
        self.pull: Callable[[], None] = lambda: None
        """Takes the control socket's frames written by now (set once it is read)."""

    def published(self, text: str, *, kept: bool) -> None:
        """The job process sent interim result `text`; `kept`: the job keeps it."""
        if len(self._pending) == self.MAX_PENDING:
            self._pending.popleft()
        self._pending.append((len(text), hash(text), kept))

    def final(self, text: str) -> None:
        """The job process sent final result `text`, which the job keeps."""
        if self._final:
            return
        self._final = True
        if self._held == text:
            self._output.log(text, counted=False)
            self._release()
        elif text in self._logged:
            self._output.uncount(text)
        else:
            self.published(text, kept=True)

    def finish(self) -> None:
        """The output ended (or a held line waited long enough): a line still held is logged
        as any other."""
        self.pull()
        if self._held is not None:
            self._output.log(self._held)
            self._release()

    def _release(self) -> None:
        self._held = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def line(self, line: str) -> None:
        """Take one line of the job process's stdout."""
        if self._held is not None:
            self.finish()
        at = self._echo_of(line)
        if at is None:
            self.pull()
            at = self._echo_of(line)
            if at is None:
                if self._output.would_overflow(line) and not self._final:
                    self._held = line
                    loop = asyncio.get_running_loop()
                    self._timer = loop.call_later(self.HOLD_SECONDS, self.finish)
                else:
                    self._logged.append(line)
                    self._output.log(line)
                return
        for _ in range(at):  # frames sent without an echo (`send`, not `publish`)
            self._pending.popleft()
        _, _, kept = self._pending.popleft()
        if kept:
            self._output.log(line, counted=False)

    def _echo_of(self, line: str) -> int | None:
        """Where in the first LOOK_AHEAD pending frames `line` is the echo of one, or None."""
        size, digest = len(line), None
        for at, (length, text_hash, _) in enumerate(self._pending):
            if at == self.LOOK_AHEAD:
                break
            if length == size:
                digest = hash(line) if digest is None else digest
                if digest == text_hash:
                    return at
        return None


class DeviceRelay:
    """Makes a job process's `DeviceCall`s to its job's device (and no other), one at a time,
    and writes each answer back on the job's control socket.

    It also follows the job's use of the device for its timeline (`output`'s stage events):
    its first `initialize` of a round is `waiting_for_device`, an `initialize` the device
    accepts (the device is locked for the job) is `executing`, with the device's `get_dynamic`
    answer read just then (the calibration in force, sent when it changed since the last
    round), and the `terminate` that ends the round is `running` again.
    """

    def __init__(
        self, access: DeviceAccess, control: socket.socket, output: JobOutput | None = None
    ) -> None:
        self._access = access
        self._control = control
        self._output = output
        self._client: DeviceClient | None = None
        self._busy = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._stage = Stage.RUNNING
        self._calibration: dict[str, Any] | None = None

    def take(self, call: DeviceCall) -> None:
        """Start answering `call`."""
        task = asyncio.create_task(self._answer(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, call: DeviceCall) -> None:
        answer = await self._call(call)
        with contextlib.suppress(OSError):  # the job process is gone
            await asyncio.get_running_loop().sock_sendall(self._control, to_json(answer) + b"\n")

    async def _call(self, call: DeviceCall) -> DeviceAnswer:
        access = self._access
        if call.session_id != access.session_id:
            return DeviceAnswer(error="a job uses its own device session only")
        try:
            command = Command(call.command)
        except ValueError:
            return DeviceAnswer(error=f"unknown device command {call.command!r}")
        if self._busy:
            return DeviceAnswer(error="one device request at a time")
        if self._client is None:
            self._client = DeviceClient(access.address, timeout=access.timeout)
        limit = access.execute_timeout if command is Command.EXECUTE else access.timeout
        timeout = min(call.timeout or limit, limit)
        self._busy = True
        if command is Command.INITIALIZE and self._stage is Stage.RUNNING:
            self._reached(Stage.WAITING_FOR_DEVICE)
        try:
            payload = await asyncio.to_thread(
                self._client.request, command, call.session_id, call.payload, timeout=timeout
            )
            if command is Command.INITIALIZE and self._stage is not Stage.EXECUTING:
                await self._executing(self._client, call.session_id)
        except DeviceUnavailable as exc:
            return DeviceAnswer(error=str(exc), unavailable=True)
        except DeviceRefused as exc:
            return DeviceAnswer(error=str(exc))
        finally:
            self._busy = False
            if command is Command.TERMINATE and self._stage is Stage.EXECUTING:
                self._reached(Stage.RUNNING)
        return DeviceAnswer(payload=payload)

    def _reached(self, stage: Stage, detail: str | None = None) -> None:
        self._stage = stage
        if self._output is not None:
            self._output.event(EventKind.STAGE, stage=stage, data=detail)

    async def _executing(self, client: DeviceClient, session_id: str) -> None:
        """The device is locked for the job: read its calibration, then say so."""
        at = time.time()
        detail = None
        try:
            calibration = await asyncio.to_thread(
                client.request, Command.GET_DYNAMIC, session_id, timeout=self._access.timeout
            )
        except (DeviceUnavailable, DeviceRefused) as exc:
            if self._output is not None:
                self._output.log(f"[qrt] the device's calibration could not be read: {exc}")
        else:
            if calibration != self._calibration:
                self._calibration = calibration
                backend = self._access.static.name
                record = {"backend": backend, "calibration": calibration, "read_at": at}
                detail = json.dumps(record)
        self._stage = Stage.EXECUTING
        if self._output is not None:
            self._output.event(EventKind.STAGE, stage=Stage.EXECUTING, data=detail, at=at)

    async def close(self) -> None:
        """Wait for calls under way, then close the connection to the device."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await asyncio.to_thread(self._client.close)


def exit_reason(code: int | None) -> str:
    """Why a process that exited with `code` (negative: killed by that signal) failed."""
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"program process killed by {signal.Signals(-code).name}"
    return f"program process exited with code {code}"


MAX_CIRCUITS_PER_RUN = 1_000_000
"""The most circuits one usage report may count (a `backend.run` of a list): a bound on what a
program that writes its own reports can add to the metrics at once."""


def count_usage(usage: Usage) -> bool:
    """Count what a job process reported running on a backend; False (nothing counted) for a
    report no run could make: negative, more than `MAX_CIRCUITS_PER_RUN` circuits, or more
    shots than `MAX_SHOTS` a circuit. A job process reports its own runs, so a program can
    still overstate them within these bounds (the README's metrics section says so)."""
    if not 0 <= usage.circuits <= MAX_CIRCUITS_PER_RUN:
        return False
    if not 0 <= usage.shots <= usage.circuits * MAX_SHOTS:
        return False
    CIRCUITS.labels(usage.backend).inc(usage.circuits)
    SHOTS.labels(usage.backend).inc(usage.shots)
    return True


async def run_job(
    proc: JobProcess,
    launch: Launch,
    output: JobOutput,
    *,
    time_limit: float,
    stop: asyncio.Future[JobStatus],
    on_stdout: Callable[[str], None] | None = None,
) -> Outcome:
    """Hand `launch` to `proc` and follow it until it exits (or says it does and closes its
    sockets: `Exit`), runs out of time or is stopped.

    Each stdout line goes to `on_stdout` (the log by default); stderr lines go to the log.
    Results and interim results follow qrt's rule (`qrt_common.results`) here too, whatever the
    job process did: one that breaks it is dropped, and a dropped result fails the job.
    """
    errors: list[str] = []
    refused: list[str] = []
    ignored: list[Usage] = []
    limits = launch.limits
    relay = None if launch.device is None else DeviceRelay(launch.device, proc.control, output)
    told: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def take_frame(line: str) -> None:
        try:
            frame: Interim | Final | Usage | Failure | DeviceCall | Exit = from_json(Frame, line)
        except MalformedMessage:
            output.log("[qrt] ignored a malformed frame from the program process")
            return
        if isinstance(frame, Exit):
            if not told.done():
                told.set_result(frame.code)
            return
        if isinstance(frame, DeviceCall):
            if relay is None:
                output.log("[qrt] ignored a device request of a job without a device")
            else:
                relay.take(frame)
            return
        if isinstance(frame, Interim) and output.interims_dropped:
            echoes.published(frame.data, kept=False)  # not even read: it goes anyway
            return
        if isinstance(frame, Interim | Final):
            reason = refusal(frame.data, interim=isinstance(frame, Interim), limits=limits)
            if reason is not None:
                output.log(f"[qrt] {reason}")
                if isinstance(frame, Final):
                    refused.append(reason)
                return
        if isinstance(frame, Interim):
            echoes.published(frame.data, kept=output.interim(frame.data))
        elif isinstance(frame, Final):
            echoes.final(frame.data)
            output.event(EventKind.RESULT, data=frame.data)
        elif isinstance(frame, Usage):
            # Only the job's own backend: any other name a program sends would be a metric
            # series of its making, as many as it likes.
            if frame.backend == launch.backend and not count_usage(frame) and not ignored:
                ignored.append(frame)  # said once: a program could send millions
                output.log("[qrt] ignored a usage report beyond what one run can do")
        else:
            errors.append(frame.reason)
            if frame.data is not None:
                # A failure that has a body of its own (PlanQK's ErrorResponse) keeps it
                # as the job's result, if it may be one.
                reason = refusal(frame.data, interim=False, limits=limits)
                if reason is None:
                    output.event(EventKind.RESULT, data=frame.data)
                else:
                    output.log(f"[qrt] the failure's body is dropped: {reason}")

    # A PlanQK template's interim results come as stdout lines: those may be as long as one
    # (and so may a program's echo of one it published).
    stdout_line = max(MAX_LINE_BYTES, limits.interim_bytes + 64)
    echoes = Echoes(output)
    pace = Pace()
    control = _SocketLines(proc.control, take_frame,
                           # A frame quotes its result: escaped, a JSON text takes at most
                           # twice its size.
                           2 * max(limits.result_bytes, limits.interim_bytes) + 65536,
                           pace)  # fmt: skip
    echoes.pull = control.pull
    readers = [
        _SocketLines(proc.stdout, on_stdout or echoes.line, stdout_line, pace),
        _SocketLines(proc.stderr, output.log, MAX_LINE_BYTES, pace),
        control,
    ]
    try:
        message = to_json(launch) + b"\n"
        outcome = await _follow(
            proc, message, readers, pace, time_limit, stop, told, errors, refused, output,
            echoes.finish,
        )  # fmt: skip
    finally:
        for reader in readers:
            reader.stop()
        if relay is not None:
            await relay.close()
    if outcome.status is JobStatus.FAILED:
        reason = signal_reason(proc.exit_code(), launch.sandbox.limits)
        if reason is not None:
            return Outcome(JobStatus.FAILED, reason)
    return outcome


async def _follow(
    proc: JobProcess,
    launch: bytes,
    readers: list[_SocketLines],
    pace: Pace,
    time_limit: float,
    stop: asyncio.Future[JobStatus],
    told: asyncio.Future[int],
    errors: list[str],
    refused: list[str],
    output: JobOutput,
    settle: Callable[[], None],
) -> Outcome:
    """Follow the job process to its end: its exit, or its `Exit` frame (`told`) followed by
    the end of its output, which comes when it closes its sockets before it exits. Until one
    of those, its output stays paced and a stop or its log's overflow still ends it; one that
    said it exits and neither closes its sockets nor exits within `DRAIN_SECONDS` is killed,
    and its real exit code counts."""
    with contextlib.suppress(OSError):  # a process that died at once: its exit code tells
        await asyncio.get_running_loop().sock_sendall(proc.control, launch)
    exited = proc.exited
    loop = asyncio.get_running_loop()
    deadline = loop.time() + time_limit
    waiting: set[asyncio.Future[Any]] = {exited, told, stop, output.overflowed}
    done, _ = await asyncio.wait(waiting, timeout=time_limit, return_when=asyncio.FIRST_COMPLETED)
    ended = exited in done or told in done
    closed_first = False  # its sockets closed as it said, before its exit: its word counts
    if not ended:
        proc.kill()
    elif exited not in done:
        closed = asyncio.gather(*(reader.ended for reader in readers))
        waiting = {closed, exited, stop, output.overflowed}
        # Not past its time limit, whatever it said (but for the moment its sockets' end
        # takes to be read).
        grace = max(CLOSE_SECONDS, min(DRAIN_SECONDS, deadline - loop.time()))
        finished, _ = await asyncio.wait(
            waiting, timeout=grace, return_when=asyncio.FIRST_COMPLETED
        )
        closed_first = closed in finished and exited not in finished
        if not closed_first and exited not in finished:
            proc.kill()
    pace.finish()
    _, unended = await asyncio.wait([reader.ended for reader in readers], timeout=DRAIN_SECONDS)
    if unended:
        # Something the program started still holds its output open: end it.
        proc.kill()
    settle()
    code = told.result() if closed_first and not unended else await _exit_code(proc)
    if output.overflowed.done():
        return Outcome(JobStatus.FAILED, output.overflow_reason)
    if not ended:
        if stop in done:
            return Outcome(stop.result(), "cancelled on request")
        return Outcome(JobStatus.CANCELLED_RAN_TOO_LONG, f"ran longer than {time_limit:g} s")
    if code == 0:
        return Outcome(JobStatus.FAILED, refused[0]) if refused else Outcome(JobStatus.COMPLETED)
    if code is None:
        return Outcome(JobStatus.FAILED, "the job process was lost with the executor's zygote")
    return Outcome(JobStatus.FAILED, errors[0] if errors else exit_reason(code))


async def _exit_code(proc: JobProcess) -> int | None:
    try:
        return await asyncio.wait_for(asyncio.shield(proc.exited), DRAIN_SECONDS)
    except TimeoutError:
        proc.kill()
        return await proc.exited
