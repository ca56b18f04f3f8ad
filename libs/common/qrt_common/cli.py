"""The `qrt` command: `qrt dev` runs the whole platform in one process on embedded defaults."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from .bus import MessageBus, open_bus
from .logs import configure_logging
from .registry import ProgramRegistry
from .settings import Settings
from .sqlite_store import open_store
from .store import JobStore

if TYPE_CHECKING:
    from aiohttp import web

    from qrt_executor.service import Executor
    from qrt_scheduler.service import Scheduler

logger = logging.getLogger("qrt")


@dataclass(slots=True)
class Platform:
    """Gateway, scheduler and executor sharing one store and one bus in this process."""

    settings: Settings
    store: JobStore
    bus: MessageBus
    scheduler: Scheduler
    executor: Executor
    runner: web.AppRunner
    url: str

    @classmethod
    async def start(cls, settings: Settings) -> Platform:
        from aiohttp import web

        from qrt_executor.service import Executor
        from qrt_gateway.app import create_app
        from qrt_gateway.context import Gateway
        from qrt_gateway.streams import StreamHub
        from qrt_scheduler.service import Scheduler

        store = open_store(settings.effective_store_url)
        await store.open()
        bus = open_bus(settings.bus_url)
        await bus.connect()
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
        logger.info("qrt is serving on %s (API page: %s/docs)", url, url)
        return cls(settings, store, bus, scheduler, executor, runner, url)

    async def stop(self) -> None:
        await self.runner.cleanup()
        await self.executor.close()
        await self.scheduler.close()
        await self.bus.close()
        await self.store.close()


async def _serve(settings: Settings) -> None:
    platform = await Platform.start(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        logger.info("qrt is shutting down")
        await platform.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qrt", description="qrt, a self-hosted quantum runtime")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dev = commands.add_parser(
        "dev", help="run gateway, scheduler and executor in one process on embedded defaults"
    )
    dev.add_argument("--host", help="address to listen on (QRT_HOST, default 127.0.0.1)")
    dev.add_argument("--port", type=int, help="port to listen on (QRT_PORT, default 8000)")
    dev.add_argument("--data-dir", help="where jobs are kept (QRT_DATA_DIR, default .qrt)")
    dev.add_argument(
        "--programs-dir", help="directory with programs.ini (QRT_PROGRAMS_DIR, default programs)"
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
            asyncio.run(_serve(settings))
        except OSError as exc:
            print(f"qrt: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
