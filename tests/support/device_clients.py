"""A 2200 side for tests of a device on real ZeroMQ sockets: a REQ client that checks every
reply against protocol v3, a state subscriber, and a device running for a test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import zmq
import zmq.asyncio

from qrt_device.config import DeviceConfig
from qrt_device.service import Device

from .device_schemas import check_published, check_reply
from .waiting import TIME_SCALE


class Client:
    """A 2200 side: a REQ socket that checks every reply against the v3 schemas."""

    def __init__(self, context: zmq.asyncio.Context, address: str) -> None:
        self.socket = context.socket(zmq.REQ)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(address)
        self.session = str(uuid.uuid4())

    async def send_raw(self, frame: bytes, timeout: float = 30) -> dict[str, Any]:
        await self.socket.send(frame)
        limit = timeout * TIME_SCALE
        try:
            answer = await asyncio.wait_for(self.socket.recv(), limit)
        except TimeoutError:
            raise AssertionError(f"a reply from the device: not within {limit:g} s") from None
        reply: dict[str, Any] = json.loads(answer)
        return reply

    async def call(
        self, command: str, payload: dict[str, Any] | None = None, **extra: Any
    ) -> dict[str, Any]:
        request: dict[str, Any] = {"session_id": self.session, "command": command, **extra}
        if payload is not None:
            request["payload"] = payload
        reply = await self.send_raw(json.dumps(request).encode())
        assert reply["session_id"] == request["session_id"]
        if "version" not in request:  # protocol 0.1.0 sessions are not UUIDs
            check_reply(command, reply)
        return reply

    async def execute(
        self, circuit: str, shots: int = 100, job_id: int = 1, **extra: Any
    ) -> dict[str, Any]:
        payload = {"job_id": job_id, "circuit": circuit, "number_of_shots": shots, **extra}
        return await self.call("execute", payload)


@contextlib.asynccontextmanager
async def running(**settings: Any) -> AsyncIterator[tuple[Device, zmq.asyncio.Context]]:
    config = DeviceConfig(**{"seed": 11, "heartbeat_seconds": 0.05, **settings})
    device = Device(config, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*")
    await device.start()
    context = zmq.asyncio.Context()
    try:
        yield device, context
    finally:
        context.destroy(linger=0)
        await device.close()


class Subscriber:
    def __init__(self, context: zmq.asyncio.Context, address: str) -> None:
        self.socket = context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.connect(address)

    async def next(self, timeout: float = 5) -> dict[str, Any]:
        limit = timeout * TIME_SCALE
        try:
            frame = await asyncio.wait_for(self.socket.recv(), limit)
        except TimeoutError:
            raise AssertionError(f"a published message: not within {limit:g} s") from None
        message: dict[str, Any] = json.loads(frame)
        check_published(message)
        return message

    async def wait_for(self, state: str, timeout: float = 5, *, after: float = 0.0) -> float:
        """The timestamp of the next message announcing `state` (stamped `after` or later). It
        reads the stream on rather than polling (each message comes once), with the deadlines
        and failure of `eventually`."""
        limit = timeout * TIME_SCALE
        deadline = time.monotonic() + limit
        last: dict[str, Any] | None = None
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = await asyncio.wait_for(self.socket.recv(), left)
            except TimeoutError:
                break
            last = json.loads(frame)
            check_published(last)
            stamped = float(last["payload"]["timestamp"])
            if last["payload"]["state"] == state and stamped >= after:
                return stamped
        raise AssertionError(f"{state} published: not within {limit:g} s; last seen: {last!r}")
