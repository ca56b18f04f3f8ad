"""The gateway against its own OpenAPI document: schemathesis sends requests generated from
`/openapi.json` (valid ones, and ones that break the schema) to a real gateway serving on a
socket, and checks that no answer is a server error, that every status is one the document
lists for its route, and that every body fits the schema documented for its status.

The gateway runs in a thread of its own (with its own event loop, a SQLite store and the
in-process bus), since schemathesis calls it synchronously. Each route gets a bounded number of
examples, so the whole run takes seconds.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from qrt_common.bus.memory import InMemoryBus
from qrt_common.registry import ProgramRegistry
from qrt_common.settings import Settings
from qrt_common.store.sqlite import SQLiteStore
from qrt_gateway.app import ROUTES
from qrt_gateway.main import start_server
from qrt_gateway.openapi import openapi_document

EXAMPLES = 12
"""Examples per route and generation mode."""
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


class GatewayThread(threading.Thread):
    """A gateway serving on 127.0.0.1 from a thread (and event loop) of its own."""

    def __init__(self, root: Path, programs: Path) -> None:
        super().__init__(name="fuzzed-gateway", daemon=True)
        self._root, self._programs = root, programs
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self.url = ""
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self.error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop, self._stopping = asyncio.get_running_loop(), asyncio.Event()
        settings = Settings(host="127.0.0.1", port=0, data_dir=self._root / "data",
                            programs_dir=self._programs)  # fmt: skip
        store = SQLiteStore(self._root / "qrt.db")
        await store.open()
        bus = InMemoryBus()
        runner = await start_server(settings, store, bus, ProgramRegistry(self._programs))
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()
            await bus.close()
            await store.close()

    def started(self) -> str:
        self.start()
        assert self._ready.wait(60), "the gateway did not start within 60 s"
        if self.error is not None:
            raise self.error
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, bundled_programs: Path) -> Iterator[str]:
    gateway = GatewayThread(tmp_path_factory.mktemp("fuzzed"), bundled_programs)
    url = gateway.started()
    try:
        yield url
    finally:
        gateway.stop()


SCHEMA = schemathesis.openapi.from_dict(openapi_document(ROUTES, title="qrt", version="test"))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]  # type: ignore[union-attr]


def test_the_served_document_is_the_one_fuzzed(served: str) -> None:
    with urllib.request.urlopen(f"{served}/openapi.json", timeout=30) as response:
        served_paths = json.load(response)["paths"]
    assert served_paths == SCHEMA.raw_schema["paths"]


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=str)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_every_answer_is_documented_and_none_is_a_server_error(
    served: str, operation: Any, mode: schemathesis.GenerationMode
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              database=None)  # fmt: skip
    def answers(case: Any) -> None:
        case.call_and_validate(base_url=served, checks=CHECKS)

    try:
        answers()
    except Unsatisfiable:
        # Nothing in this route's request can break its schema (a path of any text).
        assert mode is schemathesis.GenerationMode.NEGATIVE
