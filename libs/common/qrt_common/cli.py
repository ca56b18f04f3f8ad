"""The `qrt` command: `qrt dev` runs the whole platform in one process; `qrt gateway`,
`qrt scheduler`, `qrt executor` and `qrt device` run one service each."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .bus import MessageBus, open_bus
from .errors import ConfigurationError, Unavailable
from .logs import configure_logging
from .metrics import ReadinessCheck, serve_operations
from .registry import ProgramRegistry
from .settings import Settings
from .store import JobStore, open_store

if TYPE_CHECKING:
    from aiohttp import web

    from qrt_device.service import Device
    from qrt_executor.oneshot import OneShotRunner
    from qrt_executor.service import Executor
    from qrt_scheduler.leader import LeaderElector
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
        from aiohttp import web

        from qrt_executor.service import Executor
        from qrt_gateway.app import create_app
        from qrt_gateway.context import Gateway
        from qrt_gateway.streams import StreamHub
        from qrt_scheduler.service import Scheduler

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
        app = create_app(Gateway(settings, store, bus, registry, StreamHub()))
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}"
        await executor.beat()  # the gateway now listens: it learns the device backends at once
        logger.info("qrt is serving on %s (API page: %s/docs)", url, url)
        return cls(settings, store, bus, scheduler, executor, runner, url, device)

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.executor.close()
        await self.scheduler.close()
        await self.bus.close()
        await self.store.close()
        if self.device is not None:
            await self.device.close()


async def start_dev_device(settings: Settings) -> Device:
    """The simulated device of `qrt dev`: on free loopback ports unless addresses are set."""
    from qrt_device.config import load_config
    from qrt_device.service import Device

    chosen = settings.model_fields_set
    rep = settings.device_rep_address if "device_rep_address" in chosen else "tcp://127.0.0.1:*"
    pub = settings.device_pub_address if "device_pub_address" in chosen else "tcp://127.0.0.1:*"
    device = Device(load_config(settings.device_config), rep, pub)
    await device.start()
    return device


async def connect_bus(settings: Settings) -> MessageBus:
    """The configured bus, connected; waits (with backoff) until the broker answers."""
    bus = open_bus(settings.bus_url, settings.bus_namespace)
    await _with_backoff("bus", bus.connect)
    return bus


async def open_configured_store(settings: Settings) -> JobStore:
    """The configured store, open; waits (with backoff) until it answers."""
    store = open_store(settings.effective_store_url)
    await _with_backoff("store", store.open)
    return store


async def _with_backoff(what: str, attempt: Callable[[], Coroutine[Any, Any, None]]) -> None:
    delay = 0.5
    while True:
        try:
            await attempt()
            return
        except Unavailable as exc:
            logger.warning("%s unavailable, retrying in %.1f s: %s", what, delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


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


async def _serve_operations(settings: Settings, checks: dict[str, ReadinessCheck]) -> web.AppRunner:
    runner = await serve_operations(settings.host, settings.ops_port, checks)
    logger.info("health and metrics on http://%s:%s", *runner.addresses[0][:2])
    return runner


async def _until_signalled(draining: Callable[[], Coroutine[Any, Any, None]] | None = None) -> None:
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


async def _serve_dev(settings: Settings) -> None:
    platform = await Platform.start(settings)
    try:
        await _until_signalled()
    finally:
        logger.info("qrt is shutting down")
        await platform.stop()


async def _serve_gateway(settings: Settings) -> None:
    from aiohttp import web

    from qrt_gateway.app import create_app
    from qrt_gateway.context import Gateway
    from qrt_gateway.streams import StreamHub

    async with backing_services(settings) as (store, bus):
        registry = ProgramRegistry(settings.programs_dir)
        runner = web.AppRunner(
            create_app(Gateway(settings, store, bus, registry, StreamHub())),
            handle_signals=False,
            shutdown_timeout=5,
        )
        await runner.setup()
        await web.TCPSite(runner, settings.host, settings.port).start()
        logger.info("gateway serving on http://%s:%s", *runner.addresses[0][:2])
        try:
            await _until_signalled()
        finally:
            await runner.cleanup()


async def _serve_scheduler(settings: Settings) -> None:
    from qrt_scheduler.service import Scheduler

    async with backing_services(settings) as (store, bus):
        checks: dict[str, ReadinessCheck] = {"store": store.is_ready, "bus": bus.is_ready}
        operations = await _serve_operations(settings, checks)
        scheduler = Scheduler(settings, store, bus)
        elector = _scheduler_elector(settings)
        signalled = asyncio.create_task(_until_signalled())
        watched: set[asyncio.Task[None]] = {signalled}
        try:
            if elector is not None:
                acquiring = asyncio.create_task(elector.acquire())
                watched.add(acquiring)
                await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if signalled.done():
                    return
                watched.remove(acquiring)  # acquired: from now on, watch for its loss
                watched.add(asyncio.create_task(elector.keep()))
            await scheduler.start()
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if signalled not in done:
                logger.error("leadership lost: exiting, so that a new replica stands by")
                raise SystemExit(1)
        finally:
            for task in watched:
                task.cancel()
            await scheduler.close()
            if elector is not None:
                await elector.release()
            await operations.cleanup()


def _one_shot_runner(settings: Settings) -> OneShotRunner | None:
    """Kubernetes Jobs for one-shot programs when QRT_ONESHOT_RUNNER says so; else the default
    (bubblewrap on this machine)."""
    if settings.oneshot_runner != "kubernetes":
        return None
    from qrt_executor.kubernetes_jobs import KubernetesRunner, ProgramPodSpec

    from .kube import current_namespace, in_cluster_api

    if not settings.program_image:
        raise ConfigurationError("QRT_ONESHOT_RUNNER=kubernetes needs QRT_PROGRAM_IMAGE")
    spec = ProgramPodSpec(
        namespace=settings.program_namespace or current_namespace(),
        image=settings.program_image,
        labels=settings.program_pod_label_map,
        cpu=settings.program_cpu,
        memory=settings.program_memory,
    )
    return KubernetesRunner(in_cluster_api(), spec)


def _scheduler_elector(settings: Settings) -> LeaderElector | None:
    """The Lease election among scheduler replicas, when QRT_LEASE_NAME names a Lease."""
    if not settings.lease_name:
        return None
    from qrt_scheduler.leader import LeaderElector, LeaseTerms

    from .kube import current_namespace, in_cluster_api

    return LeaderElector(
        in_cluster_api(),
        name=settings.lease_name,
        namespace=settings.lease_namespace or current_namespace(),
        identity=f"{socket.gethostname()}-{os.getpid()}",
        terms=LeaseTerms.lasting(settings.lease_duration),
    )


async def _serve_executor(settings: Settings) -> None:
    from qrt_executor.service import Executor

    bus = await connect_bus(settings)
    executor = Executor(
        settings, bus, ProgramRegistry(settings.programs_dir), one_shot=_one_shot_runner(settings)
    )
    await executor.start()
    checks: dict[str, ReadinessCheck] = {"bus": bus.is_ready, "devices": executor.devices.is_ready}
    operations = await _serve_operations(settings, checks)

    async def drain() -> None:
        logger.info("draining", extra={"seconds": settings.drain_seconds})
        await executor.drain(settings.drain_seconds)

    try:
        await _until_signalled(drain)
    finally:
        await operations.cleanup()
        await executor.close()
        await bus.close()


async def _serve_device(settings: Settings) -> None:
    from qrt_device.config import ConfigError, load_config
    from qrt_device.service import Device

    try:
        config = load_config(settings.device_config)
    except ConfigError as exc:
        print(f"qrt: invalid device configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    device = Device(config, settings.device_rep_address, settings.device_pub_address)
    await device.start()
    logger.info("device %s answering on %s", config.name, device.rep_endpoint)
    operations = await _serve_operations(settings, {"sockets": device.is_ready})
    try:
        await _until_signalled()
    finally:
        await operations.cleanup()
        await device.close()


SERVICES: dict[str, tuple[str, Callable[[Settings], Coroutine[Any, Any, None]]]] = {
    "dev": ("run gateway, scheduler and executor in one process on embedded defaults", _serve_dev),
    "gateway": ("run the API gateway", _serve_gateway),
    "scheduler": ("run the scheduler (and the job ledger)", _serve_scheduler),
    "executor": ("run an executor; SIGTERM drains it", _serve_executor),
    "device": ("run a simulated quantum device on the 2200/2300 ZeroMQ interface", _serve_device),
}


def _device_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--config",
        dest="device_config",
        metavar="FILE",
        help="TOML file (QRT_DEVICE_CONFIG; default: a Starmon-5)",
    )
    command.add_argument(
        "--rep-address",
        dest="device_rep_address",
        metavar="ADDRESS",
        help="request socket (QRT_DEVICE_REP_ADDRESS, default tcp://*:4203)",
    )
    command.add_argument(
        "--pub-address",
        dest="device_pub_address",
        metavar="ADDRESS",
        help="state publishing socket (QRT_DEVICE_PUB_ADDRESS, default tcp://*:4204)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qrt", description="qrt, a self-hosted quantum runtime")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, _) in SERVICES.items():
        command = commands.add_parser(name, help=summary, description=summary)
        if name == "device":
            _device_arguments(command)
            continue
        command.add_argument("--host", help="address to listen on (QRT_HOST, default 127.0.0.1)")
        command.add_argument("--port", type=int, help="port to listen on (QRT_PORT, default 8000)")
        command.add_argument("--data-dir", help="where jobs are kept (QRT_DATA_DIR, default .qrt)")
        command.add_argument(
            "--programs-dir",
            help="directory with programs.ini (QRT_PROGRAMS_DIR, default programs)",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, Any] = {
        k: v for k, v in vars(args).items() if k != "command" and v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            print(f"qrt: invalid setting {where}: {error['msg']}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, service=f"qrt-{args.command}")
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(SERVICES[args.command][1](settings))
        except (OSError, ConfigurationError) as exc:
            print(f"qrt: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
