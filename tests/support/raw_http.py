"""HTTP/1.1 spoken byte by byte over a real socket, for requests no HTTP client will send (a
request line over the server's limit, a body shorter than its Content-Length)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

ANSWER_WITHIN = 30.0
"""Seconds a test waits for an answer before failing (a server that waits for a body that
never comes would hang the test otherwise); no timing is asserted."""


@dataclass(frozen=True)
class Answer:
    """A response as read off the socket: its status, headers (names lower-cased) and body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type", "").startswith("application/json"), self
        return json.loads(self.body)


async def exchange(
    address: tuple[str, int], request: bytes, *, until_closed: bool = False
) -> Answer:
    """Send `request` as it is to `address` (host, port) and read the one response (`until_closed`: then wait until the
    server closes the connection). Raises TimeoutError when no answer comes within
    ANSWER_WITHIN seconds."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), ANSWER_WITHIN)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(reader.readexactly(length), ANSWER_WITHIN)
        if until_closed:
            await asyncio.wait_for(reader.read(), ANSWER_WITHIN)
        return Answer(int(status_line.split()[1]), headers, body)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):  # the server closed first
            await writer.wait_closed()
