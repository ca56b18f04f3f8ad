"""Replays of a job's stored output, shared: the streams that replay one job at once read each
page of it from the store once.

Forty clients opening a results stream of a job with a hundred thousand interim results ask
for the same pages, in the same order (`read_pages` sizes them from what they hold). The first
to ask reads a page; the others take its answer, converted once for the stream
(`strict_json`), instead of reading and converting it again.

A stream may take a page only if that page was read after the stream subscribed to the job's
updates: what was stored after the read then reaches the stream as an update, exactly as if it
had read the page itself. A page that ends short is the end of what is stored now and goes as
soon as it is answered; a full page is kept for KEEP_SECONDS, within BUDGET_BYTES in all.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from qrt_common.store.base import JobStore, PartKey, read_pages

from .strict import strict_json

Frame = tuple[PartKey, str]
"""A replayable piece of a stream: its (attempt, seq) key and the text it is sent as."""

KEEP_SECONDS = 10.0
BUDGET_BYTES = 64 * 1024 * 1024

_PageKey = tuple[str, str, PartKey | None, int]
"""What a page is: (output kind, job id, the key it starts after, its most pieces)."""


@dataclass(slots=True)
class _Page:
    read: asyncio.Future[list[Frame]]
    started: float
    """`time.monotonic()` when its read began."""
    size: int = 0
    kept: bool = field(default=False)


class SharedReplays:
    """Pages of jobs' stored output (interim results as strict JSON, log chunks as they are),
    shared by the streams that replay them (see the module)."""

    def __init__(self, store: JobStore) -> None:
        self._store = store
        self._pages: OrderedDict[_PageKey, _Page] = OrderedDict()
        self._bytes = 0

    def interims(self, job_id: str, since: float) -> AsyncIterator[list[Frame]]:
        """The job's interim results as frames, a page at a time, for a stream that subscribed
        to the job's updates at `since` (`time.monotonic()`)."""

        async def read(after: PartKey | None, limit: int) -> list[Frame]:
            interims = await self._store.list_interims(job_id, after=after, limit=limit)
            return [(i.key, strict_json(i.data)) for i in interims]

        return self._replay("interims", job_id, since, read)

    def logs(self, job_id: str, since: float) -> AsyncIterator[list[Frame]]:
        """The job's log chunks as frames, as `interims` gives interim results."""

        async def read(after: PartKey | None, limit: int) -> list[Frame]:
            chunks = await self._store.log_chunks(job_id, after=after, limit=limit)
            return [(c.key, c.text) for c in chunks]

        return self._replay("logs", job_id, since, read)

    async def _replay(
        self,
        kind: str,
        job_id: str,
        since: float,
        read: Callable[[PartKey | None, int], Awaitable[list[Frame]]],
    ) -> AsyncIterator[list[Frame]]:
        async def shared(after: PartKey | None, limit: int) -> list[Frame]:
            return await self._page((kind, job_id, after, limit), since, lambda: read(after, limit))

        async for page in read_pages(shared, lambda frame: frame[0], lambda frame: len(frame[1])):
            yield page

    async def _page(
        self, key: _PageKey, since: float, read: Callable[[], Awaitable[list[Frame]]]
    ) -> list[Frame]:
        self._expire(time.monotonic())
        page = self._pages.get(key)
        if page is None or page.started < since:
            page = _Page(asyncio.ensure_future(read()), time.monotonic())
            self._forget(key)
            self._pages[key] = page
            page.read.add_done_callback(lambda _: self._settle(key, page))
        # Shielded: a stream that goes away must not cancel the read the others wait for.
        return await asyncio.shield(page.read)

    def _settle(self, key: _PageKey, page: _Page) -> None:
        """Keep a page that came back full; forget a short one, or a failed read."""
        if self._pages.get(key) is not page:
            return
        if page.read.cancelled() or page.read.exception() is not None:
            self._forget(key)
            return
        frames = page.read.result()
        if len(frames) < key[3]:
            self._forget(key)
            return
        page.size, page.kept = sum(len(text) for _, text in frames), True
        self._bytes += page.size
        while self._bytes > BUDGET_BYTES and self._pages:
            self._forget(next(iter(self._pages)))

    def _expire(self, now: float) -> None:
        while self._pages:
            key, page = next(iter(self._pages.items()))
            if now - page.started < KEEP_SECONDS:
                return
            self._forget(key)

    def _forget(self, key: _PageKey) -> None:
        page = self._pages.pop(key, None)
        if page is not None and page.kept:
            self._bytes -= page.size
