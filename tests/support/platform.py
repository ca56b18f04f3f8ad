"""Talking to a running platform in tests: its settings, submitting jobs, waiting for them."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp

from qrt_common.settings import Settings

from .waiting import eventually

FINAL = {"Completed", "Failed", "Cancelled", "Cancelled - Ran too long"}


def make_settings(tmp_path: Path, programs_dir: Path, **overrides: Any) -> Settings:
    """Settings of a platform on loopback, with fast heartbeats and no simulated device."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "data_dir": tmp_path / "data",
        "programs_dir": programs_dir,
        "heartbeat_interval": 0.2,
        "heartbeat_timeout": 2.0,
        "executor_capacity": 4,
        "warm_pool_size": 2,
        "dev_device": False,
    }
    values.update(overrides)
    return Settings(**values)


async def submit(http: aiohttp.ClientSession, program: str, **params: Any) -> str:
    """Submit a job of `program` with `params`; its id (asserts the gateway took it)."""
    body = {"programId": program, "params": params}
    async with http.post("/jobs", json=body) as response:
        assert response.status == 200, await response.text()
        job_id: str = (await response.json())["id"]
        return job_id


async def get_json(http: aiohttp.ClientSession, path: str) -> Any:
    """What GET `path` answers, as JSON."""
    async with http.get(path) as response:
        return await response.json()


async def poll_status(
    http: aiohttp.ClientSession, path: str, statuses: Iterable[str], timeout: float = 30
) -> dict[str, Any]:
    """What `path` shows once the `status` it shows is one of `statuses`."""
    wanted = set(statuses)
    shown: dict[str, Any] = await eventually(
        lambda: get_json(http, path),
        f"{path} shows a status in {sorted(wanted)}",
        until=lambda body: body.get("status") in wanted,
        timeout=timeout,
    )
    return shown


async def wait_for(
    http: aiohttp.ClientSession,
    job_id: str,
    statuses: Iterable[str] = FINAL,
    timeout: float = 30,
) -> dict[str, Any]:
    """The job, once its status is one of `statuses` (by default: once it ended)."""
    return await poll_status(http, f"/jobs/{job_id}", statuses, timeout)


async def logs_of(http: aiohttp.ClientSession, job_id: str) -> str:
    """The job's log."""
    async with http.get(f"/jobs/{job_id}/logs") as response:
        assert response.status == 200
        text: str = await response.json()
        return text
