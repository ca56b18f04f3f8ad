"""The client tests talk to the session's `qrt dev` (`qrt_dev`, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from qrt_client import Client
from tests.support.dev import DevServer, serving_with_keys


@pytest.fixture
def client(qrt_dev: DevServer) -> Iterator[Client]:
    with Client(qrt_dev.url) as opened:
        yield opened


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevServer, str]]:
    """A `qrt dev --auth` of the module's own, and a platform admin's key (`qrt admin`)."""
    with serving_with_keys(tmp_path_factory.mktemp("client-auth")) as served:
        yield served


def member_key(server: DevServer, admin_key: str, user: str, instance: str) -> tuple[str, str]:
    """A new user `user`, member of the new `instance`: their key and its id (made over the
    admin API with `admin_key`)."""
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {admin_key}"}
    ) as admin:
        assert admin.post("/admin/users", json={"name": user}).status_code == 201
        made = admin.post(f"/admin/users/{user}/keys", json={})
        assert made.status_code == 201, made.text
        assert admin.post("/admin/instances", json={"name": instance}).status_code == 201
        joined = admin.put(f"/admin/instances/{instance}/members/{user}", json={"role": "member"})
        assert joined.status_code == 200, joined.text
    return made.json()["key"], made.json()["id"]
