"""PlanQK's Service API against a real platform: the starter walkthrough, every failure path,
cancels of running executions, and one job model under both APIs."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp
import pytest
from openapi_spec_validator import validate

from tests.support.platform import logs_of, poll_status, wait_for
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

ENDED = {"SUCCEEDED", "FAILED", "CANCELLED"}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
STARTER_INPUT = {"data": {"values": [1, 5.2, 20, 7, 9.4]}, "params": {"round_off": True}}


async def start(http: aiohttp.ClientSession, service: str, body: Any) -> dict[str, Any]:
    async with http.post(f"/services/{service}/", json=body) as response:
        assert response.status == 201, await response.text()
        execution: dict[str, Any] = await response.json()
        assert response.headers["Location"] == f"/services/{service}/{execution['id']}"
        return execution


async def wait_execution(
    http: aiohttp.ClientSession,
    service: str,
    execution_id: str,
    statuses: Iterable[str] = ENDED,
    timeout: float = 30,
) -> dict[str, Any]:
    """The execution, once its status is one of `statuses` (by default: once it ended)."""
    return await poll_status(http, f"/services/{service}/{execution_id}", statuses, timeout)


async def get_json(http: aiohttp.ClientSession, path: str, status: int = 200) -> Any:
    async with http.get(path) as response:
        assert response.status == status, await response.text()
        return await response.json()


async def run(http: aiohttp.ClientSession, service: str, body: Any) -> tuple[str, str, Any]:
    """Start an execution and wait for its end: its id, its status and its result body."""
    execution_id = (await start(http, service, body))["id"]
    execution = await wait_execution(http, service, execution_id)
    result = await get_json(http, f"/services/{service}/{execution_id}/result")
    return execution_id, execution["status"], result


async def test_starter_walkthrough(http):
    service = "/services/planqk-starter"
    assert await get_json(http, f"{service}/") == {"status": "Service is up and running"}
    assert await get_json(http, service) == {"status": "Service is up and running"}
    created = await start(http, "planqk-starter", STARTER_INPUT)
    assert set(created) == {"id", "status", "createdAt", "startedAt", "endedAt"}
    assert created["status"] == "PENDING" and TIMESTAMP.fullmatch(created["createdAt"])
    execution_id = created["id"]
    execution = await wait_execution(http, "planqk-starter", execution_id)
    assert execution["status"] == "SUCCEEDED"
    assert created["createdAt"] <= execution["startedAt"] <= execution["endedAt"]
    result = await get_json(http, f"{service}/{execution_id}/result")
    assert result["result"] == {"sum": 43} and "execution_time" in result["metadata"]
    interims = await get_json(http, f"{service}/{execution_id}/interim-results")
    assert [round(i["sum"], 6) for i in interims] == [1, 6.2, 26.2, 33.2, 42.6]
    last = await get_json(http, f"{service}/{execution_id}/interim-results?last=true")
    assert round(last["sum"], 6) == 42.6
    log = await get_json(http, f"{service}/{execution_id}/log")
    messages = [entry["message"] for entry in log]
    assert messages == ["Starting execution: 5 values, round_off=True",
                        "Calculation successfully executed"]  # fmt: skip
    assert {entry["severity"] for entry in log} == {"INFO"}
    # One job model: the execution is a job of the Qiskit Runtime API as well.
    job = await wait_for(http, execution_id)
    assert job["status"] == "Completed" and job["program"] == {"id": "planqk-starter"}
    assert json.loads(job["params"][0]) == STARTER_INPUT
    async with http.get(f"/jobs/{execution_id}/results") as response:
        assert json.loads(await response.json()) == result
    without_rounding = {"data": STARTER_INPUT["data"], "params": {}}
    _, status, body = await run(http, "planqk-starter", without_rounding)
    assert status == "SUCCEEDED" and round(body["result"]["sum"], 6) == 42.6


async def test_a_planqk_program_through_the_qiskit_runtime_api(http):
    body = {"programId": "planqk-starter", "params": STARTER_INPUT}
    async with http.post("/jobs", json=body) as response:
        job_id = (await response.json())["id"]
    assert (await wait_for(http, job_id))["status"] == "Completed"
    async with http.get(f"/jobs/{job_id}/results") as response:
        assert json.loads(await response.json())["result"] == {"sum": 43}
    execution = await get_json(http, f"/services/planqk-starter/{job_id}")
    assert execution["status"] == "SUCCEEDED"
    programs = {p["id"]: p["kind"] for p in (await get_json(http, "/programs"))["programs"]}
    assert programs["planqk-starter"] == "python-template"
    assert programs["planqk-oneshot-sum"] == "one-shot"
    assert programs["sample-program"] == "qiskit-runtime"
    for params, field in (
        ({"data": {}, "extra": 1}, "params.extra"),
        ({"data": [1]}, "params.data"),
    ):
        async with http.post(
            "/jobs", json={"programId": "planqk-starter", "params": params}
        ) as response:
            assert response.status == 400 and (await response.json())["field"] == field


async def test_a_qiskit_runtime_program_through_the_service_api(http):
    request = {"data": {"seconds": 0.1}, "params": {"ticks": 2}}
    execution_id, status, body = await run(http, "sleeper", request)
    assert (status, body) == ("SUCCEEDED", "woke up")
    interims = await get_json(http, f"/services/sleeper/{execution_id}/interim-results")
    assert interims == [{"tick": 0}, {"tick": 1}]
    # The Service API's log holds the program's own lines: what `publish` printed of each
    # interim result and of the result (which the Qiskit Runtime API's log keeps) is not
    # repeated there.
    log = await get_json(http, f"/services/sleeper/{execution_id}/log")
    assert [entry["message"] for entry in log] == ["tick 0", "tick 1"]
    assert (await logs_of(http, execution_id)).splitlines() == [
        '{"tick": 0}',
        "tick 0",
        '{"tick": 1}',
        "tick 1",
        '"woke up"',
    ]
    for bad, field, words in (
        ({"data": {"seconds": 1}, "params": {"seconds": 2}}, "params.seconds", "in both"),
        ({"data": {"ticks": 1}}, "params.seconds", "missing required"),
    ):
        async with http.post("/services/sleeper/", json=bad) as response:
            error = await response.json()
            assert response.status == 400 and error["field"] == field and words in error["detail"]


async def test_a_quantum_program_runs_on_the_jobs_backend(http):
    request = {"data": {"n_qubits": 3}, "params": {"shots": 200, "seed": 7}}
    _, status, body = await run(http, "planqk-ghz", request)
    assert status == "SUCCEEDED"
    assert set(body["counts"]) <= {"000", "111"} and sum(body["counts"].values()) == 200
    assert body["backend"] == "aer_simulator" and body["shots"] == 200
    job = {"programId": "planqk-ghz", "backend": "aer_simulator_statevector", "params": request}
    async with http.post("/jobs", json=job) as response:
        job_id = (await response.json())["id"]
    assert (await wait_for(http, job_id))["status"] == "Completed"
    async with http.get(f"/jobs/{job_id}/results") as response:
        assert json.loads(await response.json())["backend"] == "aer_simulator_statevector"
    # Its parameters are declared: a misspelled one is refused, not ignored.
    misspelled = {"data": {"n_qubits": 3}, "params": {"shot": 200}}
    async with http.post("/services/planqk-ghz/", json=misspelled) as response:
        error = await response.json()
        assert response.status == 400 and error["field"] == "params.params.shot", error
        assert "a misspelling of 'params.shots'?" in error["detail"]
    async with http.post("/jobs", json={**job, "params": misspelled}) as response:
        assert response.status == 400 and (await response.json())["field"] == "params.params.shot"


@pytest.mark.parametrize(
    ("service", "params", "error"),
    [
        ("planqk-modes", {"respond": "error"}, {"code": "400", "detail": "values must be numbers"}),
        ("planqk-modes", {"respond": "raise"}, {"code": "500", "detail": "ValueError: boom"}),
        ("oneshot-modes", {"print": "exit"},
         {"code": "500", "detail": "program process exited with code 4"}),
        ("oneshot-modes", {"print": "none"},
         {"code": "500", "detail": "the program exited with code 0 without a result (print "
          "'PlanQK:Job:Result: {json}' or a PlanQK:Job:MultilineResult block)"}),
        ("oneshot-modes", {"print": "unclosed"},
         {"code": "500", "detail": "the PlanQK:Job:MultilineResult block was never closed"}),
    ],
)  # fmt: skip
async def test_failures_are_failed_with_a_code_and_detail(http, service, params, error):
    execution_id, status, body = await run(
        http, service, {"data": {"values": [1]}, "params": params}
    )
    assert (status, body) == ("FAILED", error)
    assert (await wait_for(http, execution_id))["status"] == "Failed"
    if params.get("respond") == "raise":
        assert "Traceback (most recent call last)" in await logs_of(http, execution_id)


@pytest.mark.parametrize(
    ("data", "params", "detail"),
    [
        ({"values": [1, "two"]}, {}, 'data.values[1] must be a number, not str "two"'),
        ({"values": [1, True]}, {}, "data.values[1] must be a number, not bool true"),
        ({"values": {"a": 1}}, {}, "data.values must be a list of numbers, not dict"),
        ({"values": [1]}, {"round_off": "yes"}, 'params.round_off must be true or false, not "yes"'),
        ({"values": [1e308, 1e308]}, {}, "the sum of data.values is beyond a float's range"),
    ],
)  # fmt: skip
async def test_the_starter_refuses_bad_input_naming_it(http, data, params, detail):
    _, status, body = await run(http, "planqk-starter", {"data": data, "params": params})
    assert (status, body) == ("FAILED", {"code": "400", "detail": detail})


async def test_a_one_shot_program_over_http(http):
    execution_id, status, body = await run(http, "planqk-oneshot-sum", STARTER_INPUT)
    assert (status, body) == ("SUCCEEDED", {"sum": 43, "count": 5})
    interims = await get_json(http, f"/services/planqk-oneshot-sum/{execution_id}/interim-results")
    assert len(interims) == 5


@pytest.mark.parametrize(
    ("service", "params"),
    [
        ("planqk-modes", {"respond": "sleep", "pidfile": "/dev/null"}),
        ("oneshot-modes", {"print": "sleep"}),
    ],
)
async def test_cancel_a_running_execution(http, service, params):
    execution_id = (await start(http, service, {"params": params}))["id"]
    await wait_execution(http, service, execution_id, {"RUNNING"})
    if service == "oneshot-modes":  # running inside its sandbox, not just started
        await eventually(
            lambda: get_json(http, f"/services/{service}/{execution_id}/interim-results"),
            f"execution {execution_id} sends an interim result",
        )
    async with http.put(f"/services/{service}/{execution_id}/cancel") as response:
        assert response.status == 200
        assert (await response.json())["id"] == execution_id
    execution = await wait_execution(http, service, execution_id, timeout=5)
    assert execution["status"] == "CANCELLED" and execution["endedAt"]
    async with http.put(f"/services/{service}/{execution_id}/cancel") as response:
        assert response.status == 409 and "CANCELLED" in (await response.json())["detail"]
    error = await get_json(http, f"/services/{service}/{execution_id}/result", 409)
    assert error["detail"] == f"execution '{execution_id}' is CANCELLED: it has no result"


async def test_cancel_a_pending_execution_and_results_before_the_end(http):
    execution_id = (await start(http, "oneshot-modes", {"params": {"print": "sleep"}}))["id"]
    error = await get_json(http, f"/services/oneshot-modes/{execution_id}/result", 409)
    assert "it has no result" in error["detail"]
    async with http.put(f"/services/oneshot-modes/{execution_id}/cancel") as response:
        assert response.status == 200
    execution = await wait_execution(http, "oneshot-modes", execution_id, timeout=5)
    assert execution["status"] == "CANCELLED"


async def test_running_too_long_is_failed(http):
    body = {
        "programId": "oneshot-modes",
        "maxExecutionTime": 1,
        "params": {"params": {"print": "sleep"}},
    }
    async with http.post("/jobs", json=body) as response:
        job_id = (await response.json())["id"]
    assert (await wait_for(http, job_id))["status"] == "Cancelled - Ran too long"
    assert (await get_json(http, f"/services/oneshot-modes/{job_id}"))["status"] == "FAILED"
    result = await get_json(http, f"/services/oneshot-modes/{job_id}/result")
    assert result == {"code": "500", "detail": "ran longer than 1 s"}


async def test_input_over_1_mb_is_413_and_nothing_is_created(http):
    before = (await get_json(http, "/jobs?program=planqk-starter"))["count"]
    huge = {"data": {"values": [1] * 400_000}}
    async with http.post("/services/planqk-starter/", json=huge) as response:
        assert response.status == 413
        assert (await response.json())[
            "detail"
        ] == "the input is larger than the limit of 1048576 bytes"

    # Without a Content-Length (chunked) too.
    async def chunks() -> AsyncIterator[bytes]:
        yield json.dumps(huge).encode()

    async with http.post("/services/planqk-starter/", data=chunks()) as response:
        assert response.status == 413
    assert (await get_json(http, "/jobs?program=planqk-starter"))["count"] == before


async def test_bad_requests_name_the_problem(http):
    cases = [
        ("/services/nope/", {"data": {}}, 404, None, "service 'nope' not found"),
        (
            "/services/planqk-starter/",
            {"data": [1]},
            400,
            "data",
            "must be a JSON object, not an array",
        ),
        ("/services/planqk-starter/", {"dataRef": {"id": "x"}}, 400, "dataRef", "Extra inputs"),
        ("/services/planqk-starter/", [1], 400, None, "must be a JSON object, not an array"),
    ]
    for path, body, status, field, words in cases:
        async with http.post(path, json=body) as response:
            error = await response.json()
            assert response.status == status and error["field"] == field, error
            assert words in error["detail"], error
    async with http.post("/services/planqk-starter/", data=b"{nope") as response:
        assert response.status == 400 and "not valid JSON" in (await response.json())["detail"]
    await get_json(http, "/services/nope/", 404)
    missing = await get_json(http, "/services/planqk-starter/nope", 404)
    assert missing["detail"] == "execution 'nope' of service 'planqk-starter' not found"
    for suffix in ("result", "interim-results", "log"):
        await get_json(http, f"/services/planqk-starter/nope/{suffix}", 404)
    other = (await start(http, "planqk-modes", {}))["id"]
    await get_json(http, f"/services/planqk-starter/{other}", 404)
    await get_json(http, f"/services/planqk-modes/{other}/interim-results?last=maybe", 400)
    assert await get_json(http, f"/services/planqk-modes/{other}/interim-results?last=true") is None
    await wait_execution(http, "planqk-modes", other)


async def test_the_service_api_is_in_the_openapi_document(http):
    document = await get_json(http, "/openapi.json")
    validate(document)
    paths = document["paths"]
    assert set(paths["/services/{program_id}/"]) == {"get", "post"}
    assert set(paths["/services/{program_id}/{execution_id}/cancel"]) == {"put"}
    for suffix in ("", "/result", "/interim-results", "/log"):
        assert "get" in paths[f"/services/{{program_id}}/{{execution_id}}{suffix}"]
    assert set(paths["/services/{program_id}/"]["post"]["responses"]) == {
        "201",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "429",
        "503",
    }
    schemas = document["components"]["schemas"]
    assert set(schemas["ExecutionOut"]["properties"]) == {
        "id",
        "status",
        "createdAt",
        "startedAt",
        "endedAt",
    }
