"""A job process's way to its device: requests go to the executor over the job's control
socket (`DeviceCall`), since the job has no network of its own; the executor makes them."""

from __future__ import annotations

from typing import Any

import msgspec

from qrt_common.device_protocol import Command
from qrt_common.errors import DeviceRefused, DeviceUnavailable
from qrt_common.wire import Message

from .job_protocol import DeviceCall
from .messenger import UserMessenger


class RelayedDeviceClient:
    """Has the same `request` as `DeviceClient`, answered by the executor through `messenger`."""

    def __init__(self, messenger: UserMessenger, address: str, *, timeout: float) -> None:
        self._messenger = messenger
        self.address = address
        self.timeout = timeout

    def request(
        self,
        command: Command,
        session_id: str,
        payload: Message | dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """As `DeviceClient.request`: the success reply's payload; raises DeviceUnavailable
        or DeviceRefused."""
        body = msgspec.to_builtins(payload) if payload is not None else None
        call = DeviceCall(str(command), session_id, body, timeout)
        answer = self._messenger.call_device(call)
        if answer.error is not None:
            raise (DeviceUnavailable if answer.unavailable else DeviceRefused)(answer.error)
        return answer.payload or {}

    def close(self) -> None:
        """Nothing to close: the executor owns the connection."""
