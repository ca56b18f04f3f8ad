"""HTTP to the platform (httpx): the key, error answers as exceptions, and retries with
backoff where a retry is safe."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import httpx

from .errors import TransportError, api_error

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


class Transport:
    """One httpx connection pool to the platform at `url`; `key` goes as a bearer token."""

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
                    raise TransportError(f"{method} {self.url}{path}: {exc!r}") from exc
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
