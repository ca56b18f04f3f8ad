"""Bounds on the HTTP connections a process serves (the gateway's API and every service's
health and metrics port): however many clients connect and then send nothing, or never finish
a request, they cannot take every file descriptor of the process, which its jobs, its store
and its broker need too.

- A connection with no request in progress closes `KEEPALIVE_SECONDS` after it opened or
  after its last response (aiohttp's own default is an hour), the head of a request sent
  slowly included.
- A process keeps at most `connection_limit()` connections open at once, all its servers
  together: half its open-file limit (RLIMIT_NOFILE), at least `FEWEST_CONNECTIONS`. At the
  limit a new connection closes the oldest one with no request in progress (so that clients
  holding connections open and silent cannot keep out one that asks something), or, where
  every connection is busy with a request, is closed itself; one WARNING a minute says so.
  (A request whose body comes a byte at a time is busy until it completes: nothing here
  bounds that; a reverse proxy's body timeout does.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import resource
import time
from collections import OrderedDict
from typing import Any, cast

from aiohttp import web

logger = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 75.0
"""How long a connection may stay open with no request in progress."""

FEWEST_CONNECTIONS = 64
"""The least `connection_limit` gives, however low the open-file limit."""

WARN_EVERY_SECONDS = 60.0
"""At most one warning this often while connections are refused."""


def connection_limit() -> int:
    """How many HTTP connections this process keeps open at once: half its open-file limit,
    at least FEWEST_CONNECTIONS."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(FEWEST_CONNECTIONS, soft // 2)


@dataclasses.dataclass(slots=True)
class _Tally:
    """The process's open connections (all its servers), oldest first, and the connections
    closed for new ones since the last warning."""

    connections: OrderedDict[CappedConnection, None] = dataclasses.field(
        default_factory=OrderedDict
    )
    refused: int = 0
    warned: float = 0.0


_tally = _Tally()


def open_connections() -> int:
    """How many HTTP connections this process's servers hold open now."""
    return len(_tally.connections)


class CappedConnection(web.RequestHandler):
    """A server connection counted against `connection_limit()`: one beyond it is closed as
    soon as it is made."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        connections = _tally.connections
        if len(connections) >= connection_limit():
            _warn()
            idle = next((c for c in connections if c.idle), None)
            if idle is None:
                # Not registered with its server: connection_lost has nothing to undo.
                self._manager = None
                cast(asyncio.Transport, transport).abort()
                return
            idle.forget()
            idle.force_close()
        connections[self] = None
        super().connection_made(transport)

    @property
    def idle(self) -> bool:
        """Waiting for a request (or for the rest of its head), none in progress."""
        waiter = self._waiter
        return waiter is not None and not waiter.done() and not self._request_in_progress

    def forget(self) -> None:
        """No longer count this connection."""
        _tally.connections.pop(self, None)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.forget()
        super().connection_lost(exc)


def _warn() -> None:
    _tally.refused += 1
    now = time.monotonic()
    if now - _tally.warned >= WARN_EVERY_SECONDS:
        logger.warning(
            "HTTP connections at the most this process keeps (%d, half its open-file limit): "
            "new ones close the oldest idle one, or are closed; %d so since the last warning",
            len(_tally.connections), _tally.refused,
            extra={"open_connections": len(_tally.connections), "closed": _tally.refused},
        )  # fmt: skip
        _tally.warned, _tally.refused = now, 0


class CappedServer(web.Server):
    """An aiohttp server whose connections are `connection_class`es."""

    connection_class: type[CappedConnection] = CappedConnection

    def __call__(self) -> web.RequestHandler:
        return self.connection_class(self, loop=self._loop, **self._kwargs)


class CappedRunner(web.AppRunner):
    """An `AppRunner` whose connections are bounded as this module says; `server_class` makes
    its server (a subclass may give its connections more to do)."""

    server_class: type[CappedServer] = CappedServer

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", KEEPALIVE_SECONDS)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return self.server_class(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **server._kwargs,
        )
