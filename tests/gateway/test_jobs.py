"""`/jobs` on the gateway alone: what POST stores and announces, what it refuses and why, the
list filters, logs, results, and the rules of cancelling and deleting."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from qrt_common.accounts import SINGLE_USER
from qrt_common.errors import NotFound
from qrt_common.jobs import Job, JobStatus
from qrt_common.messages import CANCEL_QUEUE, SUBMITTED_QUEUE, CancelJob, Heartbeat, JobSubmitted
from qrt_common.wire import decode, encode
from tests.support.programs import b64_zip_of

from .conftest import Harness, MakeGateway

S = JobStatus


async def test_post_jobs_stores_the_job_with_its_params_text_and_announces_it(gw: Harness):
    text = '{ "iterations": 2 }'
    created = await gw.submit(
        "sample-program",
        params=[text],
        hub="h",
        group="g",
        project="p",
        tags=["a", "b"],
        sessionId="s1",
        priority=5,
    )
    job = await gw.job(created["id"])
    assert created == {"id": job.id}
    assert (job.program_id, job.params, job.status) == ("sample-program", text, S.QUEUED)
    assert (job.instance, job.backend, job.max_execution_time) == ("h/g/p", "aer_simulator", 300)
    assert (job.tags, job.session_id, job.priority) == (("a", "b"), "s1", 5)
    assert [decode(JobSubmitted, b) for b in await gw.sent(SUBMITTED_QUEUE)] == [
        JobSubmitted.of(job)
    ]


async def test_params_as_an_object_are_kept_as_json_text(gw: Harness):
    created = await gw.submit("sleeper", params={"seconds": 0.5, "ticks": 2})
    assert json.loads((await gw.job(created["id"])).params) == {"seconds": 0.5, "ticks": 2}


async def test_the_time_limit_is_the_programs_or_less_if_asked(gw: Harness):
    shorter = await gw.submit("sample-program", params={"iterations": 1}, maxExecutionTime=30)
    longer = await gw.submit("sample-program", params={"iterations": 1}, maxExecutionTime=9000)
    assert (await gw.job(shorter["id"])).max_execution_time == 30
    assert (await gw.job(longer["id"])).max_execution_time == 300


async def test_a_job_may_ask_for_a_device_an_executor_offers(gw: Harness):
    refused = await gw.submit("noop", 400, backend="starmon-5")
    assert refused["field"] == "backend" and "unknown backend 'starmon-5'" in refused["detail"]
    beat = Heartbeat("e1", 1, ["starmon-5"], {}, ["starmon-5"])
    await gw.gateway.on_heartbeat(encode(beat))
    created = await gw.submit("noop", backend="starmon-5")
    assert (await gw.job(created["id"])).backend == "starmon-5"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 400, "programId"),
        ({"programId": ""}, 400, "programId"),
        ({"programId": "nope"}, 404, "programId"),
        ({"programId": "noop", "priority": 10}, 400, "priority"),
        ({"programId": "noop", "maxExecutionTime": 0}, 400, "maxExecutionTime"),
        ({"programId": "noop", "tags": "a"}, 400, "tags"),
        ({"programId": "noop", "hub": ""}, 400, "hub"),
        ({"programId": "noop", "hub": "a/b"}, 400, "hub"),
        ({"programId": "noop", "project": "x" * 201}, 400, "project"),
        ({"programId": "noop", "tags": ["t"] * 101}, 400, "tags"),
        ({"programId": "noop", "tags": [""]}, 400, "tags.0"),
        ({"programId": "noop", "maxExecutionTime": 10**30}, 400, "maxExecutionTime"),
        ({"programId": "noop", "sessionId": "s" * 201}, 400, "sessionId"),
        ({"programId": "noop", "params": 5}, 400, "params"),
        ({"programId": "noop", "params": ["{"]}, 400, "params[0]"),
        ({"programId": "sample-program", "params": {}}, 400, "params.iterations"),
        ({"programId": "sample-program", "params": {"iterations": "2"}}, 400, "params.iterations"),
        ({"programId": "sleeper", "params": {"seconds": True}}, 400, "params.seconds"),
        ({"programId": "planqk-starter", "params": {"values": [1]}}, 400, "params.values"),
    ],
)
async def test_a_refused_job_names_the_field_and_is_neither_kept_nor_announced(
    gw: Harness, body, status, field
):
    refused = await gw.call("POST", "/jobs", status, json=body)
    assert refused["field"] == field and refused["detail"]
    assert (await gw.call("GET", "/jobs"))["count"] == 0
    assert await gw.sent(SUBMITTED_QUEUE) == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "request body is empty; send a JSON object"),
        (b"{", "request body is not valid JSON"),
        (b"[1, 2]", "the request body must be a JSON object, not an array"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_refused(gw: Harness, body, detail):
    refused = await gw.call("POST", "/jobs", 400, data=body)
    assert refused["detail"].startswith(detail) and refused["field"] is None


async def test_a_body_over_the_request_limit_answers_413(make_gateway: MakeGateway):
    gw = await make_gateway(max_request_bytes=1024)
    params = {"iterations": 1, "padding": "x" * 2000}
    refused = await gw.submit("sample-program", 413, params=params)
    assert refused == {
        "detail": "request body is larger than the limit of 1024 bytes",
        "field": None,
    }


async def test_a_job_the_bus_refuses_answers_503_and_is_not_kept(gw: Harness):
    gw.bus.refused = {SUBMITTED_QUEUE}
    refused = await gw.submit("noop", 503)
    assert refused["detail"].startswith(
        "service unavailable: job not accepted, the message bus is unavailable"
    )
    assert (await gw.call("GET", "/jobs"))["count"] == 0


async def upload_private(gw: Harness, owner: tuple[str, str, str] = ("a", "b", "c")) -> str:
    body = {"name": "mine", "data": b64_zip_of({"program.py": "def main(backend, user_messenger):\n    pass\n"}),
            "hub": owner[0], "group": owner[1], "project": owner[2]}  # fmt: skip
    created = await gw.call("POST", "/programs", 201, json=body)
    program_id: str = created["id"]
    return program_id


async def test_a_job_of_a_private_program_is_forbidden_to_other_instances(gw: Harness):
    program_id = await upload_private(gw)
    refused = await gw.submit(program_id, 403)
    assert refused["field"] == "programId" and "private to a/b/c" in refused["detail"]
    created = await gw.submit(program_id, hub="a", group="b", project="c")
    assert (await gw.job(created["id"])).instance == "a/b/c"


async def test_a_job_is_shown_as_the_api_names_it(gw: Harness):
    created = await gw.submit("echo", params={"x": 1}, tags=["t"], sessionId="s")
    job = await gw.call("GET", f"/jobs/{created['id']}")
    assert job["id"] == created["id"] and job["program"] == {"id": "echo"}
    assert (job["hub"], job["group"], job["project"]) == ("ibm-q", "open", "main")
    assert (job["backend"], job["status"], job["reason"]) == ("aer_simulator", "Queued", None)
    assert json.loads(job["params"][0]) == {"x": 1} and len(job["params"]) == 1
    assert (job["tags"], job["sessionId"], job["priority"]) == (["t"], "s", 0)
    assert (job["started"], job["ended"], job["attempt"]) == (None, None, 0)
    assert job["maxExecutionTime"] == 300 and job["created"].endswith("Z")


async def test_a_listing_leaves_each_jobs_params_out_and_the_job_keeps_them(gw: Harness):
    big = json.dumps({"data": "x" * 2_000_000})  # params of megabytes each
    for n in range(3):
        await stored(gw, f"big{n}", params=big)
    listing = await gw.call("GET", "/jobs")
    assert listing["count"] == 3 and all("params" not in job for job in listing["jobs"])
    assert len(json.dumps(listing)) < 10_000
    assert {job["id"] for job in listing["jobs"]} == {"big0", "big1", "big2"}
    assert (await gw.call("GET", "/jobs/big1"))["params"] == [big]
    summary = await gw.call("GET", "/jobs/big1")
    del summary["params"]
    assert summary in listing["jobs"]


async def test_an_unknown_job_is_404_everywhere(gw: Harness):
    for method, path in [("GET", "/jobs/nope"), ("GET", "/jobs/nope/logs"),
                         ("GET", "/jobs/nope/results"), ("POST", "/jobs/nope/cancel"),
                         ("DELETE", "/jobs/nope")]:  # fmt: skip
        assert await gw.call(method, path, 404) == {"detail": "job 'nope' not found", "field": None}


async def stored(gw: Harness, job_id: str, **fields: Any) -> Job:
    values: dict[str, Any] = {"program_id": "noop", "backend": "aer_simulator", "params": "{}",
              "max_execution_time": 60} | fields  # fmt: skip
    job = Job(id=job_id, **values)
    await gw.store.add_job(job)
    return job


async def listed(gw: Harness, query: str) -> tuple[list[str], int]:
    body = await gw.call("GET", f"/jobs?{query}")
    return [job["id"] for job in body["jobs"]], body["count"]


@pytest.fixture
async def many(gw: Harness) -> Harness:
    """Six jobs created an hour apart (j0 oldest), of every status, kind and instance."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        ("j0", S.QUEUED, "noop", "aer_simulator", "h1/g1/p1", ("x",), None),
        ("j1", S.RUNNING, "echo", "aer_simulator", "h1/g1/p1", ("x", "y"), "s1"),
        ("j2", S.COMPLETED, "noop", "starmon-5", "h1/g2/p1", ("y",), "s1"),
        ("j3", S.FAILED, "echo", "aer_simulator", "h2/g1/p2", (), None),
        ("j4", S.CANCELLED, "noop", "aer_simulator_statevector", "h2/g2/p2", ("x", "y", "z"), None),
        ("j5", S.CANCELLED_RAN_TOO_LONG, "noop", "aer_simulator", "h1/g1/p1", (), "s2"),
    ]
    for n, (job_id, status, program, backend, instance, tags, session) in enumerate(rows):
        hub, group, project = instance.split("/")
        await stored(gw, job_id, status=status, program_id=program, backend=backend, hub=hub,
                     group=group, project=project, tags=tags, session_id=session,
                     created=start + timedelta(hours=n))  # fmt: skip
    return gw


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("", ["j5", "j4", "j3", "j2", "j1", "j0"]),
        ("pending=true", ["j1", "j0"]),
        ("pending=false", ["j5", "j4", "j3", "j2"]),
        ("status=Failed&status=Completed", ["j3", "j2"]),
        ("status=Cancelled - Ran too long", ["j5"]),
        ("pending=true&status=Completed", []),
        ("pending=false&status=Completed&status=Running", ["j2"]),
        ("program=echo", ["j3", "j1"]),
        ("backend=starmon-5", ["j2"]),
        ("hub=h1", ["j5", "j2", "j1", "j0"]),
        ("hub=h1&group=g1&project=p1", ["j5", "j1", "j0"]),
        ("group=g2", ["j4", "j2"]),
        ("project=p2", ["j4", "j3"]),
        ("tags=x,y", ["j4", "j1"]),
        ("tags=x&tags=z", ["j4"]),
        ("session_id=s1", ["j2", "j1"]),
        ("created_after=2026-01-01T02:30:00", ["j5", "j4", "j3"]),
        ("created_before=2026-01-01T02:30:00", ["j2", "j1", "j0"]),
        (
            "created_after=2026-01-01T04:30:00%2B03:00&created_before=2026-01-01T03:30:00Z",
            ["j3", "j2"],
        ),
        ("program=noop&pending=false&hub=h1", ["j5", "j2"]),
    ],
)
async def test_list_filters(many: Harness, query, ids):
    assert await listed(many, query) == (ids, len(ids))


async def test_a_page_shows_the_count_of_all_matching_jobs(many: Harness):
    assert await listed(many, "limit=2") == (["j5", "j4"], 6)
    assert await listed(many, "limit=2&offset=2") == (["j3", "j2"], 6)
    assert await listed(many, "limit=1000&offset=5") == (["j0"], 6)
    assert await listed(many, "offset=6") == ([], 6)
    assert await listed(many, "program=noop&limit=1&offset=1") == (["j4"], 4)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("pending=maybe", "pending"),
        ("status=Done", "status"),
        ("created_after=yesterday", "created_after"),
        ("created_before=2026-13-01", "created_before"),
        ("created_after=0001-01-01T00:00:00%2B01:00", "created_after"),
        ("created_before=9999-12-31T23:59:59-01:00", "created_before"),
        ("offset=4611686018427387905", "offset"),
    ],
)
async def test_a_wrong_query_parameter_is_refused_naming_it(many: Harness, query, field):
    refused = await many.call("GET", f"/jobs?{query}", 400)
    assert refused["field"] == field


async def test_a_time_out_of_range_says_so(many: Harness):
    refused = await many.call("GET", "/jobs?created_after=0001-01-01T00:00:00%2B01:00", 400)
    assert refused == {
        "detail": "query parameter 'created_after' is out of range: in UTC it falls outside the "
        "years 1 to 9999",
        "field": "created_after",
    }
    assert await listed(many, "created_after=0001-01-01T00:00:00") == (
        ["j5", "j4", "j3", "j2", "j1", "j0"], 6,
    )  # fmt: skip


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_not_encoded_as_declared_is_400_naming_the_header(gw: Harness, encoding):
    refused = await gw.call(
        "POST", "/jobs", 400, data=b'{"programId": "noop"}',
        headers={"Content-Encoding": encoding, "Content-Type": "application/json"},
    )  # fmt: skip
    assert refused["field"] == "Content-Encoding"
    assert refused["detail"].startswith(
        f"request body cannot be decoded as its Content-Encoding '{encoding}' says: "
    )
    assert (await gw.call("GET", "/jobs"))["count"] == 0


async def test_an_unknown_status_lists_the_known_ones(gw: Harness):
    refused = await gw.call("GET", "/jobs?status=Done", 400)
    assert refused["detail"] == (
        "unknown status 'Done'; use one of: Queued, Running, Completed, Failed, Cancelled, "
        "Cancelled - Ran too long"
    )


async def test_a_status_is_named_in_any_case(gw: Harness):
    await stored(gw, "j1", status=S.COMPLETED, attempt=1)
    await stored(gw, "j2", status=S.QUEUED)
    for spelling in ("completed", "COMPLETED", " Completed "):
        listed = await gw.call("GET", f"/jobs?status={spelling}")
        assert [j["id"] for j in listed["jobs"]] == ["j1"], spelling
    listed = await gw.call("GET", "/jobs?status=cancelled - ran too long")
    assert listed["count"] == 0


async def test_logs_are_the_stored_log_in_order(gw: Harness):
    await stored(gw, "j1", status=S.RUNNING, attempt=1)
    assert await gw.call("GET", "/jobs/j1/logs") == ""
    await gw.store.append_log("j1", 1, 1, "second ✓\n")
    await gw.store.append_log("j1", 1, 0, "first\n")
    assert await gw.call("GET", "/jobs/j1/logs") == "first\nsecond ✓\n"


async def test_the_log_of_one_attempt_of_a_job_that_ran_again(gw: Harness):
    await stored(gw, "j1", status=S.RUNNING, attempt=2)
    await gw.store.append_log("j1", 1, 0, "lost\n")
    await gw.store.append_log("j1", 2, 0, "[qrt] attempt 2 on executor ex2\n")
    await gw.store.append_log("j1", 2, 1, "done\n")
    assert await gw.call("GET", "/jobs/j1/logs?attempt=1") == "lost\n"
    assert await gw.call("GET", "/jobs/j1/logs?attempt=2") == (
        "[qrt] attempt 2 on executor ex2\ndone\n"
    )
    assert await gw.call("GET", "/jobs/j1/logs") == "lost\n[qrt] attempt 2 on executor ex2\ndone\n"
    for bad in ("0", "3", "last"):
        refused = await gw.call("GET", f"/jobs/j1/logs?attempt={bad}", 400)
        assert refused["field"] == "attempt", refused


async def test_results_are_204_until_there_is_a_final_result(gw: Harness):
    created = await gw.submit("echo")
    job_id = created["id"]
    await gw.move(job_id, S.RUNNING)
    async with gw.client.get(f"/jobs/{job_id}/results") as response:
        assert response.status == 204 and await response.read() == b""
    await gw.store.set_result(job_id, '{"answer": 42}')
    await gw.move(job_id, S.COMPLETED)
    assert await gw.call("GET", f"/jobs/{job_id}/results") == '{"answer": 42}'


@pytest.mark.parametrize("path", [(), (S.RUNNING,)], ids=["queued", "running"])
async def test_cancel_of_a_pending_job_asks_the_scheduler_and_answers_204(gw: Harness, path):
    job_id = (await gw.submit("noop"))["id"]
    await gw.move(job_id, *path)
    async with gw.client.post(f"/jobs/{job_id}/cancel") as response:
        assert response.status == 204
    assert [decode(CancelJob, b) for b in await gw.sent(CANCEL_QUEUE)] == [CancelJob(job_id)]


async def test_cancel_of_an_ended_job_is_409_naming_its_status(gw: Harness):
    job_id = (await gw.submit("noop"))["id"]
    await gw.move(job_id, S.RUNNING, S.CANCELLED_RAN_TOO_LONG)
    refused = await gw.call("POST", f"/jobs/{job_id}/cancel", 409)
    assert refused["detail"] == f"job '{job_id}' has already ended: Cancelled - Ran too long"
    assert await gw.sent(CANCEL_QUEUE) == []


async def test_a_pending_job_cannot_be_deleted(gw: Harness):
    job_id = (await gw.submit("noop"))["id"]
    refused = await gw.call("DELETE", f"/jobs/{job_id}", 409)
    assert refused["detail"] == f"job '{job_id}' is Queued; cancel it before deleting it"
    await gw.move(job_id, S.RUNNING)
    assert "is Running" in (await gw.call("DELETE", f"/jobs/{job_id}", 409))["detail"]
    assert (await gw.job(job_id)).status is S.RUNNING


async def test_an_ended_job_is_deleted_with_everything_it_produced(gw: Harness):
    job_id = (await gw.submit("noop"))["id"]
    await gw.move(job_id, S.RUNNING)
    await gw.store.append_log(job_id, 1, 0, "hello\n")
    await gw.store.set_result(job_id, "1")
    await gw.move(job_id, S.FAILED, reason="boom")
    async with gw.client.delete(f"/jobs/{job_id}") as response:
        assert response.status == 204
    await gw.call("GET", f"/jobs/{job_id}", 404)
    assert await gw.store.get_result(job_id) is None and await gw.store.read_log(job_id) == ""
    await gw.call("DELETE", f"/jobs/{job_id}", 404)


async def test_of_racing_deletes_of_a_job_exactly_one_deletes_it(gw: Harness):
    job_id = (await gw.submit("noop"))["id"]
    await gw.move(job_id, S.RUNNING, S.COMPLETED)

    async def delete() -> int:
        async with gw.client.delete(f"/jobs/{job_id}") as response:
            return response.status

    statuses = await asyncio.gather(*(delete() for _ in range(10)))
    assert sorted(statuses) == [204] + [404] * 9
    await gw.call("GET", f"/jobs/{job_id}", 404)


async def test_deletes_that_all_found_the_job_delete_it_once(gw: Harness):
    # The race the HTTP requests above may or may not hit: every delete found the job before
    # any of them removed it.
    job_id = (await gw.submit("noop"))["id"]
    await gw.move(job_id, S.RUNNING, S.COMPLETED)
    found = [await gw.gateway.find_job(job_id, SINGLE_USER) for _ in range(10)]
    ends = await asyncio.gather(
        *(gw.gateway.delete(job, SINGLE_USER) for job in found), return_exceptions=True
    )
    assert ends.count(None) == 1
    assert [str(end) for end in ends if end is not None] == [f"job '{job_id}' not found"] * 9
    assert all(isinstance(end, NotFound) for end in ends if end is not None)


@pytest.mark.parametrize("ending", [S.CANCELLED, S.FAILED, S.CANCELLED_RAN_TOO_LONG])
async def test_results_of_a_job_that_ended_without_one_are_409_saying_why(gw: Harness, ending):
    job_id = (await gw.submit("echo"))["id"]
    await gw.move(job_id, S.RUNNING, ending)
    refused = await gw.call("GET", f"/jobs/{job_id}/results", 409)
    assert refused["status"] == ending.value
    assert refused["detail"].startswith(f"job '{job_id}' ended {ending.value}")
    assert refused["detail"].endswith("it has no result")


async def test_results_of_a_failed_job_that_left_an_error_body_are_that_body(gw: Harness):
    job_id = (await gw.submit("echo"))["id"]
    await gw.move(job_id, S.RUNNING)
    await gw.store.set_result(job_id, '{"code": "E1", "detail": "no"}')
    await gw.move(job_id, S.FAILED)
    assert await gw.call("GET", f"/jobs/{job_id}/results") == '{"code": "E1", "detail": "no"}'
