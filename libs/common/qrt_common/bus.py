"""The message bus the services talk over, and its in-process implementation."""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import Unavailable

logger = logging.getLogger(__name__)

DELIVERY_LIMIT = 10
"""Deliveries of one message before it is given up on and dead-lettered."""

Handler = Callable[[dict[str, Any]], Awaitable[None]]
"""Handles one message; returning acknowledges it, raising rejects it."""


class BusUnavailable(Unavailable):
    """The bus cannot accept a message right now."""


class Rejected(Exception):
    """Raised by a handler for a message that can never be handled (it goes to dead letters)."""


class MessageBus(ABC):
    """Queues (each message to one consumer, kept until handled) and topics (a copy to everyone)."""

    async def connect(self) -> None:
        """Open connections; called once before use."""

    async def close(self) -> None:
        """Stop consumers and close connections."""

    @abstractmethod
    async def send(self, queue: str, body: dict[str, Any]) -> None:
        """Put a message on a queue; returns once the bus has accepted it."""

    @abstractmethod
    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 16) -> None:
        """Handle the queue's messages, up to `prefetch` at a time, until the bus closes."""

    @abstractmethod
    async def publish(self, topic: str, body: dict[str, Any]) -> None:
        """Send a copy of a message to every current subscriber of a topic."""

    @abstractmethod
    async def subscribe(self, topic: str, handler: Handler) -> None:
        """Receive, in order, every message published on a topic from now on."""

    async def is_ready(self) -> bool:
        """True when the bus can take messages."""
        return True

    async def consume_dead_letters(self, handler: Handler) -> None:
        """Handle messages no consumer could handle; each body gains `_reason` and `_source`."""

    @property
    def connected_since(self) -> float:
        """`time.monotonic()` of the last (re)connection: silence before it says nothing."""
        return 0.0


def _copy(body: dict[str, Any]) -> dict[str, Any]:
    # A JSON round trip gives in-process consumers exactly what a broker would hand them.
    result: dict[str, Any] = json.loads(json.dumps(body))
    return result


class InMemoryBus(MessageBus):
    """A bus inside one process, for `qrt dev` and tests. Nothing survives the process;
    the store holds the jobs, and the scheduler re-reads them at start-up."""

    def __init__(self, *, retry_delay: float = 1.0) -> None:
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._subscribers: dict[str, list[asyncio.Queue[dict[str, Any]]]] = {}
        self._dead_letters: list[Handler] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._retry_delay = retry_delay

    def _queue(self, name: str) -> asyncio.Queue[dict[str, Any]]:
        return self._queues.setdefault(name, asyncio.Queue())

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def send(self, queue: str, body: dict[str, Any]) -> None:
        self._queue(queue).put_nowait(_copy(body))

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 16) -> None:
        source = self._queue(queue)
        for n in range(prefetch):
            self._spawn(self._work(queue, source, handler), f"consume:{queue}:{n}")

    async def publish(self, topic: str, body: dict[str, Any]) -> None:
        for inbox in self._subscribers.get(topic, ()):
            inbox.put_nowait(_copy(body))

    async def subscribe(self, topic: str, handler: Handler) -> None:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers.setdefault(topic, []).append(inbox)
        self._spawn(self._work(topic, inbox, handler), f"subscribe:{topic}")

    async def consume_dead_letters(self, handler: Handler) -> None:
        self._dead_letters.append(handler)

    async def _work(
        self, name: str, source: asyncio.Queue[dict[str, Any]], handler: Handler
    ) -> None:
        while True:
            body = await source.get()
            for delivery in range(1, DELIVERY_LIMIT + 1):
                try:
                    await handle_patiently(handler, body)
                    break
                except asyncio.CancelledError:
                    raise
                except (Rejected, ValueError) as exc:
                    await self._dead_letter(name, body, f"{type(exc).__name__}: {exc}")
                    break
                except Exception:
                    logger.exception(
                        "handling a message from %s failed (delivery %d)", name, delivery
                    )
                    await asyncio.sleep(self._retry_delay)
            else:
                await self._dead_letter(
                    name, body, f"not handled after {DELIVERY_LIMIT} deliveries"
                )

    async def _dead_letter(self, source: str, body: dict[str, Any], reason: str) -> None:
        logger.error("message from %s dead-lettered: %s", source, reason)
        for handler in self._dead_letters:
            try:
                await handler({**body, "_reason": reason, "_source": source})
            except Exception:
                logger.exception("a dead letter could not be recorded")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()


async def handle_patiently(
    handler: Handler, body: dict[str, Any], *, max_delay: float = 10.0
) -> None:
    """Run `handler` on `body`; while a backing service is unavailable, wait and run it again.

    A message is not poison because the store is down: retrying it in place, rather than
    redelivering it, keeps it from running into the delivery limit during an outage.
    """
    delay = 0.5
    while True:
        try:
            await handler(body)
            return
        except Unavailable as exc:
            logger.warning("a backing service is unavailable, retrying in %.1f s: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


async def send_until_accepted(
    bus: MessageBus, queue: str, body: dict[str, Any], *, max_delay: float = 5.0
) -> None:
    """Send, retrying with backoff while the bus is unavailable: for messages that must not
    be lost and may arrive twice (every consumer is idempotent)."""
    delay = 0.1
    while True:
        try:
            await bus.send(queue, body)
            return
        except BusUnavailable as exc:
            logger.warning("bus unavailable, retrying in %.1f s: %s", delay, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


def open_bus(url: str, namespace: str = "qrt") -> MessageBus:
    """The bus for a `QRT_BUS_URL`: `memory://`, or `amqp://` for RabbitMQ."""
    if url.startswith("memory:"):
        return InMemoryBus()
    if url.startswith(("amqp://", "amqps://")):
        from .rabbitmq import RabbitBus

        return RabbitBus(url, namespace=namespace)
    raise ValueError(f"unsupported QRT_BUS_URL {url!r}: use memory:// or amqp://")
