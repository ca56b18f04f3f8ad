"""What every request handler can reach: settings, store, bus, registry and live streams."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from qrt_common.backends import SIMULATORS
from qrt_common.bus import MessageBus
from qrt_common.messages import Heartbeat, decode
from qrt_common.programs import Program
from qrt_common.registry import ProgramRegistry
from qrt_common.settings import Settings
from qrt_common.store import JobStore

from .streams import StreamHub


@dataclass(slots=True)
class Gateway:
    """The gateway's collaborators, shared by all handlers."""

    settings: Settings
    store: JobStore
    bus: MessageBus
    registry: ProgramRegistry
    streams: StreamHub
    announced: dict[str, tuple[list[str], float]] = field(default_factory=dict)
    """Executor id to the devices it offers and when it last said so."""

    async def program(self, program_id: str) -> Program | None:
        """The program with this id: a bundled one (programs.ini) or an uploaded one."""
        return self.registry.get(program_id) or await self.store.get_program(program_id)

    async def on_heartbeat(self, body: dict[str, Any]) -> None:
        """Learn which devices the executors offer."""
        beat = decode(Heartbeat, body)
        if beat.leaving:
            self.announced.pop(beat.executor_id, None)
        else:
            self.announced[beat.executor_id] = (beat.exclusive_backends, time.monotonic())

    def devices(self) -> list[str]:
        """Devices a live executor offers."""
        since = time.monotonic() - self.settings.heartbeat_timeout
        live = (names for names, seen in self.announced.values() if seen >= since)
        return sorted({name for names in live for name in names} - set(SIMULATORS))

    def backends(self) -> list[str]:
        """Names a job may ask for: the simulators, and the devices executors offer now."""
        return sorted(SIMULATORS) + self.devices()


GATEWAY = web.AppKey("gateway", Gateway)


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]
