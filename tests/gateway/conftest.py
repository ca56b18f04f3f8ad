"""The gateway on its own: its application on a real SQLite store and the in-process bus, with
no scheduler and no executor. Tests see what it sends by consuming the bus queues, and move a
job along by writing the store as the scheduler would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from qrt_common.bus.memory import InMemoryBus
from qrt_common.errors import BusUnavailable
from qrt_common.jobs import Job, JobStatus, transition
from qrt_common.messages import CANCEL_QUEUE, SUBMITTED_QUEUE
from qrt_common.registry import ProgramRegistry
from qrt_common.settings import Settings
from qrt_common.store.sqlite import SQLiteStore
from qrt_gateway.app import create_app
from qrt_gateway.context import Gateway
from qrt_gateway.main import start_server
from qrt_gateway.streams import StreamHub
from tests.support.programs import merge_programs
from tests.support.waiting import eventually

WATCHED_QUEUES = (SUBMITTED_QUEUE, CANCEL_QUEUE)
_MARKER = "_test_marker"


class SwitchableBus(InMemoryBus):
    """The in-process bus, which refuses to send to the queues in `refused` (a broker down)."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: set[str] = set()
        self.refusal: Exception = BusUnavailable("the broker is down")

    async def send(self, queue: str, body: dict[str, Any]) -> None:
        if queue in self.refused:
            raise self.refusal
        await super().send(queue, body)


class Harness:
    """A gateway under test: its HTTP client, its collaborators, and what it sent."""

    def __init__(self, gateway: Gateway, client: TestClient, bus: SwitchableBus) -> None:
        self.gateway, self.client, self.bus = gateway, client, bus
        self.store = gateway.store
        self._received: dict[str, list[dict[str, Any]]] = {q: [] for q in WATCHED_QUEUES}

    async def watch_queues(self) -> None:
        for queue in WATCHED_QUEUES:
            received = self._received[queue]

            async def record(
                body: dict[str, Any], received: list[dict[str, Any]] = received
            ) -> None:
                received.append(body)

            # One consumer: messages are recorded in the order they were sent.
            await self.bus.consume(queue, record, prefetch=1)

    async def sent(self, queue: str) -> list[dict[str, Any]]:
        """Every message sent on `queue` so far (a marker sent after them all has arrived)."""
        marker = {_MARKER: str(uuid.uuid4())}
        await InMemoryBus.send(self.bus, queue, marker)
        received = self._received[queue]
        await eventually(lambda: marker in received, f"the marker arrived on {queue}")
        return [body for body in received if _MARKER not in body]

    async def call(self, method: str, path: str, status: int = 200, **options: Any) -> Any:
        """The JSON body of a request that must answer `status` (None for an empty body)."""
        async with self.client.request(method, path, **options) as response:
            text = await response.text()
            assert response.status == status, (response.status, text)
            return await response.json() if text else None

    async def submit(self, program: str = "noop", status: int = 200, **fields: Any) -> Any:
        """POST /jobs `{"programId": program, **fields}`; the body answered."""
        return await self.call("POST", "/jobs", status, json={"programId": program, **fields})

    async def job(self, job_id: str) -> Job:
        job = await self.store.get_job(job_id)
        assert job is not None, f"job {job_id} is not stored"
        return job

    async def move(self, job_id: str, *statuses: JobStatus, reason: str | None = None) -> Job:
        """Move the stored job through `statuses`, as the scheduler and ledger would."""
        job = await self.job(job_id)
        for status in statuses:
            moved = transition(job, status, reason=reason, executor_id="ex1")
            assert await self.store.replace_job(moved, expected=job.status)
            job = moved
        return job


MakeGateway = Callable[..., Awaitable[Harness]]


@pytest.fixture(scope="session")
def bundled_programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled and test programs; the gateway only reads them (uploads go to the store)."""
    return merge_programs(tmp_path_factory.mktemp("gateway") / "programs")


@pytest.fixture
async def make_gateway(tmp_path: Path, bundled_programs: Path) -> AsyncIterator[MakeGateway]:
    """Starts gateways with settings `overrides`; all stopped after the test."""
    programs = bundled_programs
    async with AsyncExitStack() as stack:

        async def make(**overrides: Any) -> Harness:
            name = uuid.uuid4().hex[:8]
            values: dict[str, Any] = {
                "data_dir": tmp_path / f"data-{name}",
                "programs_dir": programs,
                "heartbeat_timeout": 10.0,
            }
            settings = Settings(**(values | overrides))
            store = SQLiteStore(tmp_path / f"qrt-{name}.db")
            await store.open()
            stack.push_async_callback(store.close)
            bus = SwitchableBus()
            stack.push_async_callback(bus.close)
            registry = ProgramRegistry(programs)
            gateway = Gateway(settings, store, bus, registry, StreamHub())
            client = TestClient(TestServer(create_app(gateway)))
            await client.start_server()
            stack.push_async_callback(client.close)
            harness = Harness(gateway, client, bus)
            await harness.watch_queues()
            return harness

        yield make


@pytest.fixture
async def gw(make_gateway: MakeGateway) -> Harness:
    """A gateway with default settings (heartbeat timeout 10 s)."""
    return await make_gateway()


@pytest.fixture
async def served(tmp_path: Path, bundled_programs: Path) -> AsyncIterator[tuple[str, int]]:
    """The gateway as `qrt gateway` and `qrt dev` serve it (`start_server`: its own connection
    handling included) on 127.0.0.1, on a real SQLite store: its host and port."""
    settings = Settings(host="127.0.0.1", port=0, data_dir=tmp_path / "data",
                        programs_dir=bundled_programs, max_request_bytes=1024)  # fmt: skip
    async with AsyncExitStack() as stack:
        store = SQLiteStore(tmp_path / "qrt.db")
        await store.open()
        stack.push_async_callback(store.close)
        bus = SwitchableBus()
        stack.push_async_callback(bus.close)
        runner = await start_server(settings, store, bus, ProgramRegistry(bundled_programs))
        stack.push_async_callback(runner.cleanup)
        host, port = runner.addresses[0][:2]
        yield host, port
