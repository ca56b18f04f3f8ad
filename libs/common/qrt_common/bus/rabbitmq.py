"""The message bus on RabbitMQ, with aio-pika.

- Queues are durable quorum queues: messages are persistent, every send waits for the broker's
  publisher confirm, and a message is acknowledged only after its handler returned.
- A handler that raises `MalformedMessage` (or a message that is not a JSON object) sends the
  message to the dead-letter queue with the reason in its headers; any other error returns it to
  the queue, and after `REDELIVERY_LIMIT` redeliveries the broker dead-letters it.
- Topics are durable fanout exchanges; each subscriber reads its own exclusive queue.
- `connect_robust` reconnects after a broker restart and restores queues, bindings and consumers.
Every service declares what it uses, so start-up order does not matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)

from ..errors import BusUnavailable, MalformedMessage
from .base import REDELIVERY_LIMIT, Handler, MessageBus, dead_letter_reason, handle_patiently

logger = logging.getLogger(__name__)

RETRY_DELAY = 1.0
"""Seconds before a message whose handler failed is handed back to the queue."""
PUBLISH_TIMEOUT = 5.0
"""Seconds a send waits for the broker's confirm before it counts as failed."""
RECONNECT_INTERVAL = 1.0
"""Seconds between reconnection attempts after the broker went away."""
DEAD_LETTERS = "dead-letters"
"""Queue (and fanout exchange) of messages that could not be handled."""


class RabbitBus(MessageBus):
    """A MessageBus on a RabbitMQ broker; every name is prefixed with `namespace`."""

    def __init__(self, url: str, *, namespace: str = "qrt") -> None:
        self._url = url
        self._namespace = namespace
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._broadcaster: AbstractChannel | None = None
        self._declared: set[str] = set()
        self._exchanges: dict[str, AbstractExchange] = {}
        self._connected_since = 0.0
        self._cut_off = False
        self._up = asyncio.Event()
        """Set while connected, from the (re)connection's callback on: channels are back."""

    def _name(self, name: str) -> str:
        return f"{self._namespace}.{name}"

    @property
    def connected_since(self) -> float:
        if not self._is_connected():
            return time.monotonic()  # cut off right now: silence means nothing
        # Peers reconnect on the same schedule, up to one interval later than this service.
        return self._connected_since + RECONNECT_INTERVAL

    def _is_connected(self) -> bool:
        connection = self._connection
        return (
            connection is not None
            and not self._cut_off
            and not connection.is_closed
            and connection.connected.is_set()
        )

    async def connect(self) -> None:
        try:
            self._connection = await aio_pika.connect_robust(
                self._url,
                reconnect_interval=RECONNECT_INTERVAL,
                client_properties={"connection_name": self._namespace},
            )
        except (OSError, aio_pika.exceptions.AMQPError) as exc:
            raise BusUnavailable(f"cannot reach RabbitMQ: {exc}") from exc
        self._connected_since = time.monotonic()
        self._up.set()
        self._connection.reconnect_callbacks.add(self._on_reconnect)
        self._connection.close_callbacks.add(self._on_disconnect)
        self._publisher = await self._connection.channel(on_return_raises=True)
        # Topic messages are transient (a missed one changes nothing stored): no confirms.
        self._broadcaster = await self._connection.channel(publisher_confirms=False)
        await self._declare_queue(DEAD_LETTERS)

    def _on_reconnect(self, *_: Any) -> None:
        self._connected_since = time.monotonic()
        self._cut_off = False
        self._up.set()
        logger.warning("reconnected to RabbitMQ")

    def _on_disconnect(self, *_: Any) -> None:
        # Until the reconnect callback has run, count as cut off: the connection's own
        # "connected" flag is set a moment earlier than that.
        self._cut_off = True
        self._up.clear()

    @property
    def _channel(self) -> AbstractChannel:
        if self._publisher is None:
            raise BusUnavailable("the bus is not connected")
        return self._publisher

    def _arguments(self, name: str) -> dict[str, Any]:
        arguments: dict[str, Any] = {"x-queue-type": "quorum"}
        if name != DEAD_LETTERS:
            arguments["x-delivery-limit"] = REDELIVERY_LIMIT
            arguments["x-dead-letter-exchange"] = self._name(DEAD_LETTERS)
        if name.startswith("executor."):
            # An executor's own queue goes away a while after the executor did.
            arguments["x-expires"] = 10 * 60 * 1000
        return arguments

    async def _declare_queue(self, name: str) -> None:
        if name in self._declared:
            return
        queue = await self._channel.declare_queue(
            self._name(name), durable=True, arguments=self._arguments(name)
        )
        if name == DEAD_LETTERS:
            exchange = await self._exchange(name)
            await queue.bind(exchange)
        self._declared.add(name)

    async def _exchange(self, name: str) -> AbstractExchange:
        exchange = self._exchanges.get(name)
        if exchange is None:
            channel = self._broadcaster or self._channel
            exchange = await channel.declare_exchange(
                self._name(name), aio_pika.ExchangeType.FANOUT, durable=True
            )
            self._exchanges[name] = exchange
        return exchange

    async def send(self, queue: str, body: dict[str, Any]) -> None:
        message = aio_pika.Message(
            json.dumps(body).encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                await self._declare_queue(queue)
                await self._channel.default_exchange.publish(
                    message, routing_key=self._name(queue), mandatory=True
                )
        except (TimeoutError, OSError, RuntimeError, aio_pika.exceptions.AMQPError) as exc:
            raise BusUnavailable(f"RabbitMQ did not accept the message: {exc!r}") from exc

    async def publish(self, topic: str, body: dict[str, Any]) -> None:
        message = aio_pika.Message(json.dumps(body).encode(), content_type="application/json")
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                exchange = await self._exchange(topic)
                # Nobody subscribed (yet) is fine for a topic: no return wanted.
                await exchange.publish(message, routing_key="", mandatory=False)
        except (TimeoutError, OSError, RuntimeError, aio_pika.exceptions.AMQPError) as exc:
            raise BusUnavailable(f"RabbitMQ did not accept the message: {exc!r}") from exc

    async def _consumer_channel(self, prefetch: int) -> AbstractChannel:
        if self._connection is None:
            raise BusUnavailable("the bus is not connected")
        # A broker that went away after connect() (say, while a service warms up) is waited
        # for, as connect() waits for it: opening a channel now would fail outright.
        if not self._up.is_set():
            logger.warning("waiting for RabbitMQ to come back before consuming")
            await self._up.wait()
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 16) -> None:
        channel = await self._consumer_channel(prefetch)
        await self._declare_queue(queue)
        source = await channel.declare_queue(
            self._name(queue), durable=True, arguments=self._arguments(queue)
        )

        async def on_message(message: AbstractIncomingMessage) -> None:
            await self._handle(queue, message, handler)

        await source.consume(on_message)

    async def subscribe(self, topic: str, handler: Handler) -> None:
        channel = await self._consumer_channel(256)
        exchange = await channel.declare_exchange(
            self._name(topic), aio_pika.ExchangeType.FANOUT, durable=True
        )
        inbox = await channel.declare_queue(exclusive=True, auto_delete=True)
        await inbox.bind(exchange)

        async def on_message(message: AbstractIncomingMessage) -> None:
            await self._handle(topic, message, handler)

        await inbox.consume(on_message)

    async def _handle(
        self, source: str, message: AbstractIncomingMessage, handler: Handler
    ) -> None:
        try:
            await handle_patiently(handler, _json_object(message.body))
        except MalformedMessage as exc:
            await self._dead_letter(source, message, exc)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
            raise
        except Exception:
            logger.exception("handling a message from %s failed; it will be retried", source)
            await asyncio.sleep(RETRY_DELAY)
            with contextlib.suppress(Exception):
                await message.nack(requeue=True)
        else:
            with contextlib.suppress(Exception):
                await message.ack()

    async def _dead_letter(
        self, source: str, message: AbstractIncomingMessage, error: MalformedMessage
    ) -> None:
        logger.error("message from %s dead-lettered: %s", source, error)
        reason = dead_letter_reason(error)
        letter = aio_pika.Message(
            message.body,
            content_type=message.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers={"x-qrt-source": source, "x-qrt-reason": reason},
        )
        try:
            # Straight to the queue, on the confirming channel: a dead letter must not be lost.
            await self._channel.default_exchange.publish(
                letter, routing_key=self._name(DEAD_LETTERS)
            )
        except Exception:
            # Not kept anywhere else: leave it to the broker's own dead-lettering.
            with contextlib.suppress(Exception):
                await message.reject(requeue=False)
            return
        with contextlib.suppress(Exception):
            await message.ack()

    async def consume_dead_letters(self, handler: Handler) -> None:
        """Handle dead letters: each body gets `_reason` and `_source` keys added."""
        channel = await self._consumer_channel(16)
        source = await channel.declare_queue(
            self._name(DEAD_LETTERS), durable=True, arguments=self._arguments(DEAD_LETTERS)
        )

        async def on_message(message: AbstractIncomingMessage) -> None:
            headers = message.headers or {}
            reason = str(headers.get("x-qrt-reason") or _broker_reason(headers))
            try:
                body = _json_object(message.body)
            except MalformedMessage:
                body = {}
            body.update(_reason=reason, _source=str(headers.get("x-qrt-source", "")))
            try:
                await handler(body)
            except Exception:
                logger.exception("a dead letter could not be recorded")
            await message.ack()

        await source.consume(on_message)

    async def is_ready(self) -> bool:
        return self._is_connected()

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        self._connection = self._publisher = None


def _json_object(data: bytes) -> dict[str, Any]:
    """A message body as the JSON object it must be; raises MalformedMessage."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(f"the message body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedMessage("the message body is not a JSON object")
    return body


def _broker_reason(headers: dict[str, Any]) -> str:
    deaths = headers.get("x-death") or []
    if deaths and isinstance(deaths, list) and isinstance(deaths[0], dict):
        death = deaths[0]
        return f"the broker dead-lettered it ({death.get('reason')}) from {death.get('queue')}"
    return "dead-lettered"
