"""Following a job over its websockets: `/stream/jobs/{id}` (interim results, a notice when the
job runs again, then the final result) and `/stream/jobs/{id}/logs` (its log), merged into one
series of events.

The results stream does not mark its final frame: it is the last one before the close when the
job has a result. So a frame is held back until the next one comes; if none comes for
`HOLD_SECONDS` and the job is still running, the held frame is an interim result and goes out
(a result is sent only once the job has ended), and at the close the held frame is the result
if the job has one.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect

from .codec import decode
from .errors import StreamError, TransportError, api_error
from .models import Attempt, Event, Interim, Log, Result

HOLD_SECONDS = 0.5
"""How long a results frame waits for the next before the job's status is looked at."""
ATTEMPT_KEY = "__qrt__"
"""The key of the notice a results stream sends when the job runs again."""

Probe = Callable[[], Awaitable[bool]]
"""An async question to the platform: has the job ended? / does it have a result?"""


def _attempt_of(text: str) -> Attempt | None:
    if ATTEMPT_KEY not in text:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if (
        isinstance(body, dict)
        and set(body) == {ATTEMPT_KEY}
        and isinstance(body[ATTEMPT_KEY], dict)
    ):
        notice: dict[str, Any] = body[ATTEMPT_KEY]
        return Attempt(attempt=int(notice.get("attempt", 0)), reason=notice.get("reason"))
    return None


async def _connect(url: str, headers: dict[str, str]) -> ClientConnection:
    try:
        return await connect(url, additional_headers=headers, max_size=None)
    except websockets.InvalidStatus as exc:
        response = exc.response
        text = response.body.decode(errors="replace") if response.body else ""
        try:
            body = json.loads(text)
        except ValueError:
            body = None
        raise api_error(response.status_code, body, text) from None
    except (OSError, websockets.InvalidHandshake, TimeoutError) as exc:
        raise TransportError(f"{url}: {exc!r}") from exc


def _closed(exc: websockets.ConnectionClosed) -> None:
    """Raise unless the stream closed normally (code 1000: the job ended)."""
    frame = exc.rcvd
    if frame is None or frame.code != 1000:
        raise StreamError(frame.code if frame else None, frame.reason if frame else str(exc))


async def results(
    url: str, headers: dict[str, str], ended: Probe, has_result: Probe
) -> AsyncIterator[Event]:
    """The results stream at `url` as Interim, Attempt and (last) Result events."""
    async with await _connect(url, headers) as ws:
        held: str | None = None
        job_ended = False
        while True:
            try:
                if held is None or job_ended:
                    text = await ws.recv()
                else:
                    try:
                        text = await asyncio.wait_for(ws.recv(), HOLD_SECONDS)
                    except TimeoutError:  # cancelling recv() loses nothing (websockets' word)
                        if await ended():
                            job_ended = True
                        else:
                            yield Interim(decode(held))
                            held = None
                        continue
            except websockets.ConnectionClosed as exc:
                _closed(exc)
                if held is not None:
                    yield Result(decode(held)) if await has_result() else Interim(decode(held))
                return
            assert isinstance(text, str)
            if held is not None:
                yield Interim(decode(held))
                held = None
            notice = _attempt_of(text)
            if notice is not None:
                yield notice
            else:
                held = text


async def logs(url: str, headers: dict[str, str]) -> AsyncIterator[Event]:
    """The log stream at `url` as Log events."""
    async with await _connect(url, headers) as ws:
        while True:
            try:
                text = await ws.recv()
            except websockets.ConnectionClosed as exc:
                _closed(exc)
                return
            yield Log(text if isinstance(text, str) else text.decode(errors="replace"))


async def merged(*sources: AsyncIterator[Event]) -> AsyncIterator[Event]:
    """The events of every source as they come; ends when all have ended, and raises what the
    first failing source raised."""
    queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()

    async def pump(source: AsyncIterator[Event]) -> None:
        try:
            async for event in source:
                await queue.put(event)
        except Exception as exc:  # the consumer raises it
            await queue.put(exc)
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(source)) for source in sources]
    try:
        running = len(tasks)
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
