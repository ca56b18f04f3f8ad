"""Running the gateway: `serve` is what `qrt gateway` runs; `start_server` also serves `qrt dev`."""

from __future__ import annotations

import gc
import logging

from aiohttp import web

from qrt_common.bus.base import MessageBus
from qrt_common.lifecycle import backing_services, until_signalled
from qrt_common.registry import ProgramRegistry
from qrt_common.settings import Settings
from qrt_common.store.base import JobStore

from .app import create_app
from .context import Gateway
from .protocol import GatewayRunner
from .streams import StreamHub

logger = logging.getLogger("qrt")


async def start_server(
    settings: Settings,
    store: JobStore,
    bus: MessageBus,
    registry: ProgramRegistry,
    *,
    shutdown_timeout: float = 5.0,
) -> web.AppRunner:
    """The API listening on QRT_HOST:QRT_PORT (`runner.addresses` gives the bound address);
    `runner.cleanup()` stops it, waiting up to `shutdown_timeout` seconds for open requests."""
    app = create_app(Gateway(settings, store, bus, registry, StreamHub()))
    runner = GatewayRunner(app, handle_signals=False, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    # A garbage collection stops the event loop for as long as it looks at every object that
    # lives long: the process's start-up (modules, settings, under `qrt dev` the scheduler and
    # executor too) never goes away, so collections need not look at it again.
    gc.collect()
    gc.freeze()
    return runner


async def serve(settings: Settings) -> None:
    """Serve the API until SIGINT or SIGTERM, on the configured store and bus."""
    async with backing_services(settings) as (store, bus):
        runner = await start_server(settings, store, bus, ProgramRegistry.of(settings))
        logger.info("gateway serving on http://%s:%s", *runner.addresses[0][:2])
        try:
            await until_signalled()
        finally:
            await runner.cleanup()
