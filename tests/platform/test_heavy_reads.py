"""One user's heavy reads against a real platform (`qrt dev`: gateway, scheduler and executor
on one event loop) while another user's job runs: the reads get everything, and the other job
is never taken from its executor (it keeps attempt 1)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from qrt_cli.dev import Platform
from qrt_common.jobs import Job, JobStatus, new_job_id, transition
from qrt_common.store.sqlite import SQLiteStore
from tests.support.platform import submit, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

INTERIMS = 30_000
STREAMS = 8
GETS = 4


async def stored_job(platform: Platform, interims: int) -> str:
    """A completed job of planqk-starter holding `interims` interim results and log lines,
    written straight into the platform's SQLite file (a program publishing them would take
    minutes)."""
    store = platform.store
    assert isinstance(store, SQLiteStore)
    job = Job(new_job_id(), "planqk-starter", "aer_simulator", "{}", max_execution_time=60)
    await store.add_job(job)
    for status in (JobStatus.RUNNING, JobStatus.COMPLETED):
        moved = transition(job, status, executor_id="elsewhere")
        assert await store.replace_job(moved, expected=job.status)
        job = moved
    with sqlite3.connect(store.path) as db:
        db.executemany(
            "INSERT INTO interims (job_id, attempt, idx, data) VALUES (?, 1, ?, ?)",
            ((job.id, n, f'{{"sum": {n}}}') for n in range(interims)),
        )
        db.executemany(
            "INSERT INTO logs (job_id, attempt, seq, text, written) VALUES (?, 1, ?, ?, 0)",
            ((job.id, n, f"line {n}\n") for n in range(interims)),
        )
    db.close()
    await store.set_result(job.id, '{"sum": -1}')
    return job.id


def read_heavily(url: str, job_id: str) -> dict[str, list[int]]:
    """STREAMS results streams and GETS of the interim results and the log at once, from a
    thread of the test's own (so that the clients' work is not the server loop's): how many
    items each reader got."""

    async def follow(http: aiohttp.ClientSession) -> int:
        frames = 0
        async with http.ws_connect(f"/stream/jobs/{job_id}", max_msg_size=0) as ws:
            async for message in ws:
                frames += message.type is aiohttp.WSMsgType.TEXT
        return frames

    async def fetch(http: aiohttp.ClientSession, what: str) -> int:
        async with http.get(f"/services/planqk-starter/{job_id}/{what}") as response:
            assert response.status == 200, await response.text()
            return len(await response.json())

    async def read() -> dict[str, list[int]]:
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(base_url=url, timeout=timeout) as http:
            readers: dict[str, Callable[[], Any]] = {
                "streams": lambda: [follow(http) for _ in range(STREAMS)],
                "interim-results": lambda: [fetch(http, "interim-results") for _ in range(GETS)],
                "log": lambda: [fetch(http, "log") for _ in range(GETS)],
            }
            counts = await asyncio.gather(*(asyncio.gather(*make()) for make in readers.values()))
            return dict(zip(readers, counts, strict=True))

    return asyncio.run(read())


async def test_heavy_reads_do_not_cost_another_job_its_executor(
    platform: Platform, http: aiohttp.ClientSession
):
    heavy = await stored_job(platform, INTERIMS)
    other = await submit(http, "sleeper", seconds=6, ticks=3)
    await wait_for(http, other, {"Running"})
    counts = await asyncio.to_thread(read_heavily, platform.url, heavy)
    assert counts == {
        "streams": [INTERIMS + 1] * STREAMS,  # the interim results, then the final result
        "interim-results": [INTERIMS] * GETS,
        "log": [INTERIMS] * GETS,
    }
    job = await wait_for(http, other, timeout=60)
    assert (job["status"], job["attempt"]) == ("Completed", 1), job
