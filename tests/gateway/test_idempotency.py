"""Idempotent submits: the same `Idempotency-Key` from the same caller gets the first job, on
`/jobs` and on PlanQK's `/services`; a key used again for another request is refused."""

from __future__ import annotations

from typing import Any

import pytest

from qrt_common.jobs import JobStatus
from qrt_common.messages import SUBMITTED_QUEUE, JobSubmitted
from qrt_common.store.base import JobQuery
from qrt_common.wire import decode

from .conftest import Harness

KEY = "9f1c2d3e-retry-me"


async def post(gw: Harness, path: str, body: dict[str, Any], key: str | None = KEY) -> Any:
    """(status, JSON body, whether the answer says it was a retry)."""
    headers = {} if key is None else {"Idempotency-Key": key}
    async with gw.client.post(path, json=body, headers=headers) as response:
        return response.status, await response.json(), response.headers.get("Idempotent-Replayed")


async def test_a_retried_submit_gets_the_first_job_and_makes_no_second(gw: Harness):
    body = {"programId": "noop", "params": {}, "tags": ["t"]}
    first = await post(gw, "/jobs", body)
    again = await post(gw, "/jobs", body)
    assert first[:2] == (200, again[1]) and first[2] is None and again[2] == "true"
    _, count = await gw.store.list_jobs(JobQuery())
    assert count == 1
    # Announced again while it waits (the first try may have died before announcing it); the
    # scheduler holds it once whatever it hears.
    sent = [decode(JobSubmitted, b).job_id for b in await gw.sent(SUBMITTED_QUEUE)]
    assert sent == [first[1]["id"]] * 2


async def test_a_retry_of_a_job_that_started_is_not_announced_again(gw: Harness):
    body = {"programId": "noop"}
    job_id = (await post(gw, "/jobs", body))[1]["id"]
    await gw.move(job_id, JobStatus.RUNNING)
    assert (await post(gw, "/jobs", body))[1] == {"id": job_id}
    assert len(await gw.sent(SUBMITTED_QUEUE)) == 1


async def test_a_key_used_again_for_another_request_is_a_conflict(gw: Harness):
    await post(gw, "/jobs", {"programId": "noop"})
    status, body, _ = await post(gw, "/jobs", {"programId": "noop", "priority": 3})
    assert status == 409 and body["field"] == "Idempotency-Key"
    assert "was used for a different request" in body["detail"]
    assert (await gw.store.list_jobs(JobQuery()))[1] == 1


async def test_keys_belong_to_their_caller_and_jobs_without_one_are_all_new(gw: Harness):
    mine = await post(gw, "/jobs", {"programId": "noop"})
    theirs = await post(gw, "/jobs", {"programId": "noop", "hub": "other"})
    plain = [await post(gw, "/jobs", {"programId": "noop"}, key=None) for _ in range(2)]
    ids = {mine[1]["id"], theirs[1]["id"], *(p[1]["id"] for p in plain)}
    assert len(ids) == 4


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "naïve"])
async def test_a_key_that_is_not_visible_ascii_is_refused(gw: Harness, key: str):
    status, body, _ = await post(gw, "/jobs", {"programId": "noop"}, key=key)
    assert (status, body["field"]) == (400, "Idempotency-Key")
    assert (await gw.store.list_jobs(JobQuery()))[1] == 0


async def test_a_submit_the_bus_refused_leaves_its_key_free_for_the_retry(gw: Harness):
    gw.bus.refused.add(SUBMITTED_QUEUE)
    assert (await post(gw, "/jobs", {"programId": "noop"}))[0] == 503
    gw.bus.refused.clear()
    status, body, replayed = await post(gw, "/jobs", {"programId": "noop"})
    assert (status, replayed) == (200, None)
    assert [j.id for j in (await gw.store.list_jobs(JobQuery()))[0]] == [body["id"]]


async def test_a_service_execution_is_idempotent_too(gw: Harness):
    body = {"data": {"values": [1, 2]}, "params": {"round_off": False}}
    first = await post(gw, "/services/planqk-starter/", body)
    again = await post(gw, "/services/planqk-starter/", body)
    assert first[0] == again[0] == 201 and first[1]["id"] == again[1]["id"]
    assert again[2] == "true"
    other = await post(gw, "/services/planqk-starter/", {"data": {"values": [3]}})
    assert other[0] == 409
