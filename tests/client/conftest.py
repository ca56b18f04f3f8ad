"""One `qrt dev` (a subprocess, as a user runs it) for every client test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qrt_client import Client
from tests.support.dev import DevServer, serving


@pytest.fixture(scope="session")
def qrt_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    root = tmp_path_factory.mktemp("client")
    with serving(root) as server:
        yield server


@pytest.fixture
def client(qrt_dev: DevServer) -> Iterator[Client]:
    with Client(qrt_dev.url) as opened:
        yield opened
