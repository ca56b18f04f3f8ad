"""The client tests talk to the session's `qrt dev` (`qrt_dev`, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qrt_client import Client
from tests.support.dev import DevServer


@pytest.fixture
def client(qrt_dev: DevServer) -> Iterator[Client]:
    with Client(qrt_dev.url) as opened:
        yield opened
