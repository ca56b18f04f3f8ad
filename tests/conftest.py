"""Shared fixtures: a real platform (gateway, scheduler, executor with its warm pool) on loopback,
a warm pool, the machine's RabbitMQ, services as processes. Helpers live in `tests/support`."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import pytest
import pytest_asyncio

from qrt_cli.dev import Platform
from qrt_executor.pool import WarmPool
from tests.support.dev import DevServer, serving
from tests.support.mesh import RABBITMQ_URL, Mesh, PrivateBroker
from tests.support.platform import make_settings
from tests.support.programs import merge_programs


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With `-n 2 --dist loadgroup` (opt-in), hands each pytest-xdist worker whole test
    files, or whole `xdist_group`s: a module's fixtures (a platform, a warm pool) start once,
    on one worker, and the tests of one group (they plant a file at a fixed path) never run at
    the same time. Other `--dist` modes are xdist's own."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class FileOrGroupScheduling(LoadGroupScheduling):  # type: ignore[misc]  # (xdist is untyped)
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.rfind("@") > nodeid.rfind("]"):
                return nodeid.split("@")[-1]
            return nodeid.split("::", 1)[0]

    return FileOrGroupScheduling(config, log)


@pytest.fixture
def programs_dir(tmp_path: Path) -> Path:
    return merge_programs(tmp_path / "programs")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    """One platform per test module (starting its zygote imports qiskit: about a second)."""
    root = tmp_path_factory.mktemp("platform")
    running = await Platform.start(make_settings(root, merge_programs(root / "programs")))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture(scope="session")
def qrt_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """One `qrt dev` (a subprocess, as a user runs it) for the whole session, shared by the
    client, CLI, README and walkthrough tests: none restarts or reconfigures it, and each tells
    its own jobs apart (by id or a tag of its own). A test that needs a fresh one starts a
    `DevServer` of its own."""
    with serving(tmp_path_factory.mktemp("qrt-dev")) as server:
        yield server


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


@pytest.fixture
def private_broker() -> Iterator[PrivateBroker]:
    """A RabbitMQ node of the test's own, to stop and start at will (skipped where none can
    run)."""
    try:
        broker = PrivateBroker()
    except (RuntimeError, KeyError) as exc:
        pytest.skip(f"no private RabbitMQ node possible here: {exc}")
    broker.start()
    try:
        yield broker
    finally:
        broker.remove()


@pytest.fixture
async def mesh(tmp_path: Path, rabbitmq: None) -> AsyncIterator[Mesh]:
    """Services as separate processes on the machine's RabbitMQ, in a namespace of their own."""
    platform = Mesh(tmp_path, merge_programs(tmp_path / "programs"))
    try:
        yield platform
    finally:
        platform.stop_all()
        await platform.delete_namespace()
