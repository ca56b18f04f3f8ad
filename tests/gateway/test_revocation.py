"""Credentials that lapse while their holder watches: a revoked key, a deleted user or a
membership taken away closes the caller's open websockets (code 4401, the reason given), and
every following request is refused; other callers' streams go on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from qrt_common.account_admin import AccountAdmin
from qrt_common.accounts import Role
from qrt_gateway.websockets import CLOSE_UNAUTHORIZED

from .conftest import Harness, MakeGateway

PEPPER = "revocation test pepper"
JOB = {"programId": "noop", "hub": "a", "group": "b", "project": "c"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Team:
    """A gateway with keys on; alice and bob, members of a/b/c, each with a key and a queued
    job (no executor runs it: their streams stay open)."""

    def __init__(self, gw: Harness, admin: AccountAdmin, keys: dict[str, str]) -> None:
        self.gw, self.admin, self.keys = gw, admin, keys
        self.jobs: dict[str, str] = {}

    async def submit(self, user: str) -> str:
        body = await self.gw.call("POST", "/jobs", json=JOB, headers=bearer(self.keys[user]))
        self.jobs[user] = body["id"]
        return str(body["id"])

    def watch(self, user: str, suffix: str = "") -> Any:
        path = f"/stream/jobs/{self.jobs[user]}{suffix}"
        return self.gw.client.ws_connect(path, headers=bearer(self.keys[user]))

    async def key_id(self, user: str) -> str:
        return (await self.gw.store.list_keys(user))[0].id


@pytest.fixture
async def team(make_gateway: MakeGateway) -> Team:
    gw = await make_gateway(auth=True, key_pepper=PEPPER)
    admin = AccountAdmin(gw.store, PEPPER.encode())
    await admin.add_instance("a/b/c")
    keys = {}
    for name in ("alice", "bob"):
        await admin.add_user(name)
        await admin.grant("a/b/c", name, Role.MEMBER)
        keys[name] = (await admin.create_key(name))[0]
    made = Team(gw, admin, keys)
    for name in keys:
        await made.submit(name)
    return made


async def closed_for(ws: aiohttp.ClientWebSocketResponse) -> str:
    """The reason of the 4401 close that must come next on `ws` (nothing else may)."""
    message = await ws.receive(timeout=60)
    assert message.type is WSMsgType.CLOSE, message
    assert message.data == CLOSE_UNAUTHORIZED, message
    return str(message.extra)


Lapse = Callable[[Team], Awaitable[None]]


async def revoke(team: Team) -> None:
    await team.admin.revoke_key(await team.key_id("alice"))  # in the store, as `qrt admin` does


async def delete_user(team: Team) -> None:
    await team.admin.remove_user("alice")


async def take_membership(team: Team) -> None:
    await team.admin.remove_member("a/b/c", "alice")


@pytest.mark.parametrize(
    ("lapse", "reason"),
    [
        (revoke, "is revoked"),
        (delete_user, "the API key is wrong (no such key)"),  # its keys went with it
        (take_membership, "alice no longer belongs to the job's instance"),
    ],
    ids=["revoked key", "deleted user", "membership taken away"],
)
async def test_lapsed_credentials_close_their_streams_and_refuse_what_follows(
    team: Team, lapse: Lapse, reason: str
):
    async with (
        team.watch("alice") as results,
        team.watch("alice", "/logs") as logs,
        team.watch("bob") as others,
    ):
        await lapse(team)
        for ws in (results, logs):
            assert reason in await closed_for(ws)
        assert not others.closed
        refused = 401 if lapse is not take_membership else 404
        await team.gw.call("GET", f"/jobs/{team.jobs['alice']}", refused,
                           headers=bearer(team.keys["alice"]))  # fmt: skip
        await team.gw.call("GET", f"/jobs/{team.jobs['bob']}", headers=bearer(team.keys["bob"]))
        # Bob's stream still follows his job: it ends when the job does.
        await team.gw.call("POST", f"/jobs/{team.jobs['bob']}/cancel", 204,
                           headers=bearer(team.keys["bob"]))  # fmt: skip
        assert not others.closed


async def test_a_stream_opened_with_an_access_token_closes_when_its_key_is_revoked(team: Team):
    form = {
        "grant_type": "client_credentials",
        "client_id": await team.key_id("alice"),
        "client_secret": team.keys["alice"],
    }
    async with team.gw.client.post("/token", data=form) as response:
        assert response.status == 200, await response.text()
        token = (await response.json())["access_token"]
    team.keys["alice"] = token
    async with team.watch("alice") as ws:
        await revoke(team)
        assert "behind the access token is revoked" in await closed_for(ws)
