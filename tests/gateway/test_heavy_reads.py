"""Reading a large output from the gateway: the reader gets all of it, and the event loop keeps
running everything else meanwhile (the gateway shares its loop with the scheduler and executor
under `qrt dev`).

"Meanwhile" is counted, not timed: a task in the same loop counts loop iterations, and a read
must see many of them pass between its first and its last piece, as a reader that hands the
loop back every few hundred items does. A reader that sends everything in one go sees a handful
(those of the socket's reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import AsyncIterator

import aiohttp
import pytest

from qrt_common.jobs import JobStatus
from qrt_common.store.sqlite import SQLiteStore

from .conftest import Harness

ITEMS = 30_000
INTERLEAVED = 25
"""Loop iterations that must pass while one read is sent (the gateway yields about every 500
items, so about 60 do; one that sends everything at once lets through a handful)."""


class Ticker:
    """Counts the iterations of the event loop it runs in."""

    def __init__(self) -> None:
        self.ticks = 0

    async def run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0)


@pytest.fixture
async def ticker() -> AsyncIterator[Ticker]:
    counting = Ticker()
    task = asyncio.create_task(counting.run())
    yield counting
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def large_job(gw: Harness, items: int = ITEMS) -> str:
    """An ended job of planqk-starter with `items` interim results and log lines."""
    job_id: str = (await gw.submit("planqk-starter"))["id"]
    await gw.move(job_id, JobStatus.RUNNING, JobStatus.COMPLETED)
    store = gw.store
    assert isinstance(store, SQLiteStore)
    with contextlib.closing(sqlite3.connect(store.path)) as db, db:
        db.executemany(
            "INSERT INTO interims (job_id, attempt, idx, data) VALUES (?, 1, ?, ?)",
            ((job_id, n, f'{{"n": {n}}}') for n in range(items)),
        )
        db.executemany(
            "INSERT INTO logs (job_id, attempt, seq, text, written) VALUES (?, 1, ?, ?, 0)",
            ((job_id, n, f"line {n}\n") for n in range(items)),
        )
    assert await store.set_result(job_id, '{"n": -1}')
    return job_id


def spread(ticks: list[int]) -> int:
    """How many loop iterations passed between the first and the last piece."""
    return ticks[-1] - ticks[0]


async def test_a_long_results_stream_lets_the_loop_run(gw: Harness, ticker: Ticker):
    job_id = await large_job(gw)
    frames: list[str] = []
    ticks: list[int] = []
    async with gw.client.ws_connect(f"/stream/jobs/{job_id}", max_msg_size=0) as ws:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                frames.append(message.data)
                ticks.append(ticker.ticks)
    assert frames == [f'{{"n": {n}}}' for n in range(ITEMS)] + ['{"n": -1}']
    assert spread(ticks) >= INTERLEAVED, spread(ticks)


async def test_a_long_log_stream_lets_the_loop_run(gw: Harness, ticker: Ticker):
    job_id = await large_job(gw)
    text: list[str] = []
    ticks: list[int] = []
    async with gw.client.ws_connect(f"/stream/jobs/{job_id}/logs", max_msg_size=0) as ws:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                text.append(message.data)
                ticks.append(ticker.ticks)
    assert "".join(text) == "".join(f"line {n}\n" for n in range(ITEMS))
    assert spread(ticks) >= INTERLEAVED, spread(ticks)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("interim-results", [{"n": n} for n in range(ITEMS)]),
        (
            "log",
            [{"message": f"line {n}", "severity": "INFO", "timestamp": None} for n in range(ITEMS)],
        ),
    ],
)
async def test_long_service_answers_let_the_loop_run(gw: Harness, ticker: Ticker, path, expected):
    job_id = await large_job(gw)
    ticks: list[int] = []
    body = bytearray()
    async with gw.client.get(f"/services/planqk-starter/{job_id}/{path}") as response:
        assert response.status == 200
        async for piece in response.content.iter_any():
            body += piece
            ticks.append(ticker.ticks)
    assert json.loads(body) == expected
    assert spread(ticks) >= INTERLEAVED, spread(ticks)


async def test_a_long_job_log_lets_the_loop_run(gw: Harness, ticker: Ticker):
    job_id = await large_job(gw)
    ticks: list[int] = []
    body = bytearray()
    async with gw.client.get(f"/jobs/{job_id}/logs") as response:
        assert response.status == 200
        async for piece in response.content.iter_any():
            body += piece
            ticks.append(ticker.ticks)
    assert json.loads(body) == "".join(f"line {n}\n" for n in range(ITEMS))
    assert spread(ticks) >= INTERLEAVED, spread(ticks)
