"""The devices an executor relays jobs to, found by asking each configured address for its
`get_static`; a device is offered as a backend under the name it gives."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from qrt_common.backends import SIMULATORS

from .device_client import DeviceClient, DeviceRefused, DeviceUnavailable

logger = logging.getLogger(__name__)

FIRST_LOOK_SECONDS = 2.0
"""How long starting the executor waits for a device; one that answers later joins then."""
RETRY_SECONDS = (1.0, 30.0)
"""First and longest pause between attempts to reach a device that has not answered yet."""


@dataclass(frozen=True, slots=True)
class KnownDevice:
    """A device that answered `get_static`."""

    name: str
    address: str
    static: dict[str, Any]


def _get_static(address: str, timeout: float) -> dict[str, Any]:
    client = DeviceClient(address, timeout=timeout)
    try:
        return client.request("get_static", str(uuid.uuid4()))
    finally:
        client.close()


class DeviceDirectory:
    """Devices at the configured addresses, by name."""

    def __init__(
        self,
        addresses: list[str],
        timeout: float,
        on_found: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.addresses = addresses
        self.timeout = timeout
        self._on_found = on_found
        self._devices: dict[str, KnownDevice] = {}
        self._searches: list[asyncio.Task[None]] = []

    def names(self) -> list[str]:
        """Backend names of the devices found so far."""
        return sorted(self._devices)

    def get(self, name: str) -> KnownDevice | None:
        return self._devices.get(name)

    async def start(self) -> None:
        """Ask every address once (briefly), then keep looking for the silent ones."""
        brief = min(self.timeout, FIRST_LOOK_SECONDS)
        first = await asyncio.gather(*(self._look(address, brief) for address in self.addresses))
        for address, found in zip(self.addresses, first, strict=True):
            if not found:
                self._searches.append(asyncio.create_task(self._search(address)))

    async def _look(self, address: str, wait: float) -> bool:
        try:
            static = await asyncio.to_thread(_get_static, address, wait)
            name = str(static["name"])
        except (DeviceUnavailable, DeviceRefused, KeyError, TypeError) as exc:
            where = {"address": address, "error": str(exc)}
            logger.warning("device not reachable yet", extra=where)
            return False
        if name in SIMULATORS:
            logger.error("the device at %s is called %s, like a simulator: not used", address, name)
            return True
        known = self._devices.get(name)
        if known is not None and known.address != address:
            logger.error(
                "two devices call themselves %s; only the one at %s is used", name, known.address
            )
            return True
        self._devices[name] = KnownDevice(name, address, static)
        logger.info("device found", extra={"device": name, "address": address})
        return True

    async def _search(self, address: str) -> None:
        pause, longest = RETRY_SECONDS
        while not await self._look(address, self.timeout):
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest)
        if self._on_found is not None:
            await self._on_found()

    async def close(self) -> None:
        for task in self._searches:
            task.cancel()
        for task in self._searches:
            with contextlib.suppress(asyncio.CancelledError):
                await task
