"""`qrt dev`: gateway, scheduler and executor in one process, on the in-process bus and the
embedded store unless configured otherwise, and a simulated device in a process of its own
(`dev_device.py`)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from aiohttp import web

from qrt_common.bus.base import MessageBus
from qrt_common.lifecycle import connect_bus, open_configured_store, until_signalled
from qrt_common.registry import ProgramRegistry
from qrt_common.settings import Settings
from qrt_common.store.base import JobStore
from qrt_device.config import load_config
from qrt_executor.service import Executor
from qrt_gateway.main import start_server
from qrt_scheduler.service import Scheduler

from .dev_device import DevDevice
from .version import VERSION

logger = logging.getLogger("qrt")


@dataclass(slots=True)
class Platform:
    """Gateway, scheduler and executor sharing one store and one bus in this process, and
    (unless devices are configured or QRT_DEV_DEVICE is false) a simulated device in a process
    of its own."""

    settings: Settings
    store: JobStore
    bus: MessageBus
    scheduler: Scheduler
    executor: Executor
    runner: web.AppRunner
    url: str
    registry: ProgramRegistry
    device: DevDevice | None = None

    @classmethod
    async def start(cls, settings: Settings, store: JobStore | None = None) -> Platform:
        """Start everything; `store` (opened here) replaces the one the settings name."""
        device = None
        if settings.dev_device and not settings.device_addresses:
            device = await DevDevice.start(settings)
            settings = settings.model_copy(update={"devices": device.rep_endpoint})
        try:
            return await cls._start(settings, store, device)
        except BaseException:
            if device is not None:
                await device.stop()
            raise

    @classmethod
    async def _start(
        cls, settings: Settings, store: JobStore | None, device: DevDevice | None
    ) -> Platform:
        if store is None:
            store = await open_configured_store(settings)
        else:
            await store.open()
        bus = await connect_bus(settings)
        registry = ProgramRegistry.of(settings)
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
        if settings.auth:
            logger.info("API keys are required (create them with `qrt admin keys create`)")
        else:
            logger.warning(
                "single-user mode: no API keys, anyone who reaches %s may use everything"
                " (qrt dev --auth requires keys)",
                url,
            )
        return cls(settings, store, bus, scheduler, executor, runner, url, registry, device)

    async def stop(self) -> None:
        """Stop everything, the API first."""
        await self.runner.cleanup()
        await self.executor.close()
        await self.scheduler.close()
        await self.bus.close()
        await self.store.close()
        if self.device is not None:
            await self.device.stop()


def banner(platform: Platform) -> str:
    """What `qrt dev` tells a person once it serves: where the API, its docs and the web
    console are, the device, the data directory, the programs, and whether keys are needed."""
    settings = platform.settings
    if platform.device is not None:
        name = load_config(settings.device_config).name
        device = f"{name}, simulated ({platform.device.rep_endpoint})"
    elif settings.device_addresses:
        device = ", ".join(settings.device_addresses)
    else:
        device = "none (QRT_DEV_DEVICE=false)"
    store = settings.store_url or f"{settings.data_dir.resolve()}"
    directories = [os.fspath(d.directory) for d in platform.registry.directories]
    programs = f"{len(platform.registry.all())} from {', '.join(directories)}"
    if settings.auth:
        mode = "API keys required (qrt admin keys create)"
    else:
        mode = "single user, no API keys: anyone who reaches the API may use everything"
    rows = [
        ("API", platform.url),
        ("docs", f"{platform.url}/docs"),
        ("console", f"{platform.url}/ui/"),
        ("device", device),
        ("data", store),
        ("programs", programs),
        ("mode", mode),
    ]
    lines = [f"qrt {VERSION} is running", *(f"  {k:<9} {v}" for k, v in rows)]
    problems = platform.registry.problems()
    lines += [f"  ! {problem}" for problem in problems]
    lines.append("Ctrl-C stops it; the services' logs follow on stderr.")
    return "\n".join(lines)


async def serve(settings: Settings) -> None:
    """Run the whole platform until SIGINT or SIGTERM."""
    platform = await Platform.start(settings)
    print(banner(platform), flush=True)
    try:
        await until_signalled()
    finally:
        logger.info("qrt is shutting down")
        await platform.stop()
