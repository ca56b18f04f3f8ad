"""The device service: a 2300 control stack on ZeroMQ, simulating its qubits on Aer.

Requests arrive on a ROUTER socket, which REQ clients see as the REP socket of the protocol;
unlike REP it lets `get_static` or another session's `initialize` be answered while a
simulation runs. Circuits are parsed and simulated in a worker process (`supervisor.py`), so
the event loop here only answers: a parse or simulation that is slow, or that crashes, neither
stalls other sessions nor the PUB heartbeat, nor takes the device down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

import zmq
import zmq.asyncio
from prometheus_client.core import GaugeMetricFamily

from qrt_common.device_protocol import (
    PROTOCOL_VERSION,
    Command,
    DeviceState,
    ExecuteRequest,
    ExecuteResult,
    Request,
    StaticInfo,
    failure,
    publish_state,
    read_execute,
    read_request,
    read_set_publish,
    session_of,
    success,
)
from qrt_common.errors import DeviceRefused
from qrt_common.metrics import (
    DEVICE_EXECUTE_LATENCY,
    DEVICE_EXECUTIONS,
    DEVICE_SHOTS,
    GaugeCollector,
    gauge,
    register,
)

from .calibration import Calibration
from .config import DeviceConfig
from .supervisor import Supervisor
from .worker_protocol import Counted, Noise, Rejected, Task

logger = logging.getLogger(__name__)

MIN_MESSAGE_BYTES = 16 * 1024 * 1024
"""ZeroMQ drops a peer that sends more than this (or twice `max_circuit_bytes`); a smaller
oversized circuit gets a failure reply instead."""


class Device:
    """One simulated quantum device answering the 2200/2300 protocol."""

    def __init__(
        self,
        config: DeviceConfig,
        rep_address: str = "tcp://*:4203",
        pub_address: str = "tcp://*:4204",
    ) -> None:
        self.config = config
        self.rep_address = rep_address
        self.pub_address = pub_address
        self.starttime = time.time()
        self._rng = random.Random(config.seed)
        self.calibration = Calibration(config, self._rng, self.starttime)
        self.publishing = config.publish
        self.session: str | None = None
        self._last_heard = 0.0
        self._executing = 0
        self.calibrating_until: float | None = None
        self._offline = False
        self._published: DeviceState | None = None
        self._context = zmq.asyncio.Context()
        self._rep: zmq.asyncio.Socket | None = None
        self._pub: zmq.asyncio.Socket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._answering: set[asyncio.Task[None]] = set()
        self.supervisor = Supervisor(config, lambda: self._noise(time.time()))
        self._released = asyncio.Event()
        self._unregister_metrics: Callable[[], None] = lambda: None
        self._handlers: dict[str, Callable[[Request], Awaitable[bytes]]] = {
            Command.INITIALIZE: self._initialize,
            Command.EXECUTE: self._execute,
            Command.TERMINATE: self._terminate,
            Command.GET_STATIC: self._get_static,
            Command.GET_DYNAMIC: self._get_dynamic,
            Command.SET_PUBLISH: self._set_publish,
        }

    # Life cycle.

    async def start(self) -> None:
        """Bind both sockets and start answering, beating and calibrating."""
        limit = max(MIN_MESSAGE_BYTES, 2 * self.config.max_circuit_bytes)
        self._rep = self._context.socket(zmq.ROUTER)
        self._rep.setsockopt(zmq.MAXMSGSIZE, limit)
        self._rep.setsockopt(zmq.LINGER, 0)
        self._pub = self._context.socket(zmq.PUB)
        self._pub.setsockopt(zmq.LINGER, 0)
        try:
            self._rep.bind(self.rep_address)
            self._pub.bind(self.pub_address)
        except zmq.ZMQError as exc:
            self._rep.close()
            self._pub.close()
            raise OSError(f"cannot bind the device's sockets: {exc}") from None
        # No worker yet: it starts with the first session (see `supervisor.py`).
        self._tasks = [
            asyncio.create_task(self._serve()),
            asyncio.create_task(self._beat()),
            asyncio.create_task(self._recalibrate()),
        ]
        self._unregister_metrics = register(GaugeCollector(self._gauges))
        logger.info(
            "device ready",
            extra={"device": self.config.name, "rep": self.rep_endpoint, "pub": self.pub_endpoint},
        )

    @property
    def rep_endpoint(self) -> str:
        """Where clients connect for requests (the bound address, ports resolved)."""
        return _endpoint(self._rep, self.rep_address)

    @property
    def pub_endpoint(self) -> str:
        """Where subscribers connect for the state heartbeat."""
        return _endpoint(self._pub, self.pub_address)

    async def close(self) -> None:
        """Say OFFLINE, stop everything, close the sockets."""
        self._unregister_metrics()
        self._offline = True
        with contextlib.suppress(zmq.ZMQError):
            await self._publish(force=True)
        # The worker first, whatever it is doing: nothing it still runs is waited for.
        await self.supervisor.close()
        for task in [*self._tasks, *self._answering]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._answering, return_exceptions=True)
        for sock in (self._rep, self._pub):
            if sock is not None:
                sock.close(linger=0)
        self._context.term()

    async def is_ready(self) -> bool:
        """True while both sockets are bound and the device is not going offline."""
        return self._rep is not None and self._pub is not None and not self._offline

    def _gauges(self) -> list[GaugeMetricFamily]:
        name, now = self.config.name, self.state
        holder: dict[tuple[str, ...], float] = {}
        if self.session is not None:
            holder[(name, self.session)] = 1.0
        return [
            gauge("qrt_device_state", "1 for the state the device is in, 0 for the others.",
                  {(name, s.value): float(s is now) for s in DeviceState}, ("device", "state")),
            gauge("qrt_device_locked", "1 while a session holds the device.",
                  {(name,): float(self.session is not None)}, ("device",)),
            gauge("qrt_device_lock_holder_info", "The session holding the device.",
                  holder, ("device", "session")),
            gauge("qrt_device_worker_running",
                  "1 while the simulator's worker process runs or starts (from the first "
                  "session until worker_idle_seconds without an execute).",
                  {(name,): float(self.supervisor.running)}, ("device",)),
        ]  # fmt: skip

    # State.

    @property
    def state(self) -> DeviceState:
        """The first that applies of OFFLINE, CALIBRATING, EXECUTING (locked) and IDLE."""
        if self._offline:
            return DeviceState.OFFLINE
        if self.calibrating_until is not None:
            return DeviceState.CALIBRATING
        self._expire_lease()
        return DeviceState.EXECUTING if self.session is not None else DeviceState.IDLE

    def _expire_lease(self) -> None:
        if (
            self.session is not None
            and not self._executing
            and time.monotonic() - self._last_heard > self.config.lease_seconds
        ):
            logger.info("session lease expired", extra={"session_id": self.session})
            self._unlock()

    def _unlock(self) -> None:
        self.session = None
        self._released.set()

    async def _publish(self, *, force: bool = False) -> None:
        state = self.state
        if self._pub is None or not (self.publishing or force):
            return
        self._published = state
        await self._pub.send(publish_state(state))

    async def _state_changed(self) -> None:
        if self.state is not self._published:
            await self._publish()

    async def _beat(self) -> None:
        while True:
            try:
                await self._publish()
            except zmq.ZMQError as exc:
                logger.warning("heartbeat not sent: %s", exc)
            await asyncio.sleep(self.config.heartbeat_seconds)

    async def _recalibrate(self) -> None:
        settings = self.config.calibration
        while True:
            await asyncio.sleep(
                max(0.0, self.calibration.at + settings.interval_seconds - time.time())
            )
            # Never in the middle of a session: that is what `initialize` locks out.
            while self.state is DeviceState.EXECUTING:
                self._released.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), 1.0)
            self.calibrating_until = time.time() + settings.duration_seconds
            await self._state_changed()
            logger.info("calibrating", extra={"seconds": settings.duration_seconds})
            await asyncio.sleep(settings.duration_seconds)
            self.calibration.calibrate(time.time())
            self.calibrating_until = None
            await self._state_changed()

    # Requests.

    async def _serve(self) -> None:
        assert self._rep is not None
        while True:
            try:
                frames = await self._rep.recv_multipart(copy=True)
            except zmq.ZMQError as exc:
                logger.warning("receive failed: %s", exc)
                await asyncio.sleep(0.01)
                continue
            task = asyncio.create_task(self._answer(frames))
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

    async def _answer(self, frames: list[bytes]) -> None:
        assert self._rep is not None
        if len(frames) < 2:
            return  # no envelope: not from a REQ or DEALER peer, nobody to answer
        envelope, frame = frames[:-1], frames[-1]
        reply = await self.handle(frame)
        try:
            await self._rep.send_multipart([*envelope, reply])
        except zmq.ZMQError as exc:
            logger.warning("reply not sent: %s", exc)

    async def handle(self, frame: bytes) -> bytes:
        """The reply to one request frame; never raises."""
        try:
            request = read_request(frame)
        except DeviceRefused as exc:
            return failure(*session_of(frame), str(exc))
        handler = self._handlers.get(request.command)
        if handler is None:
            known = ", ".join(self._handlers)
            message = f"unknown command {request.command!r}; known: {known}"
            return failure(request.reply_session, request.echoed_version, message)
        try:
            if request.session_id is not None and request.session_id == self.session:
                self._last_heard = time.monotonic()
            return await handler(request)
        except DeviceRefused as exc:
            return failure(request.reply_session, request.echoed_version, str(exc))
        except Exception as exc:
            logger.exception("request failed", extra={"command": request.command})
            message = f"{request.command} failed on the device: {type(exc).__name__}: {exc}"
            return failure(request.reply_session, request.echoed_version, message)

    def _locked_by_other(self, session_id: str | None) -> bool:
        return self.state is DeviceState.EXECUTING and self.session != session_id

    def _refuse_if_calibrating(self, what: str) -> None:
        if self.calibrating_until is not None:
            left = max(self.calibrating_until - time.time(), 0.0)
            raise DeviceRefused(
                f"{self.config.name} is CALIBRATING (about {left:.1f} s left); "
                f"{what} is refused until it is IDLE again"
            )

    async def _initialize(self, request: Request) -> bytes:
        self._refuse_if_calibrating("initialize")
        if self._locked_by_other(request.session_id):
            raise DeviceRefused(
                f"{self.config.name} is locked by another session; it is released by that "
                f"session's terminate or after {self.config.lease_seconds:g} s of its silence"
            )
        self.session = request.session_id
        self._last_heard = time.monotonic()
        # Execution is about to begin (the spec's words for initialize): the simulator's worker
        # starts now, unless it runs, while the client prepares its first execute.
        self.supervisor.start()
        await self._state_changed()
        return success(request)

    async def _terminate(self, request: Request) -> bytes:
        if self._locked_by_other(request.session_id):
            raise DeviceRefused(
                f"{self.config.name} is locked by another session; it cannot be ended here"
            )
        if self.session == request.session_id:
            self._unlock()
            await self._state_changed()
        return success(request)

    async def _get_static(self, request: Request) -> bytes:
        config = self.config
        static = StaticInfo(
            name=config.name,
            nqubits=config.qubits,
            topology=list(config.topology),
            pgs=list(config.pgs),
            starttime=self.starttime,
            protocol_version=PROTOCOL_VERSION,
            default_compiler_config=config.default_compiler_config,
            supports_raw_data=config.supports_raw_data,
        )
        return success(request, static)

    async def _get_dynamic(self, request: Request) -> bytes:
        return success(request, self.calibration.metrics(time.time()))

    async def _set_publish(self, request: Request) -> bytes:
        self.publishing = read_set_publish(request).active
        if self.publishing:
            await self._publish()
        return success(request)

    async def _execute(self, request: Request) -> bytes:
        arguments = read_execute(request)
        self._refuse_if_calibrating("execute")
        if self.session != request.session_id or self.state is not DeviceState.EXECUTING:
            if self._locked_by_other(request.session_id):
                raise DeviceRefused(f"{self.config.name} is locked by another session")
            raise DeviceRefused(
                "execute outside an initialized session: send initialize with this "
                "session_id first (a session silent for "
                f"{self.config.lease_seconds:g} s is released)"
            )
        config = self.config
        try:
            circuit_bytes = len(arguments.circuit.encode())
        except UnicodeEncodeError as exc:
            # JSON's \ud800 escapes can carry half a surrogate pair, which no text encodes.
            raise DeviceRefused(
                f"circuit rejected by rule 'encoding': a lone surrogate at character {exc.start}"
                " (cQASM is UTF-8 text)"
            ) from None
        if circuit_bytes > config.max_circuit_bytes:
            raise DeviceRefused(
                f"circuit rejected by rule 'size': more than {config.max_circuit_bytes} bytes"
            )
        if arguments.number_of_shots > config.max_shots:
            raise DeviceRefused(
                f"circuit rejected by rule 'max_shots': {arguments.number_of_shots} shots "
                f"requested, {config.name} runs at most {config.max_shots}"
            )
        self._executing += 1
        started = time.perf_counter()
        try:
            outcome = await self.supervisor.run(self._task(arguments), config.max_execute_seconds)
        finally:
            self._executing -= 1
            self._last_heard = time.monotonic()
        name = config.name
        DEVICE_EXECUTE_LATENCY.labels(name).observe(time.perf_counter() - started)
        if isinstance(outcome, Rejected):
            DEVICE_EXECUTIONS.labels(name, "rejected").inc()
            where = f" at line {outcome.line}" if outcome.line else ""
            raise DeviceRefused(
                f"circuit rejected by rule '{outcome.rule}'{where}: {outcome.message}"
            )
        if not isinstance(outcome, Counted):
            DEVICE_EXECUTIONS.labels(name, "failed").inc()
            logger.warning("execute failed: %s", outcome.message, extra={"job_id": arguments.id})
            raise DeviceRefused(f"execute failed on the device: {outcome.message}")
        DEVICE_EXECUTIONS.labels(name, "completed").inc()
        DEVICE_SHOTS.labels(name).inc(arguments.number_of_shots)
        result_of_run = ExecuteResult(
            job_id=arguments.id,
            results=outcome.counts,
            raw_data=outcome.raw_data if outcome.raw_data is not None else [],
            run_id=arguments.id if arguments.job_id is None else None,
        )
        return success(request, result_of_run)

    def _noise(self, now: float) -> Noise | None:
        """The calibration at `now` for the worker (None if the device is ideal)."""
        if not self.config.noise:
            return None
        return Noise(self.calibration.version(now), self.calibration.snapshot(now))

    def _task(self, arguments: ExecuteRequest) -> Task:
        """What the worker is to run for `arguments`, with the calibration of this moment."""
        config = self.config
        noise = self._noise(time.time())
        seed = None if config.seed is None else (config.seed + arguments.id) % 2**31
        raw = arguments.include_raw_data and config.supports_raw_data
        return Task(arguments.circuit, arguments.number_of_shots, seed, raw, noise)


def _endpoint(sock: zmq.asyncio.Socket | None, fallback: str) -> str:
    if sock is None:
        return fallback
    endpoint = sock.getsockopt(zmq.LAST_ENDPOINT)
    text = endpoint.decode() if isinstance(endpoint, bytes) else str(endpoint)
    return text.replace("0.0.0.0", "127.0.0.1") if text else fallback
