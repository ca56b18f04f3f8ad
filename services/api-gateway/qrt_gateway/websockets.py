"""Websocket streams of a job: its published results, or its log, replayed and then live.

A stream subscribes to the job's updates before it reads what is stored, and skips updates
it already replayed, so a client that connects late (even after the job ended) misses nothing
and sees nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from qrt_common.jobs import Job, JobStatus
from qrt_common.messages import EventKind, JobEvent
from qrt_common.metrics import OPEN_WEBSOCKETS

from .context import Gateway, gateway
from .jobs import find_job

CLOSE_GONE = 4404
"""Close code when the job was deleted while being watched."""
QUIET_SECONDS = 5.0
"""After this long without an update a stream looks at the store itself: updates are not kept,
so one missed (a broker hiccup) must not leave the stream open forever."""

Frame = tuple[tuple[int, int], str]
"""A replayable piece of a stream: its (attempt, seq) key and its text."""


async def _client_gone(ws: web.WebSocketResponse) -> None:
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break


async def _follow(
    request: web.Request,
    kind: EventKind,
    load: Callable[[], Awaitable[list[Frame]]],
    job: Job,
    gw: Gateway,
) -> web.WebSocketResponse:
    """Send the stored frames, then live ones of `kind` until the job ends or the client goes."""
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    client = asyncio.create_task(_client_gone(ws))
    try:
        with OPEN_WEBSOCKETS.track_inprogress(), gw.streams.watch(job.id) as inbox:
            stored = await load()
            seen = {key for key, _ in stored}
            for _, text in stored:
                await ws.send_str(text)
            current = await gw.store.get_job(job.id)
            ended = current is None or current.status.is_final
            while not ended:
                event = await _next(inbox, client)
                if client.done():
                    return ws
                if event is None:
                    current = await gw.store.get_job(job.id)
                    ended = current is None or current.status.is_final
                    continue
                key = (event.attempt, event.seq)
                if event.kind is kind and key not in seen:
                    seen.add(key)
                    await ws.send_str(event.data or "")
                ended = event.kind is EventKind.FINISHED and _is_final(event.status)
            # Whatever was stored but never announced (a missed update) still goes out.
            for key, text in await load():
                if key not in seen:
                    await ws.send_str(text)
            await _finish(ws, gw, job.id, send_result=kind is EventKind.INTERIM)
    finally:
        client.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await client
    return ws


def _is_final(status: str | None) -> bool:
    return status is not None and JobStatus(status).is_final


async def _next(inbox: asyncio.Queue[JobEvent], client: asyncio.Task[None]) -> JobEvent | None:
    """The next update, or None when the client left or nothing came for a while."""
    update = asyncio.ensure_future(inbox.get())
    await asyncio.wait({update, client}, timeout=QUIET_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    if update.done():
        return update.result()
    update.cancel()
    return None


async def _finish(ws: web.WebSocketResponse, gw: Gateway, job_id: str, send_result: bool) -> None:
    job = await gw.store.get_job(job_id)
    if job is None:
        await ws.close(code=CLOSE_GONE, message=b"job deleted")
        return
    result = await gw.store.get_result(job_id) if send_result else None
    if result is not None:
        await ws.send_str(result)
    await ws.close(message=job.status.value.encode())


async def stream_results(request: web.Request) -> web.StreamResponse:
    """One text frame per published message, interim results then the final one; then close."""
    gw = gateway(request)
    job = await find_job(request)

    async def load() -> list[Frame]:
        return [((i.attempt, i.index), i.data) for i in await gw.store.list_interims(job.id)]

    return await _follow(request, EventKind.INTERIM, load, job, gw)


async def stream_logs(request: web.Request) -> web.StreamResponse:
    """The job's log as text frames, what was written so far and then each new piece."""
    gw = gateway(request)
    job = await find_job(request)

    async def load() -> list[Frame]:
        return [((c.attempt, c.seq), c.text) for c in await gw.store.log_chunks(job.id)]

    return await _follow(request, EventKind.LOG, load, job, gw)
