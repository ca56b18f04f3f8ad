"""The message bus: its interface (`base`), in one process (`memory`), on RabbitMQ (`rabbitmq`)."""

from __future__ import annotations

from ..errors import ConfigurationError
from .base import MessageBus


def open_bus(url: str, namespace: str = "qrt") -> MessageBus:
    """The bus for a `QRT_BUS_URL`: `memory://`, or `amqp://` for RabbitMQ; raises
    ConfigurationError for any other."""
    if url.startswith("memory:"):
        from .memory import InMemoryBus

        return InMemoryBus()
    if url.startswith(("amqp://", "amqps://")):
        from .rabbitmq import RabbitBus

        return RabbitBus(url, namespace=namespace)
    raise ConfigurationError(f"unsupported QRT_BUS_URL {url!r}: use memory:// or amqp://")
