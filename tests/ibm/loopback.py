"""A guard that no connection or name lookup of this process leaves the loopback interface:
what the README's recipe promises of the stock qiskit-ibm-runtime client pointed at qrt."""

from __future__ import annotations

import atexit
import ipaddress
import socket
import sys
from collections.abc import Callable
from typing import Any

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: Any) -> bool:
    """Whether `host` (a name or an address) stays on this machine's loopback interface."""
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard or loopback address
    text = host.decode() if isinstance(host, bytes) else str(host)
    if text.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(text.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


class LoopbackGuard:
    """Refuses (OSError) and records every name lookup of a host other than the loopback's and
    every connection of an internet socket to such a host; `violations` lists them."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self._restore: list[Callable[[], None]] = []

    def _refuse(self, what: str) -> OSError:
        self.violations.append(what)
        return OSError(f"the loopback guard refused {what}")

    def install(self) -> LoopbackGuard:
        original_getaddrinfo = socket.getaddrinfo
        original_connect = socket.socket.connect
        original_connect_ex = socket.socket.connect_ex

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if not is_loopback(host):
                raise self._refuse(f"a name lookup of {host!r}")
            return original_getaddrinfo(host, *args, **kwargs)

        def checked(sock: socket.socket, address: Any) -> None:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not is_loopback(address[0]):
                raise self._refuse(f"a connection to {address!r}")

        def connect(sock: socket.socket, address: Any) -> None:
            checked(sock, address)
            original_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            checked(sock, address)
            return original_connect_ex(sock, address)

        socket.getaddrinfo = getaddrinfo
        socket.socket.connect = connect  # type: ignore[method-assign,assignment]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign,assignment]

        def restore() -> None:
            socket.getaddrinfo = original_getaddrinfo
            socket.socket.connect = original_connect  # type: ignore[method-assign]
            socket.socket.connect_ex = original_connect_ex  # type: ignore[method-assign]

        self._restore.append(restore)
        return self

    def uninstall(self) -> None:
        while self._restore:
            self._restore.pop()()


def guard_this_process() -> None:
    """Install the guard for the rest of this process; at exit, report what it refused on
    stderr (one `LOOPBACK GUARD:` line each) and exit with status 3 if it refused anything."""
    guard = LoopbackGuard().install()

    def report() -> None:
        for violation in guard.violations:
            print(f"LOOPBACK GUARD: refused {violation}", file=sys.stderr)
        if guard.violations:
            sys.stderr.flush()
            import os

            os._exit(3)

    atexit.register(report)
