"""The 2200 side of QuTech's 2200/2300 interface: requests to a device over a REQ socket."""

from __future__ import annotations

import json
from typing import Any

import zmq


class DeviceUnavailable(Exception):
    """The device did not answer in time, or answered something that is not a reply."""


class DeviceRefused(Exception):
    """The device answered with a failure; the message is the device's `error_msg`."""


class DeviceClient:
    """Sends requests to the 2300 device at `address` and waits for each reply.

    A REQ socket that gave up waiting cannot send again (its reply might still come), so it
    is closed and the next request connects a fresh one; ZeroMQ reconnects a socket by itself
    when a device restarts.
    """

    def __init__(self, address: str, *, timeout: float = 10.0) -> None:
        self.address = address
        self.timeout = timeout
        self._context = zmq.Context()
        self._socket: zmq.Socket[bytes] | None = None

    def _connected(self) -> zmq.Socket[bytes]:
        if self._socket is None:
            sock: zmq.Socket[bytes] = self._context.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self.address)
            self._socket = sock
        return self._socket

    def _replace(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

    def request(
        self,
        command: str,
        session_id: str,
        payload: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send `command` and return the payload of its success reply.

        Raises DeviceUnavailable if no reply comes within `timeout` seconds (default: the
        client's), DeviceRefused for a failure reply.
        """
        wait = self.timeout if timeout is None else timeout
        message: dict[str, Any] = {"session_id": session_id, "command": command}
        if payload is not None:
            message["payload"] = payload
        sock = self._connected()
        try:
            sock.send(json.dumps(message).encode(), zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            self._replace()
            raise DeviceUnavailable(f"cannot send {command} to {self.address}: {exc}") from None
        if not sock.poll(int(wait * 1000), zmq.POLLIN):
            self._replace()
            raise DeviceUnavailable(f"{self.address} did not answer {command} within {wait:g} s")
        frame = sock.recv()
        try:
            reply = json.loads(frame)
        except ValueError:
            reply = None
        if not isinstance(reply, dict) or reply.get("session_id") != session_id:
            self._replace()
            raise DeviceUnavailable(f"{self.address} answered {command} with {frame[:200]!r}")
        body = reply.get("payload")
        if reply.get("status") != "success":
            error = body.get("error_msg") if isinstance(body, dict) else None
            raise DeviceRefused(str(error or f"{command} failed without a reason"))
        return body if isinstance(body, dict) else {}

    def close(self) -> None:
        self._replace()
        self._context.term()
