"""Waiting for something on the platform to end, by asking again and again (`wait()` of jobs
and of service executions)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .errors import WaitTimeout

T = TypeVar("T")

FIRST_POLL, LONGEST_POLL = 0.1, 2.0
"""Seconds between polls: growing by half from the first to the longest."""


async def poll_until(
    fetch: Callable[[], Awaitable[T]],
    ended: Callable[[T], bool],
    still: Callable[[T], str],
    limit: float | None,
) -> T:
    """`fetch()`'s first answer that has `ended`, asking from every 0.1 s up to every 2 s.
    Raises WaitTimeout, saying `still(answer)` and `limit`, when none has within `limit`
    seconds (None: no limit)."""
    deadline = None if limit is None else time.monotonic() + limit
    pause = FIRST_POLL
    while True:
        answer = await fetch()
        if ended(answer):
            return answer
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(f"{still(answer)} after {limit} s")
            pause = min(pause, left)
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, LONGEST_POLL)
