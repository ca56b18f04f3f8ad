"""The one way tests wait for something: `eventually` polls a probe until what it returns is
wanted, and fails naming what did not happen and what it saw last.

No test sleeps and then asserts: a wait ends when its condition holds, so a loaded machine
only makes tests slower, never wrong. Deadlines are generous (scaled by QRT_TEST_TIME_SCALE);
a claim about speed passes its own `timeout`.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

TIME_SCALE = float(os.environ.get("QRT_TEST_TIME_SCALE", "1"))
"""Multiplies every deadline (set it above 1 on a very slow machine)."""
LONGEST_PAUSE = 0.5


class _Polling:
    """The bookkeeping of one wait: its deadline, its growing pause, what it saw last."""

    def __init__(
        self, what: str, timeout: float, every: float, give_up: Callable[[], str | None] | None
    ) -> None:
        self.what, self.timeout, self.give_up = what, timeout * TIME_SCALE, give_up
        self.deadline = time.monotonic() + self.timeout
        self.pause = every
        self.last: Any = None
        self.error: BaseException | None = None
        self.final = False

    def start_try(self) -> None:
        self.final = time.monotonic() >= self.deadline

    def failed_try(self) -> float:
        """After a try that did not satisfy: raise if it is time to, else the pause to take."""
        reason = self.give_up() if self.give_up is not None else None
        if reason is not None:
            raise AssertionError(f"{self.what}: gave up, {reason}; last seen: {self.last!r}")
        if self.final:
            seen = f"last seen: {self.last!r}" if self.error is None else f"error: {self.error!r}"
            raise AssertionError(f"{self.what}: not within {self.timeout:g} s; {seen}") from (
                self.error
            )
        pause, self.pause = self.pause, min(self.pause * 1.5, LONGEST_PAUSE)
        return min(pause, max(0.0, self.deadline - time.monotonic()))


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]],
    what: str,
    *,
    until: Callable[[T], bool] = bool,
    timeout: float = 30.0,
    every: float = 0.02,
    not_yet: tuple[type[BaseException], ...] = (),
    give_up: Callable[[], str | None] | None = None,
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T],
    what: str,
    *,
    until: Callable[[T], bool] = bool,
    timeout: float = 30.0,
    every: float = 0.02,
    not_yet: tuple[type[BaseException], ...] = (),
    give_up: Callable[[], str | None] | None = None,
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    what: str,
    *,
    until: Callable[[Any], bool] = bool,
    timeout: float = 30.0,
    every: float = 0.02,
    not_yet: tuple[type[BaseException], ...] = (),
    give_up: Callable[[], str | None] | None = None,
) -> Any:
    """Call `probe` (sync or async) until `until(value)` holds; returns that value.

    `what` says what is awaited ("job x is Running"), for the failure. An exception in
    `not_yet` counts as "not yet" (a port not listening); `give_up()` returning a reason fails
    at once (the process exited). The probe runs once more after the deadline, so a loop
    starved by load gets a last look. Pauses grow from `every` to half a second.
    """
    polling = _Polling(what, timeout, every, give_up)
    while True:
        polling.start_try()
        try:
            value = probe()
            if inspect.isawaitable(value):
                value = await value
            if until(value):
                return value
            polling.last, polling.error = value, None
        except not_yet as exc:
            polling.error = exc
        await asyncio.sleep(polling.failed_try())


def eventually_sync(
    probe: Callable[[], T],
    what: str,
    *,
    until: Callable[[T], bool] = bool,
    timeout: float = 30.0,
    every: float = 0.02,
    not_yet: tuple[type[BaseException], ...] = (),
    give_up: Callable[[], str | None] | None = None,
) -> T:
    """`eventually` for code without an event loop (a test that drives subprocesses)."""
    polling = _Polling(what, timeout, every, give_up)
    while True:
        polling.start_try()
        try:
            value = probe()
            if until(value):
                return value
            polling.last, polling.error = value, None
        except not_yet as exc:
            polling.error = exc
        time.sleep(polling.failed_try())
