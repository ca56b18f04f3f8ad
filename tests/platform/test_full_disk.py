"""A full disk under `qrt dev`'s data directory (a real tmpfs that runs full): submits answer
503 and /readyz says the store is not ready while it lasts; the job that was running meanwhile
ends once there is space again, with every line of its log, on its first attempt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from qrt_cli.dev import Platform
from qrt_common.messages import HEARTBEAT_TOPIC, Heartbeat
from qrt_common.wire import decode
from tests.support.disks import SmallDisk, small_disk
from tests.support.platform import get_json, logs_of, make_settings, submit, wait_for
from tests.support.programs import merge_programs
from tests.support.waiting import eventually


@pytest.fixture
async def on_small_disk(tmp_path: Path) -> AsyncIterator[tuple[Platform, SmallDisk]]:
    with small_disk(tmp_path / "disk") as disk:
        settings = make_settings(tmp_path, merge_programs(tmp_path / "programs"),
                                 data_dir=disk.path)  # fmt: skip
        platform = await Platform.start(settings)
        try:
            yield platform, disk
        finally:
            disk.free()
            await platform.stop()


async def readiness(http: aiohttp.ClientSession) -> tuple[int, dict[str, bool]]:
    async with http.get("/readyz") as response:
        checks: dict[str, bool] = (await response.json())["checks"]
        return response.status, checks


async def test_a_full_disk_refuses_submits_until_there_is_space_and_loses_nothing(
    on_small_disk: tuple[Platform, SmallDisk],
):
    platform, disk = on_small_disk
    beats: list[Heartbeat] = []

    async def heard(body: dict[str, Any]) -> None:
        beats.append(decode(Heartbeat, body))

    await platform.bus.subscribe(HEARTBEAT_TOPIC, heard)
    async with aiohttp.ClientSession(base_url=platform.url) as http:
        running = await submit(http, "sleeper", seconds=1, ticks=2)
        await wait_for(http, running, {"Running"})
        disk.fill()
        async with http.post("/jobs", json={"programId": "noop"}) as response:
            assert response.status == 503, await response.text()
            refused = await response.json()
        assert refused["detail"].startswith("service unavailable: the store cannot write")
        assert "the disk is full" in refused["detail"]
        _, checks = await eventually(
            lambda: readiness(http), "/readyz says the store is not ready",
            until=lambda answer: answer[0] == 503,
        )  # fmt: skip
        assert checks == {"store": False, "bus": True}
        # The job's process ends while the disk is full: its log, result and end wait.
        beats.clear()
        await eventually(lambda: [b for b in beats if running not in b.running],
                         "the executor no longer runs the job", timeout=60)  # fmt: skip
        assert (await get_json(http, f"/jobs/{running}"))["status"] == "Running"

        disk.free()
        job = await wait_for(http, running, timeout=90)
        assert (job["status"], job["attempt"]) == ("Completed", 1), job
        assert await logs_of(http, running) == (
            '{"tick": 0}\ntick 0\n{"tick": 1}\ntick 1\n"woke up"\n'
        )
        await eventually(lambda: readiness(http), "/readyz says ready again",
                         until=lambda answer: answer[0] == 200, timeout=60)  # fmt: skip
        after = await submit(http, "noop")
        assert (await wait_for(http, after))["status"] == "Completed"
