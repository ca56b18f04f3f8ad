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
from .errors import Forbidden, StreamError, TransportError, Unauthorized, api_error
from .models import Attempt, Event, Interim, Log, Result

HOLD_SECONDS = 0.5
"""How long a results frame waits for the next before the job's status is looked at."""
ATTEMPT_KEY = "__qrt__"
"""The key of the notice a results stream sends when the job runs again."""

Probe = Callable[[], Awaitable[bool]]
"""An async question to the platform: has the job ended? / does it have a result?"""


def _attempt_of(text: str) -> Attempt | None:
    """The platform's notice in a results frame, or None for anything else. A frame that
    only looks like one (`{"__qrt__": {"attempt": "x"}}`, which a program could publish) is
    no notice: it goes out as the interim result it is, never as an error."""
    if ATTEMPT_KEY not in text:
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not (isinstance(body, dict) and set(body) == {ATTEMPT_KEY}):
        return None
    notice = body[ATTEMPT_KEY]
    if not isinstance(notice, dict) or not set(notice) <= {"attempt", "reason"}:
        return None
    attempt, reason = notice.get("attempt"), notice.get("reason")
    # bool is an int to Python, not an attempt number to anyone.
    if type(attempt) is not int or attempt < 1 or not isinstance(reason, str | None):
        return None
    return Attempt(attempt=attempt, reason=reason)


def _value(text: str) -> Any:
    """A results frame's value: decoded as RuntimeDecoder does, else (an encoding it cannot
    undo, which a program may publish) as the plain JSON it is, else the text itself."""
    try:
        return decode(text)
    except Exception:  # RuntimeDecoder raises whatever its decoders raise on a bad value
        try:
            return json.loads(text)
        except ValueError:
            return text


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


CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN = 4401, 4403
"""Close codes of a stream whose credentials lapsed (a key revoked or expired, a membership
taken away): 4000 plus the HTTP status a request would now get."""


def _closed(exc: websockets.ConnectionClosed) -> None:
    """Raise unless the stream closed normally (code 1000: the job ended): Unauthorized or
    Forbidden when the credentials lapsed, else StreamError."""
    frame = exc.rcvd
    if frame is None or frame.code != 1000:
        code, reason = (frame.code, frame.reason) if frame else (None, str(exc))
        if code == CLOSE_UNAUTHORIZED:
            raise Unauthorized(401, reason or "the API key is no longer valid")
        if code == CLOSE_FORBIDDEN:
            raise Forbidden(403, reason or "no longer allowed to follow the job")
        raise StreamError(code, reason)


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
                            yield Interim(_value(held))
                            held = None
                        continue
            except websockets.ConnectionClosed as exc:
                _closed(exc)
                if held is not None:
                    yield Result(_value(held)) if await has_result() else Interim(_value(held))
                return
            assert isinstance(text, str)
            if held is not None:
                yield Interim(_value(held))
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
