"""IBM's /api/v1 at the HTTP level: what the stock client never sends wrong, a careless or
hostile caller does. Every refusal names what is wrong in IBM's error shape (and qrt's); a
device's calibration becomes IBM's properties by the documented metric names."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from qiskit import QuantumCircuit
from qiskit_ibm_runtime import RuntimeEncoder

from qrt_common.device_protocol import PROTOCOL_VERSION, StaticInfo
from qrt_common.messages import DeviceReport, Heartbeat
from qrt_common.store.base import JobQuery
from qrt_common.wire import encode
from qrt_gateway.ibm_jobs import MAX_PAGE_WITH_PARAMS

from .conftest import Harness

CRN = "crn:v1:qrt:private:quantum-computing:local:a/qrt:ibm-q/open/main::"
HEADERS = {"Service-CRN": CRN}


def sampler_params(**extra: Any) -> dict[str, Any]:
    circuit = QuantumCircuit(1, name="one")
    circuit.measure_all()
    params: dict[str, Any] = json.loads(
        json.dumps({"pubs": [[circuit, None, 10]], "version": 2, **extra}, cls=RuntimeEncoder)
    )
    return params


async def ibm(gw: Harness, method: str, path: str, status: int = 200, **options: Any) -> Any:
    headers = {**HEADERS, **options.pop("headers", {})}
    return await gw.call(method, f"/api/v1{path}", status, headers=headers, **options)


async def refused(gw: Harness, method: str, path: str, status: int, message: str,
                  field: str | None = None, **options: Any) -> None:  # fmt: skip
    body = await ibm(gw, method, path, status, **options)
    error = body["errors"][0]
    assert message in error["message"] and body["status_code"] == status, body
    assert body["error"]["message"] == error["message"] == body["detail"]
    if field is not None:
        assert error["target"]["name"] == field and body["field"] == field


async def submit(gw: Harness, status: int = 200, **fields: Any) -> Any:
    body = {"program_id": "sampler", "backend": "aer_simulator", "params": sampler_params()}
    return await ibm(gw, "POST", "/jobs", status, json=body | fields)


async def test_a_job_is_stored_in_the_crns_instance_and_shown_as_ibm_shows_it(gw: Harness):
    params = sampler_params()
    await refused(gw, "POST", "/jobs", 404, "session 's1' not found", "session_id",
                  json={"program_id": "sampler", "backend": "aer_simulator", "params": params,
                        "session_id": "s1"})  # fmt: skip
    session = await ibm(gw, "POST", "/sessions", json={"mode": "batch", "backend": "aer_simulator"})
    created = await submit(gw, tags=["a", "b"], cost=30, session_id=session["id"],
                           log_level="WARNING", params=params)  # fmt: skip
    assert created["backend"] == "aer_simulator"
    job = await gw.job(created["id"])
    assert job.instance == "ibm-q/open/main" and job.max_execution_time == 30
    assert job.tags == ("a", "b") and job.session_id == session["id"]
    assert job.program_id == "sampler"
    shown = await ibm(gw, "GET", f"/jobs/{job.id}")
    assert shown["state"] == {"status": "Queued"} and shown["program"] == {"id": "sampler"}
    assert shown["params"] == params and shown["cost"] == 30
    assert "params" not in await ibm(gw, "GET", f"/jobs/{job.id}?exclude_params=true")
    await ibm(gw, "PUT", f"/jobs/{job.id}/tags", 204, json={"tags": ["c", "c", "d"]})
    assert (await gw.job(job.id)).tags == ("c", "d")
    listed = await ibm(gw, "GET", "/jobs?tags=c&pending=true&exclude_params=false")
    assert listed["count"] == 1 and listed["jobs"][0]["params"] == params
    other = {"Service-CRN": CRN.replace("ibm-q/open/main", "ibm-q/open/other")}
    assert (await ibm(gw, "GET", "/jobs", headers=other))["count"] == 0
    await refused(gw, "GET", f"/jobs/{job.id}", 404, f"job '{job.id}' not found", headers=other)
    await refused(gw, "DELETE", f"/jobs/{job.id}", 409, "is Queued; cancel it before deleting it")
    assert await ibm(gw, "GET", f"/jobs/{job.id}/results", 204) is None


async def test_a_page_with_params_is_capped(gw: Harness):
    for _ in range(MAX_PAGE_WITH_PARAMS + 2):
        await submit(gw)
    listed = await ibm(gw, "GET", "/jobs?exclude_params=false")
    assert listed["limit"] == MAX_PAGE_WITH_PARAMS and listed["count"] == MAX_PAGE_WITH_PARAMS + 2
    assert len(listed["jobs"]) == MAX_PAGE_WITH_PARAMS
    assert all(job["params"] == sampler_params() for job in listed["jobs"])
    await refused(gw, "GET", f"/jobs?exclude_params=false&limit={MAX_PAGE_WITH_PARAMS + 1}", 400,
                  f"'limit' must be between 1 and {MAX_PAGE_WITH_PARAMS}", "limit")  # fmt: skip
    # Without params (what qiskit-ibm-runtime asks for) a page may be as long as ever.
    listed = await ibm(gw, "GET", "/jobs?exclude_params=true&limit=1000")
    assert len(listed["jobs"]) == MAX_PAGE_WITH_PARAMS + 2
    assert all("params" not in job for job in listed["jobs"])


@pytest.mark.parametrize(("fields", "message", "field"), [
    ({"program_id": "executor"}, "program 'executor' is not a primitive qrt runs", "program_id"),
    ({"params": sampler_params(options={"execution": {"init_qubits": False}})},
     "options.execution.init_qubits: every shot starts from the ground state", "params.options.execution.init_qubits"),
    ({"params": {"pubs": "nope", "version": 2}}, "params.pubs: must be a non-empty list", "params.pubs"),
    ({"backend": None}, "backend is required", "backend"),
    ({"backend": "ibm_kyiv"}, "unknown backend 'ibm_kyiv'; available: aer_simulator", "backend"),
    ({"runtime": "image:tag"}, "custom runtime images", "runtime"),
    ({"private": True}, "private jobs (options.private) are not supported", "private"),
    ({"calibration_id": "c1"}, "calibration_id is not supported", "calibration_id"),
    ({"start_session": True}, "start_session is not supported", "start_session"),
    ({"cost": 0}, "cost: Input should be greater than 0", "cost"),
    ({"tags": [""]}, "tags.0: String should have at least 1 character", "tags.0"),
    ({"surprise": 1}, "surprise: Extra inputs are not permitted", "surprise"),
])  # fmt: skip
async def test_a_bad_submit_is_refused_naming_the_field(gw: Harness, fields, message, field):
    body = {"program_id": "sampler", "backend": "aer_simulator", "params": sampler_params()}
    await refused(gw, "POST", "/jobs", 400, message, field, json=body | fields)
    assert (await gw.store.list_jobs(JobQuery()))[1] == 0


@pytest.mark.parametrize(("headers", "message"), [
    ({"Service-CRN": ""}, "send the instance's CRN in the Service-CRN header"),
    ({"Service-CRN": "crn:v1:bluemix:public:quantum-computing:us-east:a/abc:def::"}, "names no qrt instance"),
    ({"Service-CRN": "ibm-q/open/main"}, "names no qrt instance"),
])  # fmt: skip
async def test_a_missing_or_foreign_crn_is_refused(gw: Harness, headers, message):
    await refused(gw, "GET", "/backends", 400, message, "Service-CRN", headers=headers)


async def test_queries_and_paths_are_checked(gw: Harness):
    await refused(gw, "GET", "/jobs?sort=sideways", 400, "'sort' must be ASC or DESC", "sort")
    await refused(gw, "GET", "/jobs?limit=0", 400, "'limit' must be between 1 and 1000", "limit")
    await refused(gw, "GET", "/jobs?created_after=yesterday", 400, "ISO 8601", "created_after")
    await refused(gw, "GET", "/backends/nope/status", 404, "backend 'nope' not found", "backend")
    await refused(gw, "GET", "/no/such/route", 404, "Not Found: GET /api/v1/no/such/route")
    await refused(gw, "PATCH", "/jobs", 405, "Method Not Allowed")
    await refused(gw, "PUT", "/jobs/x/tags", 404, "job 'x' not found", json={"tags": ["a"]})
    await refused(gw, "POST", "/jobs", 400, "request body is not valid JSON", data=b"{")


def device_report(calibration: dict[str, Any], read_at: float = 1_700_000_000.0) -> DeviceReport:
    static = StaticInfo(name="Tiny-3", nqubits=3, topology=[(0, 1), (1, 2)],
                        pgs=["X", "H", "CZ", "Rz", "measure", "reset"], starttime=1_600_000_000.0)  # fmt: skip
    return DeviceReport(static=static, calibration=calibration, read_at=read_at)


async def announce(gw: Harness, report: DeviceReport) -> None:
    names = [report.static.name]
    beat = Heartbeat("e1", 1, ["aer_simulator", *names], {}, names, devices=[report])
    await gw.gateway.on_heartbeat(encode(beat))


async def test_a_devices_calibration_becomes_ibm_properties(gw: Harness):
    per_qubit = {"__labels__": ["qubit"]}
    calibration = {
        "t1_in_us": {**per_qubit, "q0": 20.0, "q1": 30.0, "q2": 40.0},
        "t2_in_us": {**per_qubit, "q0": 10.0, "q1": 15.0},
        "readout_error": {**per_qubit, "q0": 0.01, "q1": 0.02, "q2": 0.03},
        "single_qubit_gate_fidelity": {**per_qubit, "q0": 0.999, "q2": 0.99},
        "two_qubit_gate_fidelity": {"__labels__": ["qubit1", "qubit2"], "q1": {"q2": 0.95}},
        "fridge_temperature_in_mk": 8.4,
        "last_calibration_timestamp": 1_700_000_100.0,
        "q7_noise": {**per_qubit, "q7": 1.0},  # no such qubit: left out
    }
    await announce(gw, device_report(calibration))
    config = await ibm(gw, "GET", "/backends/Tiny-3/configuration")
    assert config["n_qubits"] == 3 and not config["simulator"]
    assert set(config["basis_gates"]) == {"x", "h", "cz", "rz"}
    assert config["coupling_map"] == [[0, 1], [1, 0], [1, 2], [2, 1]]
    assert config["online_date"] == "2020-09-13T12:26:40Z"
    props = await ibm(gw, "GET", "/backends/Tiny-3/properties")
    assert props["last_update_date"] == "2023-11-14T22:15:00Z"
    assert [[(v["name"], v["value"]) for v in q] for q in props["qubits"]] == [
        [("T1", 20.0), ("T2", 10.0), ("readout_error", 0.01)],
        [("T1", 30.0), ("T2", 15.0), ("readout_error", 0.02)],
        [("T1", 40.0), ("readout_error", 0.03)],
    ]
    errors = {(g["gate"], tuple(g["qubits"])): g["parameters"][0]["value"] for g in props["gates"]}
    assert errors[("x", (0,))] == pytest.approx(0.001) and ("x", (1,)) not in errors
    assert errors[("cz", (1, 2))] == errors[("cz", (2, 1))] == pytest.approx(0.05)
    assert ("cz", (0, 1)) not in errors
    assert [(g["name"], g["value"]) for g in props["general"]] == [
        ("fridge_temperature_in_mk", 8.4)
    ]
    assert (
        await ibm(gw, "GET", "/backends/Tiny-3/properties?updated_before=2023-01-01T00:00:00") == {}
    )
    status = await ibm(gw, "GET", "/backends/Tiny-3/status")
    assert status == {"state": True, "status": "active", "message": "available", "length_queue": 0,
                      "backend_version": str(PROTOCOL_VERSION), "session_hold": None}  # fmt: skip
    listed = {d["name"]: d for d in (await ibm(gw, "GET", "/backends"))["devices"]}
    assert listed["Tiny-3"]["qubits"] == 3 and listed["aer_simulator"]["qubits"] == 30


async def test_no_properties_without_a_value_for_every_qubit(gw: Harness):
    await announce(gw, device_report({}))
    assert await ibm(gw, "GET", "/backends/Tiny-3/properties") == {}
    await announce(gw, device_report({"t1_in_us": {"__labels__": ["qubit"], "q0": 20.0}}))
    assert await ibm(gw, "GET", "/backends/Tiny-3/properties") == {}
    read_at = time.time()
    await announce(
        gw,
        device_report(
            {"readout_fidelity": {"__labels__": ["qubit"], "q0": 0.9, "q1": 0.8, "q2": 0.7}},
            read_at,
        ),
    )
    props = await ibm(gw, "GET", "/backends/Tiny-3/properties")
    assert [q[0]["value"] for q in props["qubits"]] == pytest.approx([0.1, 0.2, 0.3])
