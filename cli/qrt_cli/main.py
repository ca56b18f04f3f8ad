# PYTHON_ARGCOMPLETE_OK
"""The `qrt` command line: one subcommand a service, each calling that service's `serve`; the
client commands (`login`, `jobs`, `programs`, `backends`) talking to a platform over HTTP; and
`qrt admin`. Shell completion comes from argcomplete (README, "From the command line")."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import logging
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import argcomplete
from pydantic import ValidationError

from qrt_common.errors import ConfigurationError, DeviceConfigError
from qrt_common.logs import configure_logging
from qrt_common.settings import Settings

from . import (
    admin,
    job_commands,
    platform_commands,
    preflight,
    program_commands,
    remote,
    service_commands,
)
from .version import VERSION


@dataclass(frozen=True, slots=True)
class Command:
    """A `qrt` subcommand: what it runs, and the module whose `serve(settings)` runs it (imported
    only when chosen: each service imports what it alone needs)."""

    summary: str
    module: str

    def serve(self) -> Callable[[Settings], Coroutine[Any, Any, None]]:
        """The service's `serve(settings)`, its module imported now."""
        serve: Callable[[Settings], Coroutine[Any, Any, None]]
        serve = importlib.import_module(self.module).serve
        return serve


SERVICES: dict[str, Command] = {
    "dev": Command(
        "run gateway, scheduler and executor in one process on embedded defaults", "qrt_cli.dev"
    ),
    "gateway": Command("run the API gateway", "qrt_gateway.main"),
    "scheduler": Command("run the scheduler (and the job ledger)", "qrt_scheduler.main"),
    "executor": Command("run an executor; SIGTERM drains it", "qrt_executor.main"),
    "device": Command(
        "run a simulated quantum device on the 2200/2300 ZeroMQ interface", "qrt_device.main"
    ),
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


SERVICE_OPTIONS: dict[str, tuple[str, ...]] = {
    "dev": ("host", "port", "data_dir", "programs_dir", "auth", "log_format"),
    "gateway": ("host", "port", "data_dir", "programs_dir", "log_format"),
    "scheduler": ("host", "ops_port", "data_dir", "log_format"),
    "executor": ("host", "ops_port", "programs_dir", "log_format"),
    "device": ("log_format",),
}
"""The options each service offers: only the settings it uses."""


def _service_arguments(command: argparse.ArgumentParser, name: str) -> None:
    options = SERVICE_OPTIONS[name]
    if "host" in options:
        what = "the API" if "port" in options else "health and metrics"
        command.add_argument("--host", help=f"address to serve {what} on (QRT_HOST, default "
                             "127.0.0.1)")  # fmt: skip
    if "port" in options:
        command.add_argument("--port", type=int, help="port to listen on (QRT_PORT, default 8000)")
    if "ops_port" in options:
        command.add_argument("--ops-port", type=int, help="port of /healthz, /readyz and "
                             "/metrics (QRT_OPS_PORT, default 9100)")  # fmt: skip
    if "data_dir" in options:
        command.add_argument("--data-dir", help="where jobs are kept (QRT_DATA_DIR, default .qrt)")
    if "programs_dir" in options:
        command.add_argument(
            "--programs-dir",
            help="a directory of your programs (programs.ini), served besides the bundled ones "
            "(QRT_PROGRAMS_DIR; default ./programs when it holds a programs.ini)",
        )
    if "auth" in options:
        command.add_argument(
            "--auth",
            action="store_true",
            default=None,
            help="require API keys (QRT_AUTH; without it qrt dev serves one user, no keys)",
        )
    command.add_argument(
        "--log-format",
        choices=("json", "text"),
        help="json: one object a line (default), text: lines for people (QRT_LOG_FORMAT)",
    )


def parser() -> argparse.ArgumentParser:
    """The `qrt` argument parser."""
    parser = argparse.ArgumentParser(prog="qrt", description="qrt, a self-hosted quantum runtime")
    parser.add_argument("--version", action="version", version=f"qrt {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, service in SERVICES.items():
        command = commands.add_parser(name, help=service.summary, description=service.summary)
        if name == "device":
            _device_arguments(command)
        _service_arguments(command, name)
    common = remote.common_options()
    platform_commands.add_parsers(commands, common)
    job_commands.add_parser(commands, common)
    program_commands.add_parser(commands, common)
    service_commands.add_parser(commands, common)
    admin.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run `qrt` with `argv` (default: the process's arguments); returns the exit code."""
    command_line = parser()
    argcomplete.autocomplete(command_line)
    args = command_line.parse_args(argv)
    if hasattr(args, "client_action"):  # talks to a platform: no server settings involved
        return remote.run(args)
    overrides: dict[str, Any] = {
        k: v for k, v in vars(args).items() if k in Settings.model_fields and v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            print(_invalid_setting(error), file=sys.stderr)
        return 2
    if args.command == "admin":
        return asyncio.run(admin.run(settings, args))
    # What the checks would log says their one line too: no log before logging is set up.
    logging.getLogger().addHandler(logging.NullHandler())
    try:
        warnings = preflight.check(args.command, settings)
        # Held (open) until this function returns: while the platform runs.
        store_lock = preflight.hold_store(settings) if args.command == "dev" else None
    except DeviceConfigError as exc:
        print(f"qrt: invalid device configuration: {exc}", file=sys.stderr)
        return 2
    except ConfigurationError as exc:
        print(f"qrt: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, service=f"qrt-{args.command}", form=settings.log_format)
    for warning in warnings:
        logging.getLogger("qrt").warning(warning)
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(SERVICES[args.command].serve()(settings))
        except DeviceConfigError as exc:
            print(f"qrt: invalid device configuration: {exc}", file=sys.stderr)
            return 2
        except (OSError, ConfigurationError) as exc:
            print(f"qrt: {exc}", file=sys.stderr)
            return 1
        finally:
            if store_lock is not None:
                store_lock.close()
    return 0


def _invalid_setting(error: Any) -> str:
    """One line for a setting pydantic refused: its name, why, and where it came from."""
    name = ".".join(str(p) for p in error["loc"])
    why = str(error["msg"]).removeprefix("Value error, ")
    given = error.get("input")
    source = f" (QRT_{name.upper()}={given!r})" if isinstance(given, str) else ""
    return f"qrt: invalid setting {name}: {why}{source}"
