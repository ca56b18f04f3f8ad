"""Large answers without stalling the gateway: work in slices that hand the event loop back,
and JSON bodies written piece by piece as the store's pages arrive.

A job's output may be a hundred thousand interim results or megabytes of log, and many clients
may read it at once. Each such reader pauses every `SLICE_SECONDS` of work (or SLICE_STEPS
items), so everything else the process does (other requests, and under `qrt dev` the scheduler
and the executor's heartbeats) waits for at most one slice per busy reader, never for a whole
read.
"""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web


def utf8(text: str) -> bytes:
    """`text` in UTF-8, each lone surrogate (which UTF-8 cannot carry, and a Python program can
    put in a string) written as its escape `\\udXXX`: inside a JSON string literal that is the
    same string, so no body or frame fails to encode."""
    return text.encode("utf-8", "backslashreplace")


SLICE_SECONDS = 0.002
"""The longest a reader works before it lets the event loop run something else."""
SLICE_STEPS = 500
"""The most steps (frames, items) a reader takes before it lets the loop run something else,
however fast they go."""
CHUNK_BYTES = 64 * 1024
"""A streamed body goes out in pieces of about this size."""
STRING_SLICE = 256 * 1024
"""Characters of a long text encoded (or searched) at a time."""


class Pacer:
    """Lets a long loop hand the event loop back: `await pause()` after each step yields once
    SLICE_SECONDS of work or SLICE_STEPS steps have passed since the last yield."""

    def __init__(self, slice_seconds: float = SLICE_SECONDS) -> None:
        self._slice = slice_seconds
        self._since = time.monotonic()
        self._steps = 0

    async def pause(self) -> None:
        self._steps += 1
        if self._steps >= SLICE_STEPS or time.monotonic() - self._since >= self._slice:
            await asyncio.sleep(0)
            self._since, self._steps = time.monotonic(), 0


class ClientGone(ConnectionResetError):
    """The client closed its connection while a body was being written to it: nothing failed
    on this side. `response` is the one begun; the error middleware hands it back to aiohttp,
    which ends the connection without an error (a client that hangs up mid-download must not
    fill the log with tracebacks)."""

    def __init__(self, response: web.StreamResponse) -> None:
        super().__init__("the client closed the connection during the answer")
        self.response = response


class JsonBody:
    """A 200 response whose JSON body is written in pieces (chunked transfer encoding).

    Its headers go out with the first piece, so whatever can fail with an error body (a
    missing job, a bad parameter) must be checked before the first `write`.
    """

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self._response = web.StreamResponse()
        self._response.content_type = "application/json"
        self._response.charset = "utf-8"
        self._pending: list[str] = []
        self._size = 0
        self.pacer = Pacer()

    async def write(self, text: str) -> None:
        """Add `text` to the body; sends what has gathered once it is CHUNK_BYTES."""
        self._pending.append(text)
        self._size += len(text)
        if self._size >= CHUNK_BYTES:
            await self._flush()
        await self.pacer.pause()

    async def write_string(self, text: str) -> None:
        """Add `text` to the body as a JSON string literal."""
        await self.write('"')
        await self.write_escaped(text)
        await self.write('"')

    async def write_escaped(self, text: str) -> None:
        """Add `text` as a piece of a JSON string literal (the quotes written apart), encoded a
        slice at a time."""
        for start in range(0, len(text), STRING_SLICE):
            await self.write(string_content(text[start : start + STRING_SLICE]))

    async def _flush(self) -> None:
        data = utf8("".join(self._pending))
        self._pending, self._size = [], 0
        try:
            if not self._response.prepared:
                await self._response.prepare(self._request)
            if data:
                await self._response.write(data)
        except ConnectionError as exc:
            raise ClientGone(self._response) from exc

    async def finish(self) -> web.StreamResponse:
        """Send the rest of the body and end it; the response, for the handler to return.
        Raises ClientGone (as every write) if the client went away meanwhile."""
        if not self._response.prepared:  # all of it fits one piece: no chunked encoding
            self._response.content_length = len(utf8("".join(self._pending)))
        await self._flush()
        try:
            await self._response.write_eof()
        except ConnectionError as exc:
            raise ClientGone(self._response) from exc
        return self._response


def string_content(text: str) -> str:
    """`text` escaped as the inside of a JSON string literal (without its quotes): pieces of
    one long string can be encoded one at a time."""
    return json.dumps(text, ensure_ascii=False)[1:-1]


async def contains_any(text: str, words: tuple[str, ...], pacer: Pacer) -> bool:
    """Whether `text` holds one of `words`, searched a slice at a time (with `pacer`)."""
    overlap = max(map(len, words)) - 1
    for start in range(0, len(text), STRING_SLICE):
        end = start + STRING_SLICE + overlap
        if any(text.find(word, start, end) >= 0 for word in words):
            return True
        await pacer.pause()
    return False
