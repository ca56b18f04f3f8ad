"""What every request handler can reach: settings, store, bus, registry and live streams."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from qrt_common.backends import SIMULATORS
from qrt_common.bus import MessageBus
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

    def backends(self) -> list[str]:
        """Names a job may ask for."""
        return sorted(SIMULATORS)


GATEWAY = web.AppKey("gateway", Gateway)


def gateway(request: web.Request) -> Gateway:
    return request.app[GATEWAY]
