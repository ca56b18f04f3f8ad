"""The message bus the services talk over: queues (each message to one consumer, kept until it
is handled) and topics (a copy to every current subscriber, nothing kept)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import MalformedMessage
from ..retry import Backoff, until_available

REDELIVERY_LIMIT = 10
"""How often a message whose handler failed is delivered again before it is given up on and
dead-lettered: it is handled at most 11 times (RabbitMQ's `x-delivery-limit` counts so)."""

Handler = Callable[[dict[str, Any]], Awaitable[None]]
"""Handles one message; returning acknowledges it. Raising `MalformedMessage` sends it to the
dead letters, `Unavailable` retries it in place (see `handle_patiently`), anything else returns
it to its queue until the delivery limit."""


class MessageBus(ABC):
    """Queues and topics; every implementation keeps the delivery rules of `Handler`."""

    async def connect(self) -> None:
        """Open connections; called once before use."""

    async def close(self) -> None:
        """Stop consumers and close connections."""

    @abstractmethod
    async def send(self, queue: str, body: dict[str, Any]) -> None:
        """Put a message on a queue; returns once the bus has accepted it. Raises
        BusUnavailable if it cannot."""

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


async def handle_patiently(handler: Handler, body: dict[str, Any]) -> None:
    """Run `handler` on `body`; while a backing service is unavailable, wait and run it again.

    A message is not poison because the store is down: retrying it in place, rather than
    redelivering it, keeps it from running into the delivery limit during an outage.
    """
    await until_available(lambda: handler(body), what="a backing service")


async def send_until_accepted(bus: MessageBus, queue: str, body: dict[str, Any]) -> None:
    """Send, retrying with backoff while the bus is unavailable: for messages that must not
    be lost and may arrive twice (every consumer is idempotent)."""
    await until_available(lambda: bus.send(queue, body), what="the bus", backoff=Backoff(0.1, 5.0))


def dead_letter_reason(error: MalformedMessage) -> str:
    """What a dead letter records of why it could not be handled."""
    return f"{type(error).__name__}: {error}"[:1000]
