"""API keys on (QRT_AUTH): every route but health, metrics and the API's description needs
`Authorization: Bearer <key>`; a missing, malformed, wrong, expired or revoked key is a 401 that
names the problem."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from qrt_common.account_admin import AccountAdmin
from qrt_common.accounts import new_key
from qrt_common.errors import ConfigurationError
from qrt_common.jobs import utcnow
from qrt_gateway.app import ROUTES
from tests.support.waiting import eventually

from .conftest import Harness, MakeGateway

PEPPER = "a test pepper, not a secret"
OPEN = {"/healthz", "/readyz", "/metrics"}
TOKEN_EXCHANGES = {"/token", "/identity/token"}
"""These check the credentials in their own requests (tests/gateway/test_tokens.py)."""


@pytest.fixture
async def locked(make_gateway: MakeGateway) -> Harness:
    return await make_gateway(auth=True, key_pepper=PEPPER)


def accounts(gw: Harness) -> AccountAdmin:
    return AccountAdmin(gw.store, PEPPER.encode())


async def user_key(gw: Harness, name: str = "alice", *, admin: bool = True) -> str:
    await accounts(gw).add_user(name, admin=admin)
    key, _ = await accounts(gw).create_key(name)
    return key


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def refused(gw: Harness, method: str, path: str, detail: str, **options) -> None:
    async with gw.client.request(method, path, **options) as response:
        assert response.status == 401, (method, path, await response.text())
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        body = await response.json()
        assert detail in body["detail"], body


@pytest.mark.parametrize(
    "route",
    [r for r in ROUTES if r.path not in OPEN | TOKEN_EXCHANGES],
    ids=lambda r: f"{r.method} {r.path}",
)
async def test_every_api_route_needs_a_key(locked: Harness, route):
    path = re.sub(r"\{[a-z_]+\}", "x", route.path)
    headers = {"Upgrade": "websocket", "Connection": "Upgrade"} if "/stream/" in path else {}
    await refused(locked, route.method, path, "missing Authorization header", headers=headers)


async def test_health_metrics_and_the_api_description_need_none(locked: Harness):
    for path in (*OPEN, "/openapi.json", "/docs"):
        async with locked.client.get(path) as response:
            assert response.status == 200, path


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        ("Basic dXNlcjpwYXNz", "must be 'Bearer <API key or access token>'"),
        ("Bearer", "must be 'Bearer <API key or access token>'"),
        ("Bearer nonsense", "neither an API key nor a valid access token"),
        ("Bearer qrt_0123456789abcdef_" + "A" * 43, "the API key is wrong"),
    ],
)
async def test_a_malformed_or_unknown_credential_is_refused(
    locked: Harness, authorization: str, detail: str
):
    await refused(locked, "GET", "/jobs", detail, headers={"Authorization": authorization})


async def test_a_key_with_one_character_changed_is_refused(locked: Harness):
    key = await user_key(locked)
    await locked.call("GET", "/jobs", headers=bearer(key))
    wrong = key[:-1] + ("B" if key[-1] == "A" else "A")
    await refused(locked, "GET", "/jobs", "the API key is wrong", headers=bearer(wrong))


async def test_an_expired_key_is_refused(locked: Harness):
    await accounts(locked).add_user("alice")
    key, record = new_key("alice", PEPPER.encode(), expires=utcnow() - timedelta(seconds=1))
    await locked.store.add_key(record)
    await refused(locked, "GET", "/jobs", f"API key {record.id} is expired", headers=bearer(key))


async def test_a_revoked_key_is_refused_from_the_next_request_on(locked: Harness):
    key = await user_key(locked)
    other = await user_key(locked, "bob")
    await locked.call("GET", "/jobs", headers=bearer(key))
    record = await locked.gateway.store.list_keys("alice")
    await accounts(locked).revoke_key(record[0].id)  # in the store, as `qrt admin` does
    await refused(locked, "GET", "/jobs", "is revoked", headers=bearer(key))
    await refused(locked, "GET", "/stream/jobs/x", "is revoked", headers=bearer(key))
    await locked.call("GET", "/jobs", headers=bearer(other))


async def test_a_deleted_user_s_key_is_refused(locked: Harness):
    key = await user_key(locked, admin=False)  # the last admin cannot be removed
    await locked.call("GET", "/jobs", headers=bearer(key))
    await accounts(locked).remove_user("alice")
    await refused(locked, "GET", "/jobs", "the API key is wrong", headers=bearer(key))


async def test_a_key_s_last_use_is_kept(locked: Harness):
    key = await user_key(locked)
    before = utcnow()
    await locked.call("GET", "/backends", headers=bearer(key))

    async def noted() -> bool:
        (record,) = await locked.store.list_keys("alice")
        return record.last_used is not None and record.last_used >= before

    await eventually(noted, "the key's last use was written")


async def test_without_auth_no_key_is_needed(gw: Harness):
    await gw.call("GET", "/jobs")
    await gw.submit()


BOOTSTRAP = "qrt_00000000000000ab_" + "b" * 43


async def test_the_bootstrap_admin_key_opens_the_api_and_stays_revoked(make_gateway: MakeGateway):
    gw = await make_gateway(auth=True, key_pepper=PEPPER, bootstrap_admin_key=BOOTSTRAP)
    admin = await gw.store.get_user("admin")
    assert admin is not None and admin.admin
    await gw.call("GET", "/admin/users", headers=bearer(BOOTSTRAP))
    await accounts(gw).revoke_key("00000000000000ab")
    # A second gateway (or a restart) on the same store keeps it as it is.
    await accounts(gw).ensure_key("admin", BOOTSTRAP)
    await refused(gw, "GET", "/jobs", "is revoked", headers=bearer(BOOTSTRAP))


async def test_a_malformed_or_clashing_bootstrap_key_is_a_configuration_error(locked: Harness):
    with pytest.raises(ConfigurationError, match="must be an API key"):
        await accounts(locked).ensure_key("admin", "not-a-key")
    await accounts(locked).ensure_key("admin", BOOTSTRAP)
    with pytest.raises(ConfigurationError, match="another key with id 00000000000000ab"):
        await accounts(locked).ensure_key("admin", BOOTSTRAP[:-1] + "c")
