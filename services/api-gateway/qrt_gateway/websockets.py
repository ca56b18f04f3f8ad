"""Websocket streams of a job: its published results, or its log, replayed and then live.

A stream subscribes to the job's updates before it reads what is stored, and skips updates
it already replayed, so a client that connects late (even after the job ended) misses nothing
and sees nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from qrt_common.jobs import JobStatus
from qrt_common.messages import EventKind, JobEvent
from qrt_common.metrics import OPEN_WEBSOCKETS

from .context import gateway

CLOSE_GONE = 4404
"""Close code when the job was deleted while being watched."""
QUIET_SECONDS = 5.0
"""After this long without an update a stream looks at the store itself: updates are not kept,
so one missed (a broker hiccup) must not leave the stream open forever."""

Frame = tuple[tuple[int, int], str]
"""A replayable piece of a stream: its (attempt, seq) key and its text."""

ATTEMPT_KEY = "__qrt__"
"""The key of a results stream's notice that the job runs again: `{"__qrt__": {"attempt": 2,
"reason": "executor ex1 was lost"}}` comes before anything that attempt published."""


class _Attempts:
    """On a results stream, a notice before the first frame of each attempt after the first
    (and when one starts): what came before it is an earlier attempt's."""

    def __init__(self, ws: web.WebSocketResponse, announce: bool) -> None:
        self._ws, self._announce = ws, announce
        self.announced = 1
        self.reason: str | None = None
        """Why the last attempt ended, when the job was queued again."""

    async def reached(self, attempt: int) -> None:
        if self._announce and attempt > self.announced:
            self.announced = attempt
            notice = {ATTEMPT_KEY: {"attempt": attempt, "reason": self.reason}}
            await self._ws.send_str(json.dumps(notice))


async def _client_gone(ws: web.WebSocketResponse) -> None:
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break


async def _follow(
    request: web.Request,
    kind: EventKind,
    load: Callable[[str], Awaitable[list[Frame]]],
) -> web.WebSocketResponse:
    """Send the stored frames, then live ones of `kind` until the job ends or the client goes.

    The stream subscribes before it reads the job, so whatever happens after the read reaches
    it; the end's status and the result come from the updates when they carried them.
    """
    gw = gateway(request)
    job_id = request.match_info["job_id"]
    with gw.streams.watch(job_id) as inbox:
        job = await gw.find_job(job_id)
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        client = asyncio.create_task(_client_gone(ws))
        attempts = _Attempts(ws, announce=kind is EventKind.INTERIM)
        if job.status is JobStatus.QUEUED:
            attempts.reason = job.reason
        try:
            with OPEN_WEBSOCKETS.track_inprogress():
                stored = await load(job.id)
                seen = {key for key, _ in stored}
                for (attempt, _), text in stored:
                    await attempts.reached(attempt)
                    await ws.send_str(text)
                await attempts.reached(job.attempt)
                status = job.status.value if job.status.is_final else None
                waited = status is None
                result: str | None = None
                while status is None:
                    event = await _next(inbox, client)
                    if client.done():
                        return ws
                    if event is None:
                        current = await gw.store.get_job(job.id)
                        if current is None:
                            await ws.close(code=CLOSE_GONE, message=b"job deleted")
                            return ws
                        if current.status.is_final:
                            status = current.status.value
                        continue
                    if event.kind is EventKind.RUNNING:
                        await attempts.reached(event.attempt)
                    key = (event.attempt, event.seq)
                    if event.kind is kind and key not in seen:
                        seen.add(key)
                        await attempts.reached(event.attempt)
                        await ws.send_str(event.data or "")
                    if event.kind is EventKind.RESULT:
                        result = event.data  # announced only when stored: the stored result
                    if event.kind is EventKind.FINISHED and event.status is JobStatus.QUEUED:
                        attempts.reason = event.reason  # it runs again: the next notice says why
                    if event.kind is EventKind.FINISHED and event.status and event.status.is_final:
                        status = event.status.value
                if waited:
                    # Whatever was stored but never announced (a missed update) still goes out.
                    for key, text in await load(job.id):
                        if key not in seen:
                            await attempts.reached(key[0])
                            await ws.send_str(text)
                if kind is EventKind.INTERIM:
                    if result is None:
                        result = await gw.store.get_result(job.id)
                    if result is not None:
                        await ws.send_str(result)
                await ws.close(message=status.encode())
        finally:
            client.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await client
    return ws


async def _next(inbox: asyncio.Queue[JobEvent], client: asyncio.Task[None]) -> JobEvent | None:
    """The next update, or None when the client left or nothing came for a while."""
    if not inbox.empty():  # one message brings several: no task to wait for those
        return inbox.get_nowait()
    update = asyncio.ensure_future(inbox.get())
    await asyncio.wait({update, client}, timeout=QUIET_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    if update.done():
        return update.result()
    update.cancel()
    return None


async def stream_results(request: web.Request) -> web.StreamResponse:
    """One text frame per published message, interim results then the final one; then close."""
    store = gateway(request).store

    async def load(job_id: str) -> list[Frame]:
        return [((i.attempt, i.index), i.data) for i in await store.list_interims(job_id)]

    return await _follow(request, EventKind.INTERIM, load)


async def stream_logs(request: web.Request) -> web.StreamResponse:
    """The job's log as text frames, what was written so far and then each new piece."""
    store = gateway(request).store

    async def load(job_id: str) -> list[Frame]:
        return [((c.attempt, c.seq), c.text) for c in await store.log_chunks(job_id)]

    return await _follow(request, EventKind.LOG, load)
