"""Websocket streams of a job: its published results, or its log, replayed and then live.

A stream subscribes to the job's updates before it reads what is stored, and skips updates
it already replayed, so a client that connects late (even after the job ended) misses nothing
and sees nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from qrt_common.errors import Unauthenticated
from qrt_common.jobs import JobStatus
from qrt_common.messages import EventKind, JobEvent
from qrt_common.metrics import OPEN_WEBSOCKETS
from qrt_common.results import NOTICE_KEY

from .auth import AUTHENTICATOR, RECHECK_SECONDS, WEBSOCKET_PROTOCOL, principal
from .context import gateway
from .pacing import Pacer, utf8
from .replays import Frame
from .strict import dumps, paced_strict_json, strict_json

logger = logging.getLogger(__name__)

CLOSE_GONE = 4404
"""Close code when the job was deleted while being watched."""
CLOSE_UNAUTHORIZED = 4401
"""Close code when the caller's credentials stopped reaching the job while they watched (a key
revoked or expired, the user deleted, their membership of the job's instance taken away)."""
QUIET_SECONDS = 5.0
"""After this long without an update a stream looks at the store itself: updates are not kept,
so one missed (a broker hiccup) must not leave the stream open forever."""

Pages = Callable[[str, float], AsyncIterator[list[Frame]]]
"""What a stream replays of a job (given its id, and when the stream subscribed to its updates):
its stored frames, a page at a time, in order (see `SharedReplays`)."""


class _Attempts:
    """On a results stream, a notice before the first frame of each attempt after the first
    (and when one starts): what came before it is an earlier attempt's. The notice is
    `{"__qrt__": {"attempt": 2, "reason": "executor ex1 was lost"}}`."""

    def __init__(self, ws: web.WebSocketResponse, announce: bool) -> None:
        self._ws, self._announce = ws, announce
        self.announced = 1
        self.reason: str | None = None
        """Why the last attempt ended, when the job was queued again."""

    async def reached(self, attempt: int) -> None:
        if self._announce and attempt > self.announced:
            self.announced = attempt
            # No program's interim result holds this key (`qrt_common.results.refusal`).
            notice = {NOTICE_KEY: {"attempt": attempt, "reason": self.reason}}
            await send_text(self._ws, dumps(notice))


class _Seen:
    """The (attempt, seq) keys a stream has sent, a bit each: a replay of a hundred thousand
    frames remembers them in kilobytes."""

    BITMAP_LIMIT = 1 << 24
    """Sequence numbers up to this go in a bitmap; others (never seen) in a set."""

    def __init__(self) -> None:
        self._bits: dict[int, bytearray] = {}
        self._others: set[tuple[int, int]] = set()

    def first(self, key: tuple[int, int]) -> bool:
        """True (and remembered) if `key` was not seen before."""
        attempt, seq = key
        if not 0 <= seq < self.BITMAP_LIMIT:
            new = key not in self._others
            self._others.add(key)
            return new
        byte, bit = seq >> 3, 1 << (seq & 7)
        bits = self._bits.get(attempt)
        if bits is None:
            bits = self._bits[attempt] = bytearray()
        if len(bits) <= byte:
            bits.extend(bytes(byte + 1 - len(bits) + len(bits) // 2))  # grows by half
        elif bits[byte] & bit:
            return False
        bits[byte] |= bit
        return True


class _Cork:
    """Gathers what aiohttp writes for a page of frames and hands it to the socket in one
    write: a replay of a hundred thousand small frames would otherwise cost as many system
    calls, which were most of its work.

    aiohttp writes a frame with `transport.write` as soon as it is framed; this stands in for
    the connection's transport (the writer's `transport` attribute) while a page is sent, so it
    works only on a websocket without compression, where framing is all aiohttp does.
    """

    FLUSH_BYTES = 256 * 1024

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._pieces: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._pieces.append(bytes(data))
        self._size += len(data)
        if self._size >= self.FLUSH_BYTES:
            self.flush()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def flush(self) -> None:
        pieces, self._pieces, self._size = self._pieces, [], 0
        if pieces and not self.transport.is_closing():
            self.transport.write(b"".join(pieces))


async def send_text(ws: web.WebSocketResponse, text: str) -> None:
    """Send `text` as a text frame, lone surrogates escaped (`utf8`) where `send_str` would
    raise mid-stream."""
    await ws.send_frame(utf8(text), WSMsgType.TEXT)


@contextlib.contextmanager
def _corked(ws: web.WebSocketResponse) -> Iterator[None]:
    """Frames sent in the block reach the socket together (see `_Cork`)."""
    writer = getattr(ws, "_writer", None)  # aiohttp's; without it, frames go one by one
    transport = getattr(writer, "transport", None)
    if writer is None or ws.compress or not isinstance(transport, asyncio.Transport):
        yield
        return
    cork = _Cork(transport)
    writer.transport = cork
    try:
        yield
    finally:
        writer.transport = transport
        cork.flush()


async def _lapsed(request: web.Request, instance: str) -> str:
    """Return (why) once the credentials `request` came with no longer reach `instance`,
    checking every RECHECK_SECONDS (with keys on: `request.app` has an AUTHENTICATOR)."""
    checker = request.app[AUTHENTICATOR]
    authorization = request.headers.get("Authorization")
    while True:
        await asyncio.sleep(RECHECK_SECONDS)
        try:
            who = await checker.recheck(authorization)
        except Unauthenticated as exc:
            return str(exc)
        except Exception:  # the store away for a moment: the next check decides
            logger.warning("could not check a stream's credentials again", exc_info=True)
            continue
        if who.role(instance) is None:
            return f"{who.user} no longer belongs to the job's instance"


def _close_reason(text: str) -> bytes:
    """`text` as a close frame's reason, which holds at most 123 bytes (RFC 6455 §5.5)."""
    return text.encode()[:123].decode(errors="ignore").encode()


async def _client_gone(ws: web.WebSocketResponse) -> None:
    async for message in ws:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break


async def _follow(request: web.Request, kind: EventKind, pages: Pages) -> web.WebSocketResponse:
    """Send the stored frames, then live ones of `kind` until the job ends or the client goes.

    The stream subscribes before it reads the job, so whatever happens after the read reaches
    it; the end's status and the result come from the updates when they carried them. The
    stored frames are read and sent a page at a time, handing the event loop back as they go
    (`Pacer`), so a replay of a large output holds up nobody else.
    """
    gw = gateway(request)
    job_id = request.match_info["job_id"]
    with gw.streams.watch(job_id) as inbox:
        since = time.monotonic()
        job = await gw.find_job(job_id, principal(request))
        ws = web.WebSocketResponse(heartbeat=30, protocols=(WEBSOCKET_PROTOCOL,))
        await ws.prepare(request)
        client = asyncio.create_task(_client_gone(ws))
        lapse: asyncio.Future[str]
        if request.app.get(AUTHENTICATOR) is None:  # nothing to lapse: no task to watch it
            lapse = asyncio.get_running_loop().create_future()
        else:
            lapse = asyncio.create_task(_lapsed(request, job.instance))
        stoppers = (client, lapse)
        attempts = _Attempts(ws, announce=kind is EventKind.INTERIM)
        if job.status is JobStatus.QUEUED:
            attempts.reason = job.reason
        seen = _Seen()
        pacer = Pacer()

        async def replay(since: float) -> bool:
            """Send what is stored and was not sent yet (read after `since`); False if the
            client left."""
            async for page in pages(job.id, since):
                if client.done() or lapse.done():
                    return False
                with _corked(ws):
                    for key, text in page:
                        if seen.first(key):
                            await attempts.reached(key[0])
                            await send_text(ws, text)
                            await pacer.pause()
            return True

        try:
            with OPEN_WEBSOCKETS.track_inprogress():
                if not await replay(since):
                    return ws
                await attempts.reached(job.attempt)
                status = job.status.value if job.status.is_final else None
                waited = status is None
                result: str | None = None
                while status is None:
                    event = await _next(inbox, stoppers)
                    if client.done() or lapse.done():
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
                    if event.kind is kind and seen.first(key):
                        await attempts.reached(event.attempt)
                        text = event.data or ""
                        await send_text(
                            ws, strict_json(text) if kind is EventKind.INTERIM else text
                        )
                    if event.kind is EventKind.RESULT:
                        result = event.data  # announced only when stored: the stored result
                    if event.kind is EventKind.FINISHED and event.status is JobStatus.QUEUED:
                        attempts.reason = event.reason  # it runs again: the next notice says why
                    if event.kind is EventKind.FINISHED and event.status and event.status.is_final:
                        status = event.status.value
                # Whatever was stored but never announced (a missed update) still goes out.
                if waited and not await replay(time.monotonic()):
                    return ws
                if kind is EventKind.INTERIM:
                    if result is None:
                        result = await gw.store.get_result(job.id)
                    if result is not None:
                        await send_text(ws, await paced_strict_json(result, pacer))
                await ws.close(message=status.encode())
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            # Past the upgrade an HTTP error answer would corrupt the socket: close it saying so.
            logger.exception("stream failed", extra={"job_id": job.id})
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal error; see the log")
        finally:
            lapsed = lapse.done() and not lapse.cancelled() and lapse.exception() is None
            if lapsed and not client.done() and not ws.closed:
                reason = f"credentials no longer valid: {lapse.result()}"
                await ws.close(code=CLOSE_UNAUTHORIZED, message=_close_reason(reason))
            for task in stoppers:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return ws


async def _next(
    inbox: asyncio.Queue[JobEvent], stoppers: tuple[asyncio.Future[Any], ...]
) -> JobEvent | None:
    """The next update, or None when one of `stoppers` ended (the client left, its credentials
    lapsed) or nothing came for a while."""
    if not inbox.empty():  # one message brings several: no task to wait for those
        return inbox.get_nowait()
    update = asyncio.ensure_future(inbox.get())
    await asyncio.wait(
        {update, *stoppers}, timeout=QUIET_SECONDS, return_when=asyncio.FIRST_COMPLETED
    )
    if update.done():
        return update.result()
    update.cancel()
    return None


async def stream_results(request: web.Request) -> web.StreamResponse:
    """One text frame per published message, interim results then the final one; then close."""
    return await _follow(request, EventKind.INTERIM, gateway(request).replays.interims)


async def stream_logs(request: web.Request) -> web.StreamResponse:
    """The job's log as text frames, what was written so far and then each new piece."""
    return await _follow(request, EventKind.LOG, gateway(request).replays.logs)
