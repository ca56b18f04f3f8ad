"""PlanQK's Service API on the gateway alone: executions started, shown, cancelled, and their
results, interim results and logs under PlanQK's names."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from qrt_common.jobs import JobStatus
from qrt_common.messages import CANCEL_QUEUE, SUBMITTED_QUEUE, CancelJob, JobSubmitted
from qrt_common.programs import planqk_input
from qrt_common.wire import decode
from tests.support.programs import b64_zip_of

from .conftest import Harness, MakeGateway

S = JobStatus
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
STARTER = "/services/planqk-starter"


async def start(gw: Harness, service: str, body: Any) -> dict[str, Any]:
    async with gw.client.post(f"{service}/", json=body) as response:
        assert response.status == 201, await response.text()
        execution: dict[str, Any] = await response.json()
        assert response.headers["Location"] == f"{service}/{execution['id']}"
        return execution


@pytest.mark.parametrize("path", [f"{STARTER}/", STARTER])
async def test_a_service_is_up_with_and_without_the_slash(gw: Harness, path):
    assert await gw.call("GET", path) == {"status": "Service is up and running"}


async def test_an_unknown_service_is_404(gw: Harness):
    assert await gw.call("GET", "/services/nope/", 404) == {
        "detail": "service 'nope' not found",
        "field": None,
    }
    await gw.call("POST", "/services/nope/", 404, json={})
    await gw.call("GET", "/services/nope/some-id", 404)


async def test_an_execution_is_a_stored_and_announced_job_at_its_location(gw: Harness):
    data, params = {"values": [1, 2.5]}, {"round_off": True}
    execution = await start(gw, STARTER, {"data": data, "params": params})
    assert execution["status"] == "PENDING" and TIMESTAMP.fullmatch(execution["createdAt"])
    assert execution["startedAt"] is None and execution["endedAt"] is None
    job = await gw.job(execution["id"])
    assert (job.program_id, job.params, job.instance) == (
        "planqk-starter",
        planqk_input(data, params),
        "ibm-q/open/main",
    )
    assert [decode(JobSubmitted, b) for b in await gw.sent(SUBMITTED_QUEUE)] == [
        JobSubmitted.of(job)
    ]
    assert await gw.call("GET", f"{STARTER}/{job.id}") == execution


async def test_a_qiskit_runtime_program_gets_the_keys_of_data_and_params(gw: Harness):
    execution = await start(
        gw, "/services/sleeper", {"data": {"seconds": 1}, "params": {"ticks": 2}}
    )
    assert json.loads((await gw.job(execution["id"])).params) == {"seconds": 1, "ticks": 2}
    clash = await gw.call("POST", "/services/sleeper/", 400,
                          json={"data": {"seconds": 1}, "params": {"seconds": 2}})  # fmt: skip
    assert clash["field"] == "params.seconds"
    assert (await gw.call("POST", "/services/sleeper/", 400, json={}))["field"] == "params.seconds"


async def test_an_empty_input_starts_an_execution_of_a_planqk_program(gw: Harness):
    execution = await start(gw, STARTER, {})
    assert (await gw.job(execution["id"])).params == planqk_input({}, {})


async def test_an_uploaded_services_executions_belong_to_its_owner(gw: Harness):
    files = {"program.py": "def main(backend, user_messenger):\n    return 1\n"}
    body = {"name": "lab", "data": b64_zip_of(files), "hub": "a", "group": "b", "project": "c"}
    program_id = (await gw.call("POST", "/programs", 201, json=body))["id"]
    execution = await start(gw, f"/services/{program_id}", {})
    assert (await gw.job(execution["id"])).instance == "a/b/c"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"data": [1]}, "data"),
        ({"params": "x"}, "params"),
        ({"input": {}}, "input"),
    ],
)
async def test_a_wrong_input_is_refused_naming_the_field(gw: Harness, body, field):
    assert (await gw.call("POST", f"{STARTER}/", 400, json=body))["field"] == field
    assert await gw.sent(SUBMITTED_QUEUE) == []


async def test_input_over_the_service_limit_is_413(make_gateway: MakeGateway):
    gw = await make_gateway(max_service_input_bytes=100)
    refused = await gw.call("POST", f"{STARTER}/", 413, json={"data": {"values": [1] * 100}})
    assert refused == {"detail": "the input is larger than the limit of 100 bytes", "field": None}

    # Without a Content-Length the body is measured as it is read.
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"data": {"values": ['
        yield b"1, " * 60 + b"1]}}"

    async with gw.client.post(f"{STARTER}/", data=chunks()) as response:
        assert response.status == 413
    assert await gw.sent(SUBMITTED_QUEUE) == []


async def test_an_execution_of_another_service_is_404(gw: Harness):
    execution = await start(gw, STARTER, {})
    refused = await gw.call("GET", f"/services/planqk-ghz/{execution['id']}", 404)
    assert refused["detail"] == f"execution '{execution['id']}' of service 'planqk-ghz' not found"
    await gw.call("GET", f"/services/planqk-ghz/{execution['id']}/result", 404)


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ((), "PENDING"),
        ((S.RUNNING,), "RUNNING"),
        ((S.RUNNING, S.COMPLETED), "SUCCEEDED"),
        ((S.FAILED,), "FAILED"),
        ((S.RUNNING, S.CANCELLED_RAN_TOO_LONG), "FAILED"),
        ((S.CANCELLED,), "CANCELLED"),
    ],
)
async def test_a_jobs_status_in_planqks_words(gw: Harness, path, shown):
    execution = await start(gw, STARTER, {})
    await gw.move(execution["id"], *path)
    current = await gw.call("GET", f"{STARTER}/{execution['id']}")
    assert current["status"] == shown
    assert (current["startedAt"] is not None) == (S.RUNNING in path)
    assert (current["endedAt"] is not None) == (shown not in ("PENDING", "RUNNING"))


@pytest.mark.parametrize(
    "path", [(), (S.RUNNING,), (S.CANCELLED,)], ids=["pending", "running", "cancelled"]
)
async def test_there_is_no_result_before_the_execution_ended(gw: Harness, path):
    execution = await start(gw, STARTER, {})
    await gw.move(execution["id"], *path)
    status = (await gw.call("GET", f"{STARTER}/{execution['id']}"))["status"]
    refused = await gw.call("GET", f"{STARTER}/{execution['id']}/result", 409)
    assert refused["detail"] == f"execution '{execution['id']}' is {status}: it has no result"


async def test_a_succeeded_executions_result_is_the_programs(gw: Harness):
    execution = await start(gw, STARTER, {})
    await gw.move(execution["id"], S.RUNNING)
    await gw.store.set_result(execution["id"], '{"result": {"sum": 3}, "metadata": {}}')
    await gw.move(execution["id"], S.COMPLETED)
    result = await gw.call("GET", f"{STARTER}/{execution['id']}/result")
    assert result == {"result": {"sum": 3}, "metadata": {}}


async def test_a_succeeded_execution_without_a_result_answers_null(gw: Harness):
    execution = await start(gw, STARTER, {})
    await gw.move(execution["id"], S.RUNNING, S.COMPLETED)
    async with gw.client.get(f"{STARTER}/{execution['id']}/result") as response:
        assert response.status == 200 and await response.text() == "null"


async def test_a_failed_execution_answers_its_error(gw: Harness):
    execution = await start(gw, STARTER, {})
    await gw.move(execution["id"], S.RUNNING, S.FAILED, reason="ZeroDivisionError: boom")
    assert await gw.call("GET", f"{STARTER}/{execution['id']}/result") == {
        "code": "500",
        "detail": "ZeroDivisionError: boom",
    }
    overtime = await start(gw, STARTER, {})
    await gw.move(overtime["id"], S.RUNNING, S.CANCELLED_RAN_TOO_LONG)
    assert (await gw.call("GET", f"{STARTER}/{overtime['id']}/result"))["detail"] == (
        "the execution failed"
    )


async def test_a_failed_execution_with_a_stored_body_answers_that_body(gw: Harness):
    execution = await start(gw, STARTER, {})
    await gw.move(execution["id"], S.RUNNING)
    await gw.store.set_result(execution["id"], '{"code": "E42", "detail": "bad input"}')
    await gw.move(execution["id"], S.FAILED, reason="bad input")
    assert await gw.call("GET", f"{STARTER}/{execution['id']}/result") == {
        "code": "E42",
        "detail": "bad input",
    }


async def test_interim_results_all_or_the_last(gw: Harness):
    execution = await start(gw, STARTER, {})
    path = f"{STARTER}/{execution['id']}/interim-results"
    assert await gw.call("GET", path) == []
    async with gw.client.get(f"{path}?last=true") as response:
        assert await response.text() == "null"
    await gw.move(execution["id"], S.RUNNING)
    for index, value in enumerate(({"step": 1}, {"step": 2}, [3])):
        await gw.store.add_interim(execution["id"], 1, index, json.dumps(value))
    assert await gw.call("GET", path) == [{"step": 1}, {"step": 2}, [3]]
    assert await gw.call("GET", f"{path}?last=false") == [{"step": 1}, {"step": 2}, [3]]
    assert await gw.call("GET", f"{path}?last=true") == [3]
    refused = await gw.call("GET", f"{path}?last=maybe", 400)
    assert refused["field"] == "last"


async def test_the_log_is_listed_line_by_line(gw: Harness):
    execution = await start(gw, STARTER, {})
    path = f"{STARTER}/{execution['id']}/log"
    assert await gw.call("GET", path) == []
    await gw.move(execution["id"], S.RUNNING)
    await gw.store.append_log(execution["id"], 1, 0, "one\ntw")
    await gw.store.append_log(execution["id"], 1, 1, "o\nthree\n")
    assert await gw.call("GET", path) == [
        {"message": line, "severity": "INFO", "timestamp": None} for line in ("one", "two", "three")
    ]


async def test_interim_results_and_log_of_one_attempt(gw: Harness):
    execution = await start(gw, STARTER, {})
    job_id = execution["id"]
    await gw.move(job_id, S.RUNNING, S.QUEUED, S.RUNNING)  # its executor was lost: attempt 2
    await gw.store.add_interim(job_id, 1, 0, '{"step": 1}')
    await gw.store.add_interim(job_id, 2, 0, '{"step": 1}')
    await gw.store.add_interim(job_id, 2, 1, '{"step": 2}')
    await gw.store.append_log(job_id, 1, 0, "lost\n")
    await gw.store.append_log(job_id, 2, 0, "again\n")
    interims = f"{STARTER}/{job_id}/interim-results"
    assert await gw.call("GET", interims) == [{"step": 1}, {"step": 1}, {"step": 2}]
    assert await gw.call("GET", f"{interims}?attempt=1") == [{"step": 1}]
    assert await gw.call("GET", f"{interims}?attempt=2") == [{"step": 1}, {"step": 2}]
    assert await gw.call("GET", f"{interims}?attempt=1&last=true") == {"step": 1}
    log = f"{STARTER}/{job_id}/log"
    assert [e["message"] for e in await gw.call("GET", f"{log}?attempt=2")] == ["again"]
    refused = await gw.call("GET", f"{interims}?attempt=3", 400)
    assert refused["detail"] == "query parameter 'attempt' must be between 1 and 2"


@pytest.mark.parametrize("path", [(), (S.RUNNING,)], ids=["pending", "running"])
async def test_cancelling_a_pending_execution_asks_the_scheduler(gw: Harness, path):
    execution = await start(gw, STARTER, {})
    await gw.move(execution["id"], *path)
    shown = await gw.call("PUT", f"{STARTER}/{execution['id']}/cancel")
    assert shown["id"] == execution["id"] and shown["status"] in ("PENDING", "RUNNING")
    assert [decode(CancelJob, b) for b in await gw.sent(CANCEL_QUEUE)] == [
        CancelJob(execution["id"])
    ]


async def test_cancelling_an_ended_execution_is_409_in_planqks_words(gw: Harness):
    execution = await start(gw, STARTER, {})
    await gw.move(execution["id"], S.RUNNING, S.COMPLETED)
    refused = await gw.call("PUT", f"{STARTER}/{execution['id']}/cancel", 409)
    assert refused["detail"] == f"job '{execution['id']}' has already ended: SUCCEEDED"
    assert await gw.sent(CANCEL_QUEUE) == []
