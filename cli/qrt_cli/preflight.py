"""What `qrt dev` and the services check before they start anything, so that a configuration
that cannot work is one line and a non-zero exit at once: the data directory, the ports, the
device configuration and the programs (README, "Configuration").

The settings themselves are checked when they are read (`Settings`' validators): a value of
the wrong type or out of range never gets this far.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path
from typing import IO

from qrt_common.account_admin import check_bootstrap_key
from qrt_common.errors import ConfigurationError
from qrt_common.registry import ProgramRegistry
from qrt_common.settings import Settings

USES_STORE = frozenset({"dev", "gateway", "scheduler"})
"""Commands that open the job store (the embedded one lives in the data directory)."""
LISTENS = frozenset({"dev", "gateway"})
"""Commands that serve the API on QRT_HOST:QRT_PORT."""
OPERATIONS = frozenset({"scheduler", "executor", "device"})
"""Commands that serve health and metrics on QRT_HOST:QRT_OPS_PORT."""
RUNS_PROGRAMS = frozenset({"dev", "gateway", "executor"})
"""Commands that read the programs directories."""


def check(command: str, settings: Settings) -> list[str]:
    """Check what `command` (dev, gateway, ...) needs of `settings`; raises ConfigurationError
    with one line naming the setting at fault. Returns warnings to show (a lone service on the
    in-process bus)."""
    if command in USES_STORE and not settings.store_url:
        check_data_dir(settings.data_dir)
    if command in LISTENS:
        check_port(settings.host, settings.port, "QRT_PORT (--port)")
    if command in OPERATIONS:
        check_port(settings.host, settings.ops_port, "QRT_OPS_PORT")
    if command in ("dev", "device") and settings.device_config is not None:
        check_device_config(settings.device_config)
    if command in RUNS_PROGRAMS:
        ProgramRegistry.of(settings).check()
    if command in LISTENS and settings.auth and settings.bootstrap_admin_key:
        check_bootstrap_key(settings.bootstrap_admin_key)
    warnings = []
    if command in ("gateway", "scheduler", "executor") and settings.bus_url.startswith("memory:"):
        others = "a scheduler and an executor" if command == "gateway" else "the other services"
        warnings.append(
            f"qrt {command}: QRT_BUS_URL is memory://, the in-process bus: {others} cannot "
            "reach this process, so jobs stay Queued. Set QRT_BUS_URL=amqp://... for every "
            "service, or run `qrt dev` for all of them in one process."
        )
    return warnings


def check_data_dir(data_dir: Path) -> None:
    """The data directory is a directory that can be written, or can be made (it is not made
    here: nothing is, before every check passed)."""
    where = f"QRT_DATA_DIR (--data-dir) {data_dir}"
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigurationError(f"{where} is a file, not a directory")
    existing = data_dir.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigurationError(f"{where} cannot be made: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        verb = "written" if existing == data_dir.absolute() else f"made in {existing}"
        raise ConfigurationError(f"{where} cannot be {verb}: permission denied")


def hold_store(settings: Settings) -> IO[str] | None:
    """For `qrt dev` on a SQLite store, the store's lock file (`<file>.dev-lock`), locked
    (flock) for as long as the returned file stays open, so that a second `qrt dev` on the
    same store stops at once instead of taking the first one's running jobs for orphans and
    running them again. Raises ConfigurationError naming the process that holds it; None for
    MongoDB. Makes the data directory, so it comes after every check."""
    url = settings.effective_store_url
    if not url.startswith("sqlite:///"):
        return None
    database = Path(url.removeprefix("sqlite:///"))
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = open(database.with_name(database.name + ".dev-lock"), "a+")  # noqa: SIM115
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        where = "QRT_STORE_URL" if settings.store_url else "QRT_DATA_DIR (--data-dir)"
        raise ConfigurationError(
            f"another qrt dev (pid {holder}) uses the store {database}; stop it, or give this "
            f"one another {where}"
        ) from None
    lock.truncate(0)
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def check_port(host: str, port: int, setting: str) -> None:
    """`host` resolves and something may listen on `host`:`port` (port 0 always can): binds
    it and lets go."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        why = getattr(exc, "strerror", None) or exc
        raise ConfigurationError(f"QRT_HOST (--host) {host!r} cannot be resolved: {why}") from None
    if port == 0:
        return
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ConfigurationError(
                        f"port {port} on {host} is taken by another program; choose another "
                        f"with {setting}"
                    ) from None
                raise ConfigurationError(
                    f"cannot listen on {host}:{port}: {exc.strerror or exc} (QRT_HOST, {setting})"
                ) from None


def check_device_config(path: Path) -> None:
    """The simulated device's TOML configuration can be read and is valid (raises
    DeviceConfigError, a ConfigurationError, saying why)."""
    from qrt_device.config import load_config  # the device's own reader, only when needed

    load_config(path)
