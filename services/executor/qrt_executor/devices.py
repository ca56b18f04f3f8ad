"""The devices an executor relays jobs to, found by asking each configured address for its
`get_static`; a device is offered as a backend under the name it gives."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from qrt_common.backends import SIMULATORS
from qrt_common.device_protocol import Command, StaticInfo
from qrt_common.errors import DeviceRefused, DeviceUnavailable, MalformedMessage
from qrt_common.messages import DeviceReport
from qrt_common.metrics import gauge
from qrt_common.retry import Backoff
from qrt_common.wire import decode

from .device_client import DeviceClient

logger = logging.getLogger(__name__)

FIRST_LOOK_SECONDS = 2.0
"""How long starting the executor waits for a device; one that answers later joins then."""
SEARCH_BACKOFF = Backoff(1.0, 30.0)
"""Pauses between attempts to reach a device that has not answered yet."""


@dataclass(frozen=True, slots=True)
class KnownDevice:
    """A device that answered `get_static`."""

    name: str
    address: str
    static: StaticInfo


def _ask(address: str, command: Command, timeout: float) -> dict[str, Any]:
    client = DeviceClient(address, timeout=timeout)
    try:
        return client.request(command, str(uuid.uuid4()))
    finally:
        client.close()


_PROMETHEUS_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def calibration_metrics(device: str, payload: dict[str, Any]) -> list[GaugeMetricFamily]:
    """A `get_dynamic` payload as Prometheus gauges, by the protocol's mapping: each key is a
    metric `qi_<key>`, `__labels__` names the levels of its nested keys, leaves are values
    (`{"t1": {"__labels__": ["qubit"], "q0": 0.99}}` is `qi_t1{qubit="q0"} 0.99`). A `device`
    label is added, since one executor may relay to several devices."""
    families = []
    for name, tree in payload.items():
        labels = list(tree.get("__labels__", [])) if isinstance(tree, dict) else []
        if not _PROMETHEUS_NAME.fullmatch(name) or not all(
            isinstance(label, str) and _PROMETHEUS_NAME.fullmatch(label) for label in labels
        ):
            continue  # not a name Prometheus takes
        samples = {(device, *values): leaf for values, leaf in _leaves(tree, len(labels))}
        families.append(
            gauge(f"qi_{name}", f"{name} as the device reports it", samples, ("device", *labels))
        )
    return families


def _leaves(tree: Any, depth: int) -> list[tuple[list[str], float]]:
    if depth == 0:
        is_number = isinstance(tree, int | float) and not isinstance(tree, bool)
        return [([], float(tree))] if is_number else []
    if not isinstance(tree, dict):
        return []
    return [
        ([str(key), *rest], leaf)
        for key, branch in tree.items()
        if key != "__labels__"
        for rest, leaf in _leaves(branch, depth - 1)
    ]


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
        self.calibration: dict[str, dict[str, Any]] = {}
        """Each device's last `get_dynamic` payload."""
        self.calibration_read_at: dict[str, float] = {}
        """When each device's `calibration` was read (epoch seconds)."""
        self.reachable: dict[str, bool] = {}
        """Whether each device answered the last time it was asked."""

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
            payload = await asyncio.to_thread(_ask, address, Command.GET_STATIC, wait)
            static = decode(StaticInfo, payload)
        except (DeviceUnavailable, DeviceRefused, MalformedMessage) as exc:
            where = {"address": address, "error": str(exc)}
            logger.warning("device not reachable yet", extra=where)
            return False
        name = static.name
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
        for pause in SEARCH_BACKOFF:
            if await self._look(address, self.timeout):
                break
            await asyncio.sleep(pause)
        if self._on_found is not None:
            await self._on_found()

    async def is_ready(self) -> bool:
        """True when every configured device was found and answered when last asked."""
        found = {device.address for device in self._devices.values()}
        return found >= set(self.addresses) and all(self.reachable.values())

    async def watch(self, interval: float) -> None:
        """Ask every device found for its `get_dynamic`, every `interval` seconds."""
        while True:
            for device in list(self._devices.values()):
                try:
                    payload = await asyncio.to_thread(
                        _ask, device.address, Command.GET_DYNAMIC, self.timeout
                    )
                except (DeviceUnavailable, DeviceRefused) as exc:
                    if self.reachable.get(device.name, True):
                        logger.warning(
                            "device not answering", extra={"device": device.name, "error": str(exc)}
                        )
                    self.reachable[device.name] = False
                    continue
                self.calibration[device.name] = payload
                self.calibration_read_at[device.name] = time.time()
                self.reachable[device.name] = True
            await asyncio.sleep(interval)

    def reports(self) -> list[DeviceReport]:
        """Each device found, with its last calibration and whether it answers (for the
        heartbeat)."""
        return [
            DeviceReport(
                static=device.static,
                reachable=self.reachable.get(name, True),
                calibration=self.calibration.get(name, {}),
                read_at=self.calibration_read_at.get(name),
            )
            for name, device in sorted(self._devices.items())
        ]

    def gauges(self) -> list[GaugeMetricFamily]:
        """The devices' calibration (`qi_*`) and whether each answers."""
        up = gauge(
            "qrt_device_reachable",
            "1 if the device answered the executor's last request.",
            {(name,): float(ok) for name, ok in self.reachable.items()},
            ("device",),
        )
        calibration = [
            family
            for name, payload in self.calibration.items()
            for family in calibration_metrics(name, payload)
        ]
        return [up, *calibration]

    async def close(self) -> None:
        for task in self._searches:
            task.cancel()
        for task in self._searches:
            with contextlib.suppress(asyncio.CancelledError):
                await task
