"""What every service's start function does around its service: open the configured store and
bus (waiting until they answer), serve health and metrics, and run until a signal comes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from aiohttp import web

from .bus import open_bus
from .bus.base import MessageBus
from .metrics import ReadinessCheck, serve_operations
from .retry import until_available
from .settings import Settings
from .store import open_store
from .store.base import JobStore

logger = logging.getLogger("qrt")


async def connect_bus(settings: Settings) -> MessageBus:
    """The configured bus, connected; waits (with backoff) until the broker answers."""
    bus = open_bus(settings.bus_url, settings.bus_namespace)
    await until_available(bus.connect, what="bus")
    return bus


async def open_configured_store(settings: Settings) -> JobStore:
    """The configured store, open; waits (with backoff) until it answers."""
    store = open_store(settings.effective_store_url)
    await until_available(store.open, what="store")
    return store


@contextlib.asynccontextmanager
async def backing_services(settings: Settings) -> AsyncIterator[tuple[JobStore, MessageBus]]:
    """The configured store and bus, open for the block and closed after it."""
    store = await open_configured_store(settings)
    try:
        bus = await connect_bus(settings)
        try:
            yield store, bus
        finally:
            await bus.close()
    finally:
        await store.close()


async def serve_health(settings: Settings, checks: dict[str, ReadinessCheck]) -> web.AppRunner:
    """`/healthz`, `/readyz` (the `checks`) and `/metrics` on QRT_HOST:QRT_OPS_PORT."""
    runner = await serve_operations(settings.host, settings.ops_port, checks)
    logger.info("health and metrics on http://%s:%s", *runner.addresses[0][:2])
    return runner


async def until_signalled(draining: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
    """Wait for SIGINT or SIGTERM; with `draining`, run it first (a second signal cuts it)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    if draining is not None:
        stop.clear()
        drain = asyncio.create_task(draining())
        interrupted = asyncio.create_task(stop.wait())
        await asyncio.wait({drain, interrupted}, return_when=asyncio.FIRST_COMPLETED)
        drain.cancel()
        interrupted.cancel()
