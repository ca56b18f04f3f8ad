"""The 2200 side of QuTech's 2200/2300 interface: requests to a device over a REQ socket."""

from __future__ import annotations

import logging
from typing import Any

import zmq

from qrt_common.device_protocol import Command, read_reply, request_frame
from qrt_common.errors import DeviceRefused, DeviceUnavailable
from qrt_common.wire import Message

logger = logging.getLogger(__name__)


class DeviceClient:
    """Sends requests to the 2300 device at `address` and waits for each reply.

    A REQ socket that gave up waiting cannot send again (its reply might still come), so it
    is closed and the next request connects a fresh one; ZeroMQ reconnects a socket by itself
    when a device restarts.
    """

    def __init__(self, address: str, *, timeout: float = 10.0) -> None:
        self.address = address
        self.timeout = timeout
        # The process's one context, never collected: a context collected together with a
        # socket still open blocks the collector in `term()` forever, in whatever thread it
        # runs (a test run saw it freeze an event loop for 120 s).
        self._context: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
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
        command: Command,
        session_id: str,
        payload: Message | dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send `command` (with `payload`, a message or a dict) and return the payload of its
        success reply.

        Raises DeviceUnavailable if no reply comes within `timeout` seconds (default: the
        client's), DeviceRefused for a failure reply.
        """
        wait = self.timeout if timeout is None else timeout
        sock = self._connected()
        try:
            sock.send(request_frame(command, session_id, payload), zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            self._replace()
            raise DeviceUnavailable(f"cannot send {command} to {self.address}: {exc}") from None
        if not sock.poll(int(wait * 1000), zmq.POLLIN):
            self._replace()
            raise DeviceUnavailable(f"{self.address} did not answer {command} within {wait:g} s")
        try:
            return read_reply(sock.recv(), session_id, command, self.address)
        except DeviceUnavailable:
            self._replace()
            raise

    def close(self) -> None:
        """Close the socket (the context is the process's, shared)."""
        self._replace()


def end_session(client: DeviceClient, session_id: str) -> None:
    """Terminate `session_id` on the device, if it still holds it (best effort: the device's
    lease releases a session nobody ends)."""
    try:
        client.request(Command.TERMINATE, session_id, timeout=min(client.timeout, 5.0))
    except (DeviceUnavailable, DeviceRefused) as exc:
        logger.warning("session not terminated: %s", exc)
