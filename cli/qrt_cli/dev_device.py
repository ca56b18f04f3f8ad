"""The simulated device of `qrt dev`: `python -m qrt_device` in a process of its own, on free
loopback ports (or the configured addresses), started again whenever it ends.

Nothing a circuit makes native code do (libqasm's SIGFPE, Aer's SIGSEGV) can then end `qrt dev`
and every user's job with it: at worst the device process ends, and comes back on the same
addresses, where the executor's REQ sockets find it again. Its log lines go to `qrt dev`'s
stderr, tagged `"service": "qrt-device"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
import uuid

import zmq
import zmq.asyncio

from qrt_common.device_protocol import Command, read_reply, request_frame
from qrt_common.errors import DeviceRefused, DeviceUnavailable
from qrt_common.settings import Settings
from qrt_device.config import load_config

logger = logging.getLogger("qrt")

START_SECONDS = 120.0
"""How long the device process may take to answer its first `get_static`."""
STOP_SECONDS = 10.0
"""How long it may take to stop on SIGTERM before it is killed."""
RESTART_PAUSE = (1.0, 30.0)
"""Seconds before starting an ended device again: the first pause, and the longest."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def connectable(address: str) -> str:
    """Where a client on this machine connects to a socket bound at `address`."""
    return address.replace("tcp://*:", "tcp://127.0.0.1:").replace("0.0.0.0", "127.0.0.1")


class DevDevice:
    """The device process of `qrt dev` (see the module)."""

    def __init__(self, settings: Settings, rep: str, pub: str) -> None:
        self._settings = settings
        self._rep, self._pub = rep, pub
        self.rep_endpoint = connectable(rep)
        """Where clients send requests."""
        self.pub_endpoint = connectable(pub)
        """Where subscribers hear the state."""
        self.process: asyncio.subprocess.Process | None = None
        self._watching: asyncio.Task[None] | None = None
        self._stopping = False

    @classmethod
    async def start(cls, settings: Settings) -> DevDevice:
        """Start the device and wait until it answers. Raises DeviceConfigError for a
        configuration it cannot use, OSError if it does not come up."""
        load_config(settings.device_config)  # a bad file is qrt dev's error, said before starting
        chosen = settings.model_fields_set
        fixed = "device_rep_address" in chosen or "device_pub_address" in chosen
        attempts = 1 if fixed else 3  # a free port may be taken before the device binds it
        for attempt in range(1, attempts + 1):
            rep = (
                settings.device_rep_address
                if "device_rep_address" in chosen
                else f"tcp://127.0.0.1:{free_port()}"
            )
            pub = (
                settings.device_pub_address
                if "device_pub_address" in chosen
                else f"tcp://127.0.0.1:{free_port()}"
            )
            device = cls(settings, rep, pub)
            try:
                await device._launch()
            except OSError:
                if attempt == attempts:
                    raise
                continue
            device._watching = asyncio.create_task(device._watch())
            return device
        raise AssertionError("unreachable")

    def _environment(self) -> dict[str, str]:
        # Only what the device reads: qrt dev's own settings may have come from arguments.
        env = {k: v for k, v in os.environ.items() if not k.startswith("QRT_")}
        env.update(
            QRT_DEVICE_REP_ADDRESS=self._rep,
            QRT_DEVICE_PUB_ADDRESS=self._pub,
            QRT_LOG_LEVEL=self._settings.log_level,
            QRT_LOG_FORMAT=self._settings.log_format,
            QRT_HOST="127.0.0.1",
            QRT_OPS_PORT="0",
        )
        if self._settings.device_config is not None:
            env["QRT_DEVICE_CONFIG"] = str(self._settings.device_config.resolve())
        return env

    async def _launch(self) -> None:
        """Start the process and wait until it answers `get_static`; raises OSError if it ends
        or stays silent."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "qrt_device", str(os.getpid()),
            env=self._environment(), stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self.process = process
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.returncode is not None:
                raise OSError(f"the simulated device exited with code {process.returncode}")
            if time.monotonic() > deadline:
                await self._end(process)
                raise OSError(f"the simulated device did not answer within {START_SECONDS:g} s")
            if await self._answers(min(1.0, deadline - time.monotonic())):
                break
        logger.info("simulated device answering on %s (pid %s)", self.rep_endpoint, process.pid)

    async def _answers(self, wait: float) -> bool:
        context = zmq.asyncio.Context.instance()
        probe = context.socket(zmq.REQ)
        probe.setsockopt(zmq.LINGER, 0)
        probe.connect(self.rep_endpoint)
        session = str(uuid.uuid4())
        try:
            await probe.send(request_frame(Command.GET_STATIC, session))
            if not await probe.poll(max(wait, 0.05) * 1000):
                return False
            read_reply(await probe.recv(), session, Command.GET_STATIC, self.rep_endpoint)
            return True
        except (DeviceRefused, DeviceUnavailable, zmq.ZMQError):
            return False
        finally:
            probe.close(0)

    async def _watch(self) -> None:
        pause = RESTART_PAUSE[0]
        while True:
            process = self.process
            assert process is not None
            code = await process.wait()
            if self._stopping:
                return
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            logger.error("the simulated device ended (%s); starting it again", how)
            await asyncio.sleep(pause)
            pause = min(pause * 2, RESTART_PAUSE[1])
            try:
                await self._launch()
            except OSError as exc:
                logger.error("the simulated device did not start again: %s", exc)
                continue
            pause = RESTART_PAUSE[0]

    async def _end(self, process: asyncio.subprocess.Process) -> None:
        if process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def stop(self) -> None:
        """Stop the device (SIGTERM; SIGKILL after STOP_SECONDS) and stop restarting it."""
        self._stopping = True
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching
        if self.process is not None:
            await self._end(self.process)
