"""Accounts on a real `qrt dev --auth` platform: a job submitted with a key runs, another
instance's job stays out of sight on every route (HTTP, websocket, Service API), a revoked key
is refused on its next request, and the stock planqk-service-sdk runs the starter program with a
consumer key and secret through `POST /token`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from planqk.service.client import PlanqkServiceClient

from qrt_cli.dev import Platform
from qrt_common.account_admin import AccountAdmin
from qrt_common.accounts import Role, load_pepper
from tests.support.platform import make_settings
from tests.support.programs import merge_programs
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

A, B = "acme/research/qubits", "other/group/project"
STARTER_INPUT = {"values": [1, 5.2, 20, 7, 9.4]}


class Started(logging.Handler):
    """Keeps what the `qrt` logger said while a platform started."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


STARTED = Started()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    root = tmp_path_factory.mktemp("accounts")
    settings = make_settings(root, merge_programs(root / "programs"), auth=True)
    logger = logging.getLogger("qrt")
    level = logger.level
    logger.addHandler(STARTED)
    logger.setLevel(logging.INFO)
    try:
        running = await Platform.start(settings)
    finally:
        logger.removeHandler(STARTED)
        logger.setLevel(level)
    try:
        yield running
    finally:
        await running.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def keys(platform: Platform) -> dict[str, tuple[str, str]]:
    """(key id, key) of alice (member of A), bob (member of B)."""
    pepper = load_pepper("", platform.settings.effective_store_url)
    admin = AccountAdmin(platform.store, pepper)
    made: dict[str, tuple[str, str]] = {}
    for name, instance in (("alice", A), ("bob", B)):
        await admin.add_instance(instance)
        await admin.add_user(name)
        await admin.grant(instance, name, Role.MEMBER)
        key, record = await admin.create_key(name)
        made[name] = (record.id, key)
    return made


async def call(platform: Platform, key: str | None, method: str, path: str, status: int,
               **options: Any) -> Any:  # fmt: skip
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    async with (
        aiohttp.ClientSession(platform.url, headers=headers) as http,
        http.request(method, path, **options) as response,
    ):
        text = await response.text()
        assert response.status == status, (method, path, response.status, text)
        return await response.json() if text else None


async def test_qrt_dev_says_keys_are_required(platform: Platform):
    assert any("API keys are required" in m for m in STARTED.messages), STARTED.messages


async def test_a_job_runs_for_its_instance_and_stays_out_of_another_s_sight(platform, keys):
    alice, bob = keys["alice"][1], keys["bob"][1]
    await call(platform, None, "POST", "/jobs", 401, json={"programId": "noop"})
    hub, group, project = A.split("/")
    body = {"programId": "noop", "hub": hub, "group": group, "project": project}
    job_id = (await call(platform, alice, "POST", "/jobs", 200, json=body))["id"]
    await eventually(
        lambda: call(platform, alice, "GET", f"/jobs/{job_id}", 200),
        "the job completed",
        until=lambda job: job["status"] == "Completed",
        timeout=60,
    )
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/logs", f"/jobs/{job_id}/results"):
        await call(platform, bob, "GET", path, 404)
    assert (await call(platform, bob, "GET", "/jobs", 200))["count"] == 0
    async with aiohttp.ClientSession(platform.url) as http:
        for path in (f"/stream/jobs/{job_id}", f"/stream/jobs/{job_id}/logs"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(path, headers={"Authorization": f"Bearer {bob}"})
            assert refused.value.status == 404
        ws = await http.ws_connect(
            f"/stream/jobs/{job_id}", headers={"Authorization": f"Bearer {alice}"}
        )
        await ws.close()


async def test_planqk_sdk_runs_the_starter_with_consumer_key_and_secret(platform, keys):
    key_id, key = keys["alice"]

    def run() -> tuple[str, Any]:
        client = PlanqkServiceClient(
            f"{platform.url}/services/planqk-starter",
            consumer_key=key_id,
            consumer_secret=key,
            token_endpoint=f"{platform.url}/token",
        )
        execution = client.start_execution(data=STARTER_INPUT, params={"round_off": True})
        client.wait_for_final_state(execution.id, timeout=60, wait=0.2)
        return execution.id, client.get_result(execution.id)

    execution_id, result = await asyncio.to_thread(run)
    assert result["result"] == {"sum": 43}
    # The execution is alice's, in her one instance, and out of bob's sight.
    bob = keys["bob"][1]
    await call(platform, bob, "GET", f"/services/planqk-starter/{execution_id}", 404)
    job = await call(platform, keys["alice"][1], "GET", f"/jobs/{execution_id}", 200)
    assert (job["hub"], job["group"], job["project"]) == tuple(A.split("/"))


async def test_wrong_consumer_secret_is_a_clean_client_error(platform, keys):
    key_id, _ = keys["alice"]

    def run() -> None:
        client = PlanqkServiceClient(
            f"{platform.url}/services/planqk-starter",
            consumer_key=key_id,
            consumer_secret="wrong",
            token_endpoint=f"{platform.url}/token",
        )
        client.start_execution(data=STARTER_INPUT)

    with pytest.raises(Exception, match="invalid_client"):
        await asyncio.to_thread(run)


async def test_a_revoked_key_is_refused_on_the_next_request(platform):
    pepper = load_pepper("", platform.settings.effective_store_url)
    admin = AccountAdmin(platform.store, pepper)
    await admin.add_user("carol", admin=True)
    key, record = await admin.create_key("carol")
    await call(platform, key, "GET", "/jobs", 200)
    await admin.revoke_key(record.id)
    refused = await call(platform, key, "GET", "/jobs", 401)
    assert refused["detail"] == f"the API key {record.id} is revoked"


async def test_qrt_dev_without_auth_says_it_serves_one_user_without_keys(tmp_path, caplog):
    settings = make_settings(tmp_path, merge_programs(tmp_path / "programs"), warm_pool_size=0)
    with caplog.at_level(logging.INFO, logger="qrt"):
        running = await Platform.start(settings)
    try:
        assert any(
            r.levelno == logging.WARNING and "single-user mode: no API keys" in r.getMessage()
            for r in caplog.records
        )
        await call(running, None, "GET", "/jobs", 200)
    finally:
        await running.stop()


async def test_an_instance_cap_refuses_a_submit_with_429_until_a_job_ends(platform):
    pepper = load_pepper("", platform.settings.effective_store_url)
    admin = AccountAdmin(platform.store, pepper)
    await admin.add_instance("capped/team/one")
    await admin.set_instance_limits("capped/team/one", max_active_jobs=1, submits_per_minute=None)
    await admin.add_user("dora")
    await admin.grant("capped/team/one", "dora", Role.MEMBER)
    key, _ = await admin.create_key("dora")
    job = {"programId": "sleeper", "params": ['{"seconds": 60}'], "hub": "capped",
           "group": "team", "project": "one"}  # fmt: skip
    first = (await call(platform, key, "POST", "/jobs", 200, json=job))["id"]
    async with (
        aiohttp.ClientSession(platform.url, headers={"Authorization": f"Bearer {key}"}) as http,
        http.post("/jobs", json=job) as response,
    ):
        assert response.status == 429, await response.text()
        assert response.headers["Retry-After"] == "10"
        assert (await response.json())["limit"] == "instance_active_jobs"
    await call(platform, key, "POST", f"/jobs/{first}/cancel", 204)
    await eventually(
        lambda: call(platform, key, "GET", f"/jobs/{first}", 200),
        "the job was cancelled",
        until=lambda found: found["status"] == "Cancelled",
        timeout=60,
    )
    await call(platform, key, "POST", "/jobs", 200, json={**job, "params": ['{"seconds": 0}']})


async def test_a_revoked_key_closes_its_open_stream_of_a_running_job(platform):
    pepper = load_pepper("", platform.settings.effective_store_url)
    admin = AccountAdmin(platform.store, pepper)
    await admin.add_user("erin", admin=True)
    key, record = await admin.create_key("erin")
    job = {"programId": "sleeper", "params": ['{"seconds": 60, "ticks": 60}']}
    job_id = (await call(platform, key, "POST", "/jobs", 200, json=job))["id"]
    async with (
        aiohttp.ClientSession(platform.url) as http,
        http.ws_connect(
            f"/stream/jobs/{job_id}/logs", headers={"Authorization": f"Bearer {key}"}
        ) as ws,  # fmt: skip
    ):
        assert "tick" in (await ws.receive_str(timeout=60))  # the job runs, its log comes
        await admin.revoke_key(record.id)
        while (message := await ws.receive(timeout=60)).type is aiohttp.WSMsgType.TEXT:
            pass  # ticks written before the check came
        assert message.type is aiohttp.WSMsgType.CLOSE, message
        assert message.data == 4401 and "is revoked" in str(message.extra)
    await call(platform, key, "GET", f"/jobs/{job_id}", 401)
    keeper, _ = await admin.create_key("erin")  # the job itself went on: end it
    await call(platform, keeper, "POST", f"/jobs/{job_id}/cancel", 204)
