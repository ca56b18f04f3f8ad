"""The services on the MongoDB store: a whole platform over it, and a gateway whose MongoDB is away."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from mongomock_motor import AsyncMongoMockClient

from qrt_cli.dev import Platform
from qrt_common.bus.memory import InMemoryBus
from qrt_common.messages import SUBMITTED_QUEUE
from qrt_common.registry import ProgramRegistry
from qrt_common.store.mongo import MongoStore
from qrt_gateway.app import create_app
from qrt_gateway.context import Gateway
from qrt_gateway.streams import StreamHub
from tests.support.platform import logs_of, make_settings, wait_for
from tests.support.programs import merge_programs
from tests.support.waiting import eventually


@pytest.fixture
async def mongo_platform(tmp_path: Path) -> AsyncIterator[Platform]:
    store = MongoStore("mongodb://mock/qrt", client=AsyncMongoMockClient(tz_aware=True))
    settings = make_settings(
        tmp_path, merge_programs(tmp_path / "programs"), job_retention=1.0, purge_interval=0.2
    )
    platform = await Platform.start(settings, store=store)
    try:
        yield platform
    finally:
        await platform.stop()


async def test_jobs_run_end_to_end_on_the_mongo_store(mongo_platform: Platform):
    async with aiohttp.ClientSession(base_url=mongo_platform.url) as http:
        before = datetime.now(UTC) - timedelta(seconds=1)
        body = {"programId": "sample-program", "params": {"iterations": 2}, "sessionId": "s-1"}
        async with http.post("/jobs", json=body) as response:
            assert response.status == 200, await response.text()
            job_id = (await response.json())["id"]
        job = await wait_for(http, job_id)
        assert job["status"] == "Completed" and job["sessionId"] == "s-1"
        async with http.get(f"/jobs/{job_id}/results") as response:
            assert "All done!" in await response.json()
        assert "iteration" in await logs_of(http, job_id)
        query = {"session_id": "s-1", "created_after": before.isoformat()}
        async with http.get("/jobs", params=query) as response:
            assert [j["id"] for j in (await response.json())["jobs"]] == [job_id]
        async with http.get("/jobs", params={"created_after": "yesterday"}) as response:
            assert response.status == 400
            assert (await response.json())["field"] == "created_after"

        # QRT_JOB_RETENTION=1: the scheduler's sweep removes the job a moment after it ended.
        async def shown() -> int:
            async with http.get(f"/jobs/{job_id}") as response:
                return response.status

        await eventually(
            shown, "the finished job is gone after its retention", until=lambda s: s == 404,
            timeout=10,
        )  # fmt: skip


async def test_a_gateway_whose_mongodb_is_away_is_not_ready_and_accepts_nothing(tmp_path: Path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(tmp_path, merge_programs(tmp_path / "programs"))
    store = MongoStore(f"mongodb://127.0.0.1:{port}/qrt", timeout=0.3)
    bus = InMemoryBus()
    sent: list[dict] = []

    async def record(body: dict) -> None:
        sent.append(body)

    # One at a time, in order: once the sentinel below came, whatever was sent before it came.
    await bus.consume(SUBMITTED_QUEUE, record, prefetch=1)
    app = create_app(
        Gateway(settings, store, bus, ProgramRegistry(settings.programs_dir), StreamHub())
    )
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = "http://{}:{}".format(*runner.addresses[0][:2])
    try:
        opening = asyncio.create_task(store.open())  # what the service does at start-up
        async with aiohttp.ClientSession(base_url=url) as http:
            async with http.get("/readyz") as response:
                assert response.status == 503
                assert (await response.json())["checks"]["store"] is False
            async with http.post("/jobs", json={"programId": "noop"}) as response:
                assert response.status == 503
                assert "store" in (await response.json())["detail"]
            async with http.get("/jobs") as response:
                assert response.status == 503
        with pytest.raises(Exception, match="unreachable"):
            await opening
        sentinel = {"sentinel": True}
        await bus.send(SUBMITTED_QUEUE, sentinel)
        await eventually(lambda: sent, "the sentinel comes through the queue")
        assert sent == [sentinel]
    finally:
        await runner.cleanup()
        await bus.close()
        await store.close()
