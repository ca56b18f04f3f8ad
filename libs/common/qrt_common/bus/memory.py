"""The message bus inside one process, for `qrt dev` and tests."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from typing import Any

import msgspec

from ..errors import MalformedMessage
from .base import REDELIVERY_LIMIT, Handler, MessageBus, dead_letter_reason, handle_patiently

logger = logging.getLogger(__name__)


_JSON = msgspec.json.Encoder()


def _copy(body: dict[str, Any]) -> dict[str, Any]:
    # A JSON round trip gives in-process consumers exactly what a broker would hand them;
    # msgspec's takes a tenth of json's time, which every message of every job paid.
    try:
        result: dict[str, Any] = msgspec.json.decode(_JSON.encode(body))
    except UnicodeEncodeError:  # a lone surrogate (from a client's JSON), which json escapes
        result = json.loads(json.dumps(body))
    return result


class InMemoryBus(MessageBus):
    """A bus inside one process. Nothing survives the process; the store holds the jobs, and
    the scheduler re-reads them at start-up."""

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
            for delivery in range(1, REDELIVERY_LIMIT + 2):
                try:
                    await handle_patiently(handler, body)
                    break
                except asyncio.CancelledError:
                    raise
                except MalformedMessage as exc:
                    await self._dead_letter(name, body, dead_letter_reason(exc))
                    break
                except Exception:
                    logger.exception(
                        "handling a message from %s failed (delivery %d)", name, delivery
                    )
                    await asyncio.sleep(self._retry_delay)
            else:
                await self._dead_letter(
                    name, body, f"not handled after {REDELIVERY_LIMIT + 1} deliveries"
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
