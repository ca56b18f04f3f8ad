"""Shared fixtures: a real platform (gateway, scheduler, executor with its warm pool) on loopback."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import shutil
import stat
import subprocess
import time
import zipfile
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
import pytest_asyncio

from qrt_cli.dev import Platform
from qrt_common.settings import Settings
from qrt_executor.pool import WarmPool
from tests.mesh import RABBITMQ_URL, Mesh

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_PROGRAMS = ROOT / "programs"
TEST_PROGRAMS = Path(__file__).resolve().parent / "programs"
FINAL = {"Completed", "Failed", "Cancelled", "Cancelled - Ran too long"}


def merge_programs(target: Path) -> Path:
    """A programs directory holding the bundled programs and the test programs."""
    target.mkdir(parents=True, exist_ok=True)
    lines = ["[programs]"]
    for source in (BUNDLED_PROGRAMS, TEST_PROGRAMS):
        for package in source.iterdir():
            if (package / "__init__.py").exists() or (package / "planqk.json").exists():
                shutil.copytree(package, target / package.name, dirs_exist_ok=True)
        body = (source / "programs.ini").read_text().split("[programs]", 1)[1]
        lines += [line for line in body.splitlines() if "=" in line and not line.startswith("#")]
    (target / "programs.ini").write_text("\n".join(lines) + "\n")
    return target


DEFAULT_SOURCE = "def main(backend, messenger):\n    pass\n"


def write_program(
    root: Path, package: str, meta: dict[str, Any] | str, source: str = DEFAULT_SOURCE
) -> None:
    """A program package `<root>/<package>/{__init__.py, <package>.py, <package>.json}`."""
    (root / package).mkdir(parents=True, exist_ok=True)
    (root / package / "__init__.py").write_text("")
    (root / package / f"{package}.py").write_text(source)
    text = meta if isinstance(meta, str) else json.dumps(meta)
    (root / package / f"{package}.json").write_text(text)


@pytest.fixture
def programs_dir(tmp_path: Path) -> Path:
    return merge_programs(tmp_path / "programs")


def make_settings(tmp_path: Path, programs_dir: Path, **overrides: Any) -> Settings:
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


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    """One platform per test module (starting its zygote imports qiskit: about a second)."""
    root = tmp_path_factory.mktemp("platform")
    running = await Platform.start(make_settings(root, merge_programs(root / "programs")))
    try:
        yield running
    finally:
        await running.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[WarmPool]:
    """A warm pool of one job process, with its own zygote."""
    warm = WarmPool(size=1)
    await warm.start()
    yield warm
    await warm.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def http(platform: Platform) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=platform.url) as session:
        yield session


async def submit(http: aiohttp.ClientSession, program: str, **params: Any) -> str:
    body = {"programId": program, "params": params}
    async with http.post("/jobs", json=body) as response:
        assert response.status == 200, await response.text()
        job_id: str = (await response.json())["id"]
        return job_id


async def wait_for(
    http: aiohttp.ClientSession,
    job_id: str,
    statuses: Iterable[str] = FINAL,
    timeout: float = 30,
) -> dict[str, Any]:
    """Poll the job until its status is one of `statuses`; returns the job."""
    return await poll_status(http, f"/jobs/{job_id}", statuses, timeout)


async def poll_status(
    http: aiohttp.ClientSession, path: str, statuses: Iterable[str], timeout: float
) -> dict[str, Any]:
    """Poll `path` until the `status` it shows is one of `statuses`; returns what it showed."""
    wanted = set(statuses)
    deadline = time.monotonic() + timeout
    while True:
        async with http.get(path) as response:
            shown: dict[str, Any] = await response.json()
        if shown["status"] in wanted:
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} still {shown['status']} after {timeout} s")
        await asyncio.sleep(0.02)


async def logs_of(http: aiohttp.ClientSession, job_id: str) -> str:
    async with http.get(f"/jobs/{job_id}/logs") as response:
        assert response.status == 200
        text: str = await response.json()
        return text


@pytest.fixture(scope="session")
def rabbitmq() -> None:
    """The machine's RabbitMQ; started if it is down."""

    async def reachable() -> bool:
        try:
            connection = await aio_pika.connect(RABBITMQ_URL, timeout=3)
        except Exception:
            return False
        await connection.close()
        return True

    if not asyncio.run(reachable()):
        subprocess.run(["rabbitmq-server", "-detached"], check=False)
        subprocess.run(["rabbitmqctl", "await_startup", "--timeout", "60"], check=True)


def zip_of(files: Mapping[str, str | bytes], *, modes: dict[str, int] | None = None) -> bytes:
    """A zip holding `files` (path to content); `modes` sets an entry's Unix mode bits."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (modes or {}).get(name, stat.S_IFREG | 0o644) << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def b64_zip_of(files: Mapping[str, str | bytes], **options: Any) -> str:
    """`zip_of(files)` base64-encoded, as `POST /programs` takes it."""
    return base64.b64encode(zip_of(files, **options)).decode()


@pytest.fixture
async def mesh(tmp_path: Path, rabbitmq: None) -> AsyncIterator[Mesh]:
    """Services as separate processes on the machine's RabbitMQ, in a namespace of their own."""
    platform = Mesh(tmp_path, merge_programs(tmp_path / "programs"))
    try:
        yield platform
    finally:
        platform.stop_all()
        await platform.delete_namespace()
