"""Submit limits (`qrt_gateway.quotas`): each user's submit rate and cap on queued plus running
jobs, an instance's own caps, on every submit route; 429 with Retry-After and a body naming
the limit; retries of accepted submits neither refused nor counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from qrt_common.account_admin import AccountAdmin
from qrt_common.accounts import Role
from qrt_common.jobs import JobStatus
from qrt_common.messages import SUBMITTED_QUEUE
from qrt_common.registry import ProgramRegistry
from qrt_common.settings import Settings
from qrt_common.store.base import JobQuery
from qrt_common.store.sqlite import SQLiteStore
from qrt_gateway.app import create_app
from qrt_gateway.context import Gateway
from qrt_gateway.quotas import CAP_RETRY_SECONDS, TokenBuckets
from qrt_gateway.streams import StreamHub

from .conftest import Harness, MakeGateway, SwitchableBus
from .test_ibm_api import HEADERS, ibm

PEPPER = "quota test pepper"
STARTER = "/services/planqk-starter/"


async def refused(client: TestClient, method: str, path: str, **options: Any) -> dict[str, Any]:
    """The body of a request that must be refused with 429 and a usable Retry-After."""
    async with client.request(method, path, **options) as response:
        body: dict[str, Any] = await response.json()
        assert response.status == 429, body
        assert int(response.headers["Retry-After"]) == body["retryAfter"] >= 1
        assert set(body) >= {"detail", "field", "limit", "retryAfter"}
        return body


async def test_a_users_burst_is_refused_past_its_size_and_nothing_is_kept(make_gateway):
    gw = await make_gateway(user_submits_per_minute=1, user_submit_burst=3)
    for _ in range(3):
        await gw.submit()
    body = await refused(gw.client, "POST", "/jobs", json={"programId": "noop"})
    assert body["limit"] == "user_submit_rate"
    assert "QRT_USER_SUBMITS_PER_MINUTE" in body["detail"] and "user qrt" in body["detail"]
    assert body["retryAfter"] > 30  # one a minute: the next token is most of a minute away
    _, total = await gw.store.list_jobs(JobQuery())
    assert total == 3
    assert len(await gw.sent(SUBMITTED_QUEUE)) == 3


async def test_the_service_api_is_limited_the_same_way(make_gateway):
    gw = await make_gateway(user_submits_per_minute=1, user_submit_burst=1)
    await gw.call("POST", STARTER, 201, json={"data": {"values": [1]}})
    body = await refused(gw.client, "POST", STARTER, json={"data": {"values": [2]}})
    assert body["limit"] == "user_submit_rate"
    assert body["field"] is None


async def test_a_retry_of_an_accepted_submit_is_neither_refused_nor_counted(make_gateway):
    gw = await make_gateway(user_submits_per_minute=1, user_submit_burst=2, user_max_active_jobs=2)
    key = {"Idempotency-Key": "first"}
    async with gw.client.post("/jobs", json={"programId": "noop"}, headers=key) as response:
        first = await response.json()
    await gw.submit()
    # Both limits are reached now; the retry still gets its job, many times over.
    for _ in range(5):
        async with gw.client.post("/jobs", json={"programId": "noop"}, headers=key) as response:
            assert response.status == 200, await response.text()
            assert response.headers["Idempotent-Replayed"] == "true"
            assert (await response.json())["id"] == first["id"]
    body = await refused(gw.client, "POST", "/jobs", json={"programId": "noop"})
    assert body["limit"] == "user_submit_rate"


async def test_the_cap_on_queued_and_running_jobs_frees_as_jobs_end(make_gateway):
    gw = await make_gateway(user_max_active_jobs=2)
    first = (await gw.submit())["id"]
    second = (await gw.submit())["id"]
    await gw.move(second, JobStatus.RUNNING)  # running counts as well
    body = await refused(gw.client, "POST", "/jobs", json={"programId": "noop"})
    assert body["limit"] == "user_active_jobs" and body["retryAfter"] == CAP_RETRY_SECONDS
    assert "QRT_USER_MAX_ACTIVE_JOBS" in body["detail"]
    await gw.move(first, JobStatus.RUNNING, JobStatus.COMPLETED)
    await gw.submit()
    await refused(gw.client, "POST", STARTER, json={"data": {"values": [1]}})


class Caller:
    def __init__(self, gw: Harness, key: str) -> None:
        self.gw, self.key = gw, key

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def __call__(self, method: str, path: str, status: int = 200, **options: Any) -> Any:
        return await self.gw.call(method, path, status, headers=self.headers, **options)

    async def submit(self, status: int = 200) -> Any:
        job = {"programId": "noop", "hub": "a", "group": "b", "project": "c"}
        return await self("POST", "/jobs", status, json=job)

    async def refused(self, limit: str) -> dict[str, Any]:
        job = {"programId": "noop", "hub": "a", "group": "b", "project": "c"}
        body = await refused(self.gw.client, "POST", "/jobs", json=job, headers=self.headers)
        assert body["limit"] == limit, body
        return body


@pytest.fixture
async def team(make_gateway: MakeGateway) -> tuple[Caller, Caller, Caller]:
    """A platform admin, and alice and bob, members of a/b/c; each user may have 2 jobs."""
    gw = await make_gateway(auth=True, key_pepper=PEPPER, user_max_active_jobs=2)
    admin = AccountAdmin(gw.store, PEPPER.encode())
    await admin.add_user("root", admin=True)
    await admin.add_instance("a/b/c")
    keys = [(await admin.create_key("root"))[0]]
    for name in ("alice", "bob"):
        await admin.add_user(name)
        await admin.grant("a/b/c", name, Role.MEMBER)
        keys.append((await admin.create_key(name))[0])
    root, alice, bob = (Caller(gw, key) for key in keys)
    return root, alice, bob


async def test_each_user_has_their_own_cap(team):
    _, alice, bob = team
    await alice.submit()
    await alice.submit()
    body = await alice.refused("user_active_jobs")
    assert "user alice has 2" in body["detail"]
    await bob.submit()  # bob's jobs are his own count


async def test_an_instances_own_caps_hold_for_its_members_together(team):
    root, alice, bob = team
    path = "/admin/instances/a/b/c"
    changed = await root("PATCH", path, json={"maxActiveJobs": 3})
    assert changed["maxActiveJobs"] == 3 and changed["submitsPerMinute"] is None
    await alice.submit()
    await alice.submit()
    await bob.submit()
    body = await bob.refused("instance_active_jobs")
    assert "instance a/b/c has 3" in body["detail"] and "max_active_jobs" in body["detail"]
    # The rate: a minute's worth at once, for the whole instance; the cap left as it was.
    changed = await root("PATCH", path, json={"maxActiveJobs": None, "submitsPerMinute": 1})
    assert changed["maxActiveJobs"] is None and changed["submitsPerMinute"] == 1
    await bob.submit()
    body = await bob.refused("instance_submit_rate")
    assert "submits_per_minute" in body["detail"]
    listed = await root("GET", "/admin/instances")
    assert listed["instances"][0]["submitsPerMinute"] == 1
    # Only platform admins set caps; a cap is a positive number.
    await alice("PATCH", path, 403, json={"maxActiveJobs": 100})
    assert (await root("PATCH", path, 400, json={"maxActiveJobs": 0}))["field"] == "maxActiveJobs"
    await root("PATCH", "/admin/instances/x/y/z", 404, json={"maxActiveJobs": 1})


async def test_the_cap_holds_across_gateway_replicas_sharing_the_store(
    tmp_path: Path, bundled_programs: Path
):
    """Two gateways on one SQLite file: the second sees the jobs the first accepted."""
    settings = Settings(data_dir=tmp_path / "data", programs_dir=bundled_programs,
                        user_max_active_jobs=2)  # fmt: skip
    clients: list[TestClient] = []
    stores: list[SQLiteStore] = []
    try:
        for _ in range(2):
            store = SQLiteStore(tmp_path / "shared.db")
            await store.open()
            stores.append(store)
            gateway = Gateway(settings, store, SwitchableBus(), ProgramRegistry(bundled_programs),
                              StreamHub())  # fmt: skip
            client = TestClient(TestServer(create_app(gateway)))
            await client.start_server()
            clients.append(client)
        one, two = clients
        for client in (one, two):
            async with client.post("/jobs", json={"programId": "noop"}) as response:
                assert response.status == 200, await response.text()
        body = await refused(one, "POST", "/jobs", json={"programId": "noop"})
        assert body["limit"] == "user_active_jobs"
        await refused(two, "POST", "/jobs", json={"programId": "noop"})
    finally:
        for client in clients:
            await client.close()
        for store in stores:
            await store.close()


async def test_the_openapi_document_names_the_429_of_every_submit_route(gw: Harness):
    document = await gw.call("GET", "/openapi.json")
    for path in ("/jobs", "/services/{program_id}/"):
        answer = document["paths"][path]["post"]["responses"]["429"]
        assert "Retry-After" in answer["headers"]
        schema = answer["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/LimitErrorOut"}
    limit = document["components"]["schemas"]["LimitErrorOut"]
    assert {"detail", "limit", "retryAfter"} <= set(limit["required"])


def test_a_token_bucket_refills_at_its_rate_up_to_its_size():
    now = [0.0]
    buckets = TokenBuckets(lambda: now[0])
    for _ in range(3):
        assert buckets.wait("u", 0.5, 3) == 0
        buckets.take("u", 0.5, 3)
    assert buckets.wait("u", 0.5, 3) == pytest.approx(2.0)
    now[0] = 1.0
    assert buckets.wait("u", 0.5, 3) == pytest.approx(1.0)
    now[0] = 100.0  # refilled, never past its size
    for _ in range(3):
        buckets.take("u", 0.5, 3)
    assert buckets.wait("u", 0.5, 3) > 0
    assert buckets.wait("v", 0.5, 3) == 0  # another caller's bucket is full


async def test_making_sessions_counts_against_the_submit_rate(make_gateway):
    gw = await make_gateway(user_submits_per_minute=1, user_submit_burst=2)
    await ibm(gw, "POST", "/sessions", json={"mode": "batch", "backend": "aer_simulator"})
    await gw.submit()
    async with gw.client.post(
        "/api/v1/sessions", json={"mode": "batch", "backend": "aer_simulator"}, headers=HEADERS
    ) as response:
        body = await response.json()
        assert response.status == 429, body
        assert int(response.headers["Retry-After"]) >= 1
    assert "jobs or sessions" in body["detail"] and "QRT_USER_SUBMITS_PER_MINUTE" in body["detail"]
    # A job is refused as well: both took from the one bucket.
    assert (await refused(gw.client, "POST", "/jobs", json={"programId": "noop"}))["limit"] == (
        "user_submit_rate"
    )
