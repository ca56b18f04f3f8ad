"""Live job streams: job updates from the bus, fanned out to the websockets watching each job."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from qrt_common.messages import JobEvent, JobEvents
from qrt_common.wire import decode


class StreamHub:
    """Hands every job update this gateway receives to the streams that watch that job."""

    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Queue[JobEvent]]] = {}

    async def on_update(self, body: dict[str, Any]) -> None:
        # Every gateway hears every job's updates: only the watched ones are worth decoding.
        if body.get("job_id") not in self._watchers:
            return
        batch = decode(JobEvents, body)
        for inbox in self._watchers.get(batch.job_id, ()):
            for event in batch.events:
                inbox.put_nowait(event)

    @contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Queue[JobEvent]]:
        """A queue that receives the job's updates while the block runs."""
        inbox: asyncio.Queue[JobEvent] = asyncio.Queue()
        self._watchers.setdefault(job_id, set()).add(inbox)
        try:
            yield inbox
        finally:
            watchers = self._watchers[job_id]
            watchers.discard(inbox)
            if not watchers:
                del self._watchers[job_id]
