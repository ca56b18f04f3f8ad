"""HTTP to the platform (httpx): the key, error answers as exceptions, and retries with
backoff where a retry is safe."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import httpx

from .errors import InvalidKey, TransportError, api_error

DEFAULT_RETRIES = 5
"""How many times a call that is safe to repeat (a read, a submit with its Idempotency-Key) is
tried again after a connection failure or a 503."""
FIRST_PAUSE, LONGEST_PAUSE = 0.25, 4.0
"""Seconds before the first retry; the pause doubles up to the longest (with jitter)."""


def backoff(retry: int, first_pause: float = FIRST_PAUSE) -> float:
    """Seconds to wait before retry number `retry` (from 0): `first_pause`, doubling, capped,
    with up to a quarter of jitter so that many clients do not come back at once."""
    pause = min(first_pause * 2.0**retry, LONGEST_PAUSE)
    return pause * (1 - random.random() / 4)


def check_key(key: str | None) -> str | None:
    """`key` as it is sent: without surrounding whitespace (a newline from `$(cat file)`, a
    space pasted along), None for no key or an empty one. Raises InvalidKey, naming the
    character and its position but never the key, for one holding anything but printable
    ASCII: no API key does (`qrt_<id>_<secret>`), and an HTTP header cannot carry it."""
    if key is None:
        return None
    key = key.strip()
    for at, char in enumerate(key):
        if not "!" <= char <= "~":
            raise InvalidKey(
                f"the API key holds {_named(char)} at position {at + 1}; an API key is "
                "qrt_<id>_<secret>, printable ASCII without spaces"
            )
    return key or None


def _named(char: str) -> str:
    if char == " ":
        return "a space"
    if char.isprintable():
        return f"U+{ord(char):04X} (not ASCII)"
    return f"a control or non-printing character (U+{ord(char):04X})"


def redacted(text: str, key: str | None) -> str:
    """`text` with `key` (and its secret, the part after its last `_`) left out: an error
    message must not hand the key on to a log or a terminal's scrollback."""
    if not key:
        return text
    secret = key.rsplit("_", 1)[-1]
    text = text.replace(key, "<API key>")
    return text.replace(secret, "<secret>") if len(secret) >= 8 else text


class Transport:
    """One httpx connection pool to the platform at `url`; `key` goes as a bearer token (after
    `check_key`: surrounding whitespace stripped, InvalidKey for a key no header can carry)."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = DEFAULT_RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
        first_pause: float = FIRST_PAUSE,
    ) -> None:
        self.url = url.rstrip("/")
        self.key = key = check_key(key)
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.retries, self.first_pause = retries, first_pause
        self.http = httpx.AsyncClient(
            base_url=self.url, headers=self.headers, timeout=timeout, transport=transport
        )

    @property
    def ws_url(self) -> str:
        """The platform's address for websockets (ws:// or wss://)."""
        return "ws" + self.url.removeprefix("http")

    async def request(
        self,
        method: str,
        path: str,
        *,
        retry: bool = False,
        json: Any = None,
        content: bytes | None = None,
        params: httpx.QueryParams | Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """The answer to one request; raises ApiError (a subclass per status) for an error
        answer, TransportError when the platform cannot be reached. With `retry`, connection
        failures and 503 are tried again (`retries` times, with `backoff` from `first_pause`)."""
        for attempt in range(self.retries + 1):
            last = not retry or attempt == self.retries
            try:
                response = await self.http.request(
                    method, path, json=json, content=content, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                if last:
                    said = f"{method} {self.url}{path}: {exc!r}"
                    if redacted(said, self.key) != said:  # the cause would show the key
                        raise TransportError(redacted(said, self.key)) from None
                    raise TransportError(said) from exc
            else:
                if response.status_code == 503 and not last:
                    await response.aclose()
                elif response.is_error:
                    raise _error_of(response)
                else:
                    return response
            await asyncio.sleep(backoff(attempt, self.first_pause))
        raise AssertionError("unreachable")  # the last attempt returns or raises

    async def close(self) -> None:
        await self.http.aclose()


def _error_of(response: httpx.Response) -> Exception:
    try:
        body = response.json()
    except ValueError:
        body = None
    return api_error(response.status_code, body, response.text)
