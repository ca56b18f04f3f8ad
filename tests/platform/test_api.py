"""The gateway's API against a real platform: every endpoint, every failure path."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from openapi_spec_validator import validate

from tests.support.platform import FINAL, get_json, logs_of, submit, wait_for
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_programs_are_listed_with_their_metadata(http):
    async with http.get("/programs") as response:
        programs = {p["id"]: p for p in (await response.json())["programs"]}
    sample = programs["sample-program"]
    assert sample["name"] == "sample-program"
    assert sample["maxExecutionTime"] == 300 and sample["cost"] == 300
    assert sample["backendRequirements"] == {"min_num_qubits": 5}
    assert sample["parameters"][0]["name"] == "iterations"
    assert sample["returnValues"][0]["name"] == "-"
    assert [r["name"] for r in sample["interimResults"]] == ["iteration", "counts"]
    assert sample["isPublic"] is True and sample["version"] == "1.0"
    async with http.get("/programs/hello-quantum") as response:
        assert (await response.json())["description"] == "A simple test program."
    async with http.get("/programs/nope") as response:
        assert response.status == 404
        assert await response.json() == {"detail": "program 'nope' not found", "field": None}


async def test_backends(http):
    async with http.get("/backends") as response:
        names = [b["name"] for b in (await response.json())["backends"]]
    assert names == ["aer_simulator", "aer_simulator_statevector"]


async def test_job_lifecycle_with_params_as_object(http):
    job_id = await submit(http, "sleeper", seconds=0.1, ticks=2)
    job = await wait_for(http, job_id)
    assert job["status"] == "Completed"
    assert job["program"] == {"id": "sleeper"} and job["backend"] == "aer_simulator"
    assert (job["hub"], job["group"], job["project"]) == ("ibm-q", "open", "main")
    assert json.loads(job["params"][0]) == {"seconds": 0.1, "ticks": 2}
    assert job["created"] <= job["started"] <= job["ended"] and job["attempt"] == 1
    async with http.get(f"/jobs/{job_id}/results") as response:
        assert json.loads(await response.json()) == "woke up"
    assert "tick 0\n" in await logs_of(http, job_id)


async def test_seed_body_with_params_as_a_json_string(http):
    body = {"programId": "hello-quantum", "hub": "h", "group": "g", "project": "p",
            "backend": "aer_simulator", "params": ['{ "greeting":"Hello Quantum!" }']}  # fmt: skip
    async with http.post("/jobs", json=body) as response:
        job_id = (await response.json())["id"]
    job = await wait_for(http, job_id)
    assert job["status"] == "Completed" and (job["hub"], job["group"]) == ("h", "g")
    log = await logs_of(http, job_id)
    assert log.startswith('"Hello Quantum!"\n') and "q_0: ┤ H ├" in log
    async with http.get(f"/jobs/{job_id}/results") as response:
        counts = json.loads(await response.json())
    assert set(counts) <= {"00 00", "11 00"} and sum(counts.values()) == 1024


async def test_results_are_204_until_there_is_a_final_result(http):
    job_id = await submit(http, "sleeper", seconds=1)
    async with http.get(f"/jobs/{job_id}/results") as response:
        assert response.status == 204
    await wait_for(http, job_id)
    silent = await submit(http, "silent")
    assert (await wait_for(http, silent))["status"] == "Completed"
    async with http.get(f"/jobs/{silent}/results") as response:
        assert response.status == 204


async def test_logs_of_a_queued_job_are_empty_not_an_error(http):
    job_id = await submit(http, "noop")
    async with http.get(f"/jobs/{job_id}/logs") as response:
        assert response.status == 200
    await wait_for(http, job_id)


async def test_failed_job_has_reason_and_traceback(http):
    job_id = await submit(http, "failing")
    job = await wait_for(http, job_id)
    assert (job["status"], job["reason"]) == ("Failed", "ValueError: boom")
    assert "Traceback" in await logs_of(http, job_id)


async def test_time_limit_gives_cancelled_ran_too_long(http):
    job_id = await submit(http, "overtime")
    job = await wait_for(http, job_id)
    assert job["status"] == "Cancelled - Ran too long"
    async with http.post("/jobs", json={"programId": "sleeper", "params": {"seconds": 30},
                                        "maxExecutionTime": 1}) as response:  # fmt: skip
        limited = (await response.json())["id"]
    assert (await wait_for(http, limited))["status"] == "Cancelled - Ran too long"


async def test_cancel_a_running_job(http):
    job_id = await submit(http, "sleeper", seconds=30)
    await wait_for(http, job_id, {"Running"})
    async with http.post(f"/jobs/{job_id}/cancel") as response:
        assert response.status == 204
    job = await wait_for(http, job_id, timeout=5)
    assert job["status"] == "Cancelled"
    async with http.post(f"/jobs/{job_id}/cancel") as response:
        assert response.status == 409
        assert "already ended: Cancelled" in (await response.json())["detail"]


async def test_cancel_a_queued_job(http):
    blockers = [await submit(http, "sleeper", seconds=30) for _ in range(4)]
    queued = await submit(http, "noop")
    for blocker in blockers:
        await wait_for(http, blocker, {"Running"})
    assert (await get_json(http, f"/jobs/{queued}"))["status"] == "Queued"
    async with http.post(f"/jobs/{queued}/cancel") as response:
        assert response.status == 204
    assert (await wait_for(http, queued, timeout=5))["status"] == "Cancelled"
    for blocker in blockers:
        async with http.post(f"/jobs/{blocker}/cancel"):
            pass
    for blocker in blockers:
        assert (await wait_for(http, blocker, timeout=5))["status"] == "Cancelled"
    assert (await wait_for(http, queued))["attempt"] == 0


async def test_delete(http):
    job_id = await submit(http, "sleeper", seconds=30)
    async with http.delete(f"/jobs/{job_id}") as response:
        assert response.status == 409
        assert "cancel it before deleting it" in (await response.json())["detail"]
    async with http.post(f"/jobs/{job_id}/cancel"):
        pass
    await wait_for(http, job_id)
    async with http.delete(f"/jobs/{job_id}") as response:
        assert response.status == 204
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/logs", f"/jobs/{job_id}/results"):
        async with http.get(path) as response:
            assert response.status == 404
    async with http.delete(f"/jobs/{job_id}") as response:
        assert response.status == 404


async def test_listing_filters_and_counts(http):
    body = {"programId": "noop", "hub": "lab", "group": "listing", "tags": ["nightly", "v2"]}
    ids = []
    for _ in range(3):
        async with http.post("/jobs", json=body) as response:
            ids.append((await response.json())["id"])
    async with http.post("/jobs", json={"programId": "silent", "group": "listing"}) as response:
        other = (await response.json())["id"]
    for job_id in [*ids, other]:
        await wait_for(http, job_id)

    async def listed(query: str) -> tuple[list[str], int]:
        async with http.get(f"/jobs?group=listing&{query}") as response:
            assert response.status == 200, await response.text()
            page = await response.json()
        return [j["id"] for j in page["jobs"]], page["count"]

    assert await listed("limit=2") == ([other, ids[2]], 4)
    assert await listed("limit=2&offset=2") == ([ids[1], ids[0]], 4)
    assert await listed("program=noop") == (ids[::-1], 3)
    assert await listed("hub=lab&tags=nightly,v2") == (ids[::-1], 3)
    assert await listed("tags=v3") == ([], 0)
    assert await listed("pending=true") == ([], 0)
    assert (await listed("pending=false"))[1] == 4
    assert (await listed("status=Completed&program=silent")) == ([other], 1)
    assert await listed("pending=true&status=Completed") == ([], 0)


async def test_bad_requests_name_the_problem(http):
    cases = [
        ({"programId": "sample-program"}, 400, "params.iterations", "missing required"),
        ({"programId": "sample-program", "params": {"iterations": "5"}}, 400, "params.iterations",
         "must be of type int"),
        ({"programId": "sample-program", "params": ["{bad json"]}, 400, "params[0]", "not valid JSON"),
        ({"programId": "sample-program", "params": ["[1]"]}, 400, "params[0]", "JSON object"),
        ({"programId": "sample-program", "params": ["{}", "{}"]}, 400, "params", "one JSON string"),
        ({"programId": "sample-program", "params": 5}, 400, "params", "JSON object"),
        ({"programId": "noop", "backend": "ibm_kyiv"}, 400, "backend", "unknown backend"),
        ({"programId": "noop", "maxExecutionTime": 0}, 400, "maxExecutionTime", "greater than 0"),
        ({"programId": "noop", "tags": "x"}, 400, "tags", "must be a JSON array, not a string"),
        ({"programId": "noop", "priority": 10}, 400, "priority", "less than or equal to 9"),
        ({"hub": "x"}, 400, "programId", "Field required"),
        ({"programId": "no-such-program"}, 404, "programId", "not found"),
        ([1, 2], 400, None, "must be a JSON object, not an array"),
    ]  # fmt: skip
    for body, status, field, words in cases:
        async with http.post("/jobs", json=body) as response:
            error = await response.json()
            assert response.status == status, (body, error)
            assert error["field"] == field and words in error["detail"], (body, error)
    for raw in (b"{not json", b""):
        async with http.post("/jobs", data=raw) as response:
            assert response.status == 400
            assert "JSON" in (await response.json())["detail"]
    for query, field in (("limit=0", "limit"), ("offset=-1", "offset"), ("limit=x", "limit"),
                         ("pending=maybe", "pending"), ("status=Done", "status")):  # fmt: skip
        async with http.get(f"/jobs?{query}") as response:
            assert response.status == 400 and (await response.json())["field"] == field
    async with http.get("/jobs/nope") as response:
        assert (
            response.status == 404 and (await response.json())["detail"] == "job 'nope' not found"
        )
    async with http.post("/jobs/nope/cancel") as response:
        assert response.status == 404
    async with http.get("/no/such/route") as response:
        assert response.status == 404 and "detail" in await response.json()
    async with http.put("/jobs") as response:
        assert response.status == 405 and "detail" in await response.json()


async def test_oversized_body_is_413_and_nothing_is_created(http):
    async with http.get("/jobs") as response:
        before = (await response.json())["count"]
    huge = {"programId": "noop", "params": {"blob": "x" * (11 * 1024 * 1024)}}
    async with http.post("/jobs", json=huge) as response:
        assert response.status == 413
        assert "larger than the limit of 10485760 bytes" in (await response.json())["detail"]
    async with http.get("/jobs") as response:
        assert (await response.json())["count"] == before


async def test_openapi_document_is_valid_and_complete(http):
    async with http.get("/openapi.json") as response:
        document = await response.json()
    validate(document)
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/logs", "/jobs/{job_id}/results",
            "/jobs/{job_id}/cancel", "/programs", "/programs/{program_id}",
            "/stream/jobs/{job_id}"} <= set(document["paths"])  # fmt: skip
    create = document["paths"]["/jobs"]["post"]
    assert set(create["responses"]) == {
        "200",
        "400",
        "401",
        "403",
        "404",
        "409",
        "413",
        "429",
        "503",
    }
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= create["parameters"][0].items()
    assert "programId" in document["components"]["schemas"]["JobRequest"]["properties"]
    async with http.get("/docs") as response:
        assert response.status == 200 and "swagger-ui" in await response.text()
    async with http.get("/docs/static/swagger-ui-bundle.js") as response:
        assert response.status == 200


async def test_health(http):
    async with http.get("/healthz") as response:
        assert response.status == 200
    async with http.get("/readyz") as response:
        assert await response.json() == {
            "status": "ready", "checks": {"store": True, "bus": True}, "problems": []
        }  # fmt: skip


async def test_many_concurrent_jobs_all_complete(http):
    ids = await asyncio.gather(*(submit(http, "noop") for _ in range(40)))
    jobs = [await wait_for(http, job_id) for job_id in ids]
    assert {j["status"] for j in jobs} == {"Completed"}


async def test_websocket_streams_interims_then_final_then_closes(http):
    job_id = await submit(http, "sleeper", seconds=0.6, ticks=3)
    async with http.ws_connect(f"/stream/jobs/{job_id}") as ws:
        frames = [message.data async for message in ws]
        assert ws.close_code == 1000
    assert frames == ['{"tick": 0}', '{"tick": 1}', '{"tick": 2}', '"woke up"']


async def test_websocket_replays_for_a_late_client_and_a_finished_job(http):
    job_id = await submit(http, "sleeper", seconds=0.4, ticks=2)
    await eventually(
        lambda: logs_of(http, job_id), f"job {job_id} logs its first tick",
        until=lambda log: "tick 0" in log,
    )  # fmt: skip
    async with http.ws_connect(f"/stream/jobs/{job_id}") as ws:
        late = [message.data async for message in ws]
    async with http.ws_connect(f"/stream/jobs/{job_id}") as ws:
        after = [message.data async for message in ws]
    assert late == after == ['{"tick": 0}', '{"tick": 1}', '"woke up"']


async def test_websocket_for_failed_and_unknown_jobs(http):
    job_id = await submit(http, "failing")
    await wait_for(http, job_id)
    async with http.ws_connect(f"/stream/jobs/{job_id}") as ws:
        assert [message.data async for message in ws] == []
        assert ws.close_code == 1000
    try:
        async with http.ws_connect("/stream/jobs/nope"):
            raise AssertionError("connected to a stream of an unknown job")
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 404


@pytest.fixture
def updates_lost(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """Streams hear no update at all, as when the broker lost them: they look at the store
    every `quiet` seconds (the test may change it)."""
    from qrt_gateway import websockets

    settings = {"quiet": 0.05}

    async def nothing_came(inbox: Any, client: Any) -> None:
        await asyncio.sleep(settings["quiet"])

    monkeypatch.setattr(websockets, "_next", nothing_came)
    return settings


async def stream(ws: aiohttp.ClientWebSocketResponse) -> tuple[list[str], str]:
    """A stream's text frames, and the message it closed with."""
    frames = []
    while (message := await ws.receive()).type is aiohttp.WSMsgType.TEXT:
        frames.append(message.data)
    assert message.type is aiohttp.WSMsgType.CLOSE, message
    return frames, str(message.extra)


async def test_websocket_without_updates_still_sends_everything_stored(http, updates_lost):
    job_id = await submit(http, "sleeper", seconds=0.3, ticks=2)
    async with http.ws_connect(f"/stream/jobs/{job_id}") as ws:
        frames, closing = await stream(ws)
        assert ws.close_code == 1000
    assert frames == ['{"tick": 0}', '{"tick": 1}', '"woke up"']
    assert closing == "Completed"


async def test_websocket_of_a_job_deleted_while_watched_closes_with_4404(http, updates_lost):
    updates_lost["quiet"] = 2.0  # the job ends and goes before the stream looks again
    job_id = await submit(http, "sleeper", seconds=0.2)
    async with http.ws_connect(f"/stream/jobs/{job_id}/logs") as ws:
        await wait_for(http, job_id)
        async with http.delete(f"/jobs/{job_id}") as response:
            assert response.status == 204
        _, closing = await stream(ws)
        assert (ws.close_code, closing) == (4404, "job deleted")


async def test_websocket_close_message_is_the_final_status(http):
    job_id = await submit(http, "failing")
    async with http.ws_connect(f"/stream/jobs/{job_id}") as ws:
        frames, closing = await stream(ws)
    assert (frames, closing) == ([], "Failed")


async def test_log_stream_replays_then_follows(http):
    job_id = await submit(http, "sleeper", seconds=0.6, ticks=3)
    await wait_for(http, job_id, {"Running"})
    async with http.ws_connect(f"/stream/jobs/{job_id}/logs") as ws:
        text = "".join([message.data async for message in ws])
    assert text == await logs_of(http, job_id)
    assert [line for line in text.splitlines() if line.startswith("tick")] == [
        "tick 0", "tick 1", "tick 2",
    ]  # fmt: skip


async def test_final_statuses_are_all_reachable(http):
    statuses = set()
    runs: tuple[tuple[str, dict[str, Any]], ...] = (("noop", {}), ("failing", {}), ("overtime", {}))
    for program, params in runs:
        statuses.add((await wait_for(http, await submit(http, program, **params)))["status"])
    assert statuses <= FINAL and len(statuses) == 3


async def test_circuit_runner_runs_encoded_circuits(http):
    from qiskit import QuantumCircuit
    from qiskit_ibm_runtime import RuntimeEncoder

    bell = QuantumCircuit(2, 2, name="bell")
    bell.h(0)
    bell.cx(0, 1)
    bell.measure([0, 1], [0, 1])
    params = {"circuits": [bell, bell], "shots": 500, "seed_simulator": 7,
              "seed_transpiler": 1, "optimization_level": 1}  # fmt: skip
    body = {"programId": "circuit-runner", "params": [json.dumps(params, cls=RuntimeEncoder)]}
    async with http.post("/jobs", json=body) as response:
        assert response.status == 200, await response.text()
        job_id = (await response.json())["id"]
    assert (await wait_for(http, job_id))["status"] == "Completed"
    async with http.get(f"/jobs/{job_id}/results") as response:
        result = json.loads(await response.json())
    assert result["backend_name"] == "aer_simulator" and len(result["results"]) == 2
    for experiment in result["results"]:
        assert experiment["shots"] == 500
        assert set(experiment["data"]["counts"]) <= {"0x0", "0x3"}


async def test_circuit_runner_refuses_what_is_not_a_circuit_at_submit(http):
    for circuits in ("garbage", ["not a circuit"]):
        body = {"programId": "circuit-runner", "params": {"circuits": circuits}}
        async with http.post("/jobs", json=body) as response:
            error = await response.json()
            assert response.status == 400, error
        assert error["field"] == "params.circuits"
        assert "must be a QuantumCircuit or a non-empty list of them" in error["detail"]


async def test_circuit_runner_fails_when_aer_cannot_allocate_its_state(http):
    # The tester's case: 29 qubits of state vector (8 GiB) in a job that may map 4 GiB more
    # (the default QRT_JOB_MAX_MEMORY_BYTES): Aer's allocation fails, its Result says so.
    from qiskit import QuantumCircuit
    from qiskit_ibm_runtime import RuntimeEncoder

    ghz = QuantumCircuit(29)
    ghz.h(0)
    for qubit in range(28):
        ghz.cx(qubit, qubit + 1)
    ghz.measure_all()
    params = json.dumps({"circuits": ghz, "shots": 10}, cls=RuntimeEncoder)
    body = {"programId": "circuit-runner", "backend": "aer_simulator_statevector",
            "params": [params]}  # fmt: skip
    async with http.post("/jobs", json=body) as response:
        assert response.status == 200, await response.text()
        job_id = (await response.json())["id"]
    job = await wait_for(http, job_id)
    assert job["status"] == "Failed", job
    assert job["reason"] == (
        f"memory limit reached: the job may use {4 << 30} bytes more than it started with "
        "(QRT_JOB_MAX_MEMORY_BYTES)"
    )


async def test_circuit_runner_fails_shots_out_of_range_with_one_line(http):
    from qiskit import QuantumCircuit
    from qiskit_ibm_runtime import RuntimeEncoder

    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    params = json.dumps({"circuits": bell, "shots": -5}, cls=RuntimeEncoder)
    async with http.post("/jobs", json={"programId": "circuit-runner", "params": [params]}) as r:
        assert r.status == 200, await r.text()
        job_id = (await r.json())["id"]
    job = await wait_for(http, job_id)
    assert job["status"] == "Failed", job
    assert job["reason"] == (
        "params.shots: shots must be an integer from 1 to 100000 (max_shots), not -5"
    )


async def test_priority_jumps_the_queue(http):
    blockers = [await submit(http, "sleeper", seconds=30) for _ in range(4)]
    for blocker in blockers:
        await wait_for(http, blocker, {"Running"})
    ordinary = [await submit(http, "noop") for _ in range(3)]
    async with http.post("/jobs", json={"programId": "noop", "priority": 9}) as response:
        urgent = (await response.json())["id"]
    assert (await get_json(http, f"/jobs/{urgent}"))["priority"] == 9
    async with http.post(f"/jobs/{blockers[0]}/cancel"):
        pass
    urgent_job = await wait_for(http, urgent)
    assert urgent_job["status"] == "Completed"
    # It ran before any of the ordinary jobs submitted earlier.
    for job_id in ordinary:
        job = await wait_for(http, job_id, {"Queued", "Running", "Completed"})
        assert job["started"] is None or job["started"] >= urgent_job["started"]
    for blocker in blockers[1:]:
        async with http.post(f"/jobs/{blocker}/cancel"):
            pass
    for job_id in [*blockers, *ordinary]:
        await wait_for(http, job_id)


async def test_absurdly_nested_json_is_a_400(http):
    deep = b"[" * 100_000 + b"]" * 100_000
    async with http.post("/jobs", data=deep) as response:
        assert response.status == 400
        assert "nested too deeply" in (await response.json())["detail"]
