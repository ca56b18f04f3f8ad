"""Trying again after a backing service was unavailable: the one backoff qrt uses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from .errors import Unavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Pauses (seconds) from `first`, each `factor` times the one before, up to `longest`;
    `tries` of them (None: forever)."""

    first: float = 0.5
    longest: float = 10.0
    factor: float = 2.0
    tries: int | None = None

    def __iter__(self) -> Iterator[float]:
        pause, given = self.first, 0
        while self.tries is None or given < self.tries:
            yield pause
            pause, given = min(pause * self.factor, self.longest), given + 1


async def until_available(
    attempt: Callable[[], Awaitable[T]], *, what: str, backoff: Backoff = Backoff()
) -> T:
    """Await `attempt()` until it does not raise `Unavailable`, pausing by `backoff` between
    tries (each logged as a warning naming `what`); returns what it returned.

    For work that must happen and may happen twice (every consumer is idempotent); any other
    error propagates at once.
    """
    for pause in backoff:
        try:
            return await attempt()
        except Unavailable as exc:
            logger.warning("%s unavailable, retrying in %.1f s: %s", what, pause, exc)
            await asyncio.sleep(pause)
    return await attempt()  # a bounded backoff ran out: the last try decides
