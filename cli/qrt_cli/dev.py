"""`qrt dev`: gateway, scheduler, executor (and a simulated device) in one process, on the
in-process bus and the embedded store unless configured otherwise."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from qrt_common.bus.base import MessageBus
from qrt_common.lifecycle import connect_bus, open_configured_store, until_signalled
from qrt_common.registry import ProgramRegistry
from qrt_common.settings import Settings
from qrt_common.store.base import JobStore
from qrt_device.config import load_config
from qrt_device.service import Device
from qrt_executor.service import Executor
from qrt_gateway.main import start_server
from qrt_scheduler.service import Scheduler

logger = logging.getLogger("qrt")


@dataclass(slots=True)
class Platform:
    """Gateway, scheduler and executor sharing one store and one bus in this process, and
    (unless devices are configured or QRT_DEV_DEVICE is false) a simulated device."""

    settings: Settings
    store: JobStore
    bus: MessageBus
    scheduler: Scheduler
    executor: Executor
    runner: web.AppRunner
    url: str
    device: Device | None = None

    @classmethod
    async def start(cls, settings: Settings, store: JobStore | None = None) -> Platform:
        """Start everything; `store` (opened here) replaces the one the settings name."""
        device = None
        if settings.dev_device and not settings.device_addresses:
            device = await start_dev_device(settings)
            settings = settings.model_copy(update={"devices": device.rep_endpoint})
        if store is None:
            store = await open_configured_store(settings)
        else:
            await store.open()
        bus = await connect_bus(settings)
        registry = ProgramRegistry(settings.programs_dir)
        # The executor in this process is new, so any job the store still shows Running was
        # cut off by the last shutdown: run it again at once rather than after a grace period.
        scheduler = Scheduler(settings, store, bus, orphan_grace=0)
        await scheduler.start()
        executor = Executor(settings, bus, registry)
        await executor.start()
        runner = await start_server(settings, store, bus, registry, shutdown_timeout=2)
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}"
        await executor.beat()  # the gateway now listens: it learns the device backends at once
        logger.info("qrt is serving on %s (API page: %s/docs)", url, url)
        return cls(settings, store, bus, scheduler, executor, runner, url, device)

    async def stop(self) -> None:
        """Stop everything, the API first."""
        await self.runner.cleanup()
        await self.executor.close()
        await self.scheduler.close()
        await self.bus.close()
        await self.store.close()
        if self.device is not None:
            await self.device.close()


async def start_dev_device(settings: Settings) -> Device:
    """The simulated device of `qrt dev`: on free loopback ports unless addresses are set."""
    chosen = settings.model_fields_set
    rep = settings.device_rep_address if "device_rep_address" in chosen else "tcp://127.0.0.1:*"
    pub = settings.device_pub_address if "device_pub_address" in chosen else "tcp://127.0.0.1:*"
    device = Device(load_config(settings.device_config), rep, pub)
    await device.start()
    return device


async def serve(settings: Settings) -> None:
    """Run the whole platform until SIGINT or SIGTERM."""
    platform = await Platform.start(settings)
    try:
        await until_signalled()
    finally:
        logger.info("qrt is shutting down")
        await platform.stop()
