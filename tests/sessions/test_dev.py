"""Sessions, batches, job timelines and device calibration against a running `qrt dev` (its
simulated Starmon-5 device included), through the stock qiskit-ibm-runtime client's own REST
layer (`RetrySession`, `RuntimeSession`)."""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from qiskit_ibm_runtime.api.exceptions import RequestsApiError
from qiskit_ibm_runtime.api.rest.runtime_session import RuntimeSession
from qiskit_ibm_runtime.api.session import RetrySession
from requests.auth import AuthBase

from tests.support.dev import DevServer, serving
from tests.support.waiting import eventually_sync

INSTANCE = "ibm-q/open/main"
CRN = f"crn:v1:qrt:private:quantum-computing:local:a/qrt:{INSTANCE}::"
OTHER_CRN = "crn:v1:qrt:private:quantum-computing:local:a/qrt:other/team/x::"
DEVICE = "Starmon-5"
BELL = "version 1.0\nqubits 5\nh q[2]\ncnot q[2], q[0]\nmeasure_all\n"
ISO_US = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture(scope="module")
def qrt_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    with serving(tmp_path_factory.mktemp("sessions")) as server:
        yield server


class InstanceAuth(AuthBase):
    """The headers the client's `CloudAuth` sends (qrt dev takes any bearer token)."""

    def __init__(self, crn: str) -> None:
        self.crn = crn

    def __call__(self, request: Any) -> Any:
        request.headers.update({"Service-CRN": self.crn, "Authorization": "Bearer any-key"})
        return request


@pytest.fixture
def api(qrt_dev: DevServer) -> RetrySession:
    """The client's HTTP session on qrt's IBM API, for the instance CRN names."""
    return RetrySession(f"{qrt_dev.url}/api/v1", auth=InstanceAuth(CRN))


def other_instance(qrt_dev: DevServer) -> RetrySession:
    return RetrySession(f"{qrt_dev.url}/api/v1", auth=InstanceAuth(OTHER_CRN))


def submit(qrt_dev: DevServer, session_id: str | None = None, *, device: bool = True,
           program: str = "cqasm-runner") -> requests.Response:  # fmt: skip
    body: dict[str, Any] = {"programId": program}
    if device:
        body.update(backend=DEVICE, params={"circuit": BELL, "shots": 50})
    if session_id is not None:
        body["sessionId"] = session_id
    return requests.post(f"{qrt_dev.url}/jobs", json=body, timeout=30)


def ended(qrt_dev: DevServer, job_id: str) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        job: dict[str, Any] = requests.get(f"{qrt_dev.url}/jobs/{job_id}", timeout=30).json()
        return job

    final = ("Completed", "Failed", "Cancelled")
    return eventually_sync(read, f"job {job_id} ends", until=lambda j: j["status"] in final,
                           timeout=120)  # fmt: skip


def timeline(qrt_dev: DevServer, job_id: str) -> dict[str, Any]:
    response = requests.get(f"{qrt_dev.url}/jobs/{job_id}/timeline", timeout=30)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def times(entries: list[dict[str, Any]]) -> list[datetime]:
    for entry in entries:
        assert ISO_US.fullmatch(entry["at"]), entry
    return [datetime.fromisoformat(entry["at"].replace("Z", "+00:00")) for entry in entries]


def test_a_simulator_jobs_timeline_and_metrics(qrt_dev: DevServer, api: RetrySession):
    response = submit(qrt_dev, device=False, program="noop")
    assert response.status_code == 200, response.text
    job_id = response.json()["id"]
    assert ended(qrt_dev, job_id)["status"] == "Completed"
    entries = timeline(qrt_dev, job_id)["timeline"]
    assert [e["stage"] for e in entries] == ["queued", "assigned", "running", "finished"]
    at = times(entries)
    assert at == sorted(at)
    assert entries[-1]["status"] == "Completed" and entries[-1]["duration_ms"] is None
    assert all(isinstance(e["duration_ms"], float) for e in entries[:-1])
    assert {e["attempt"] for e in entries} == {1}
    assert entries[1]["executor_id"] and entries[1]["executor_id"] == entries[2]["executor_id"]

    metrics = api.get(f"/jobs/{job_id}/metrics").json()
    stamps = metrics["timestamps"]
    assert {stamps["created"], stamps["running"], stamps["finished"]} <= {e["at"] for e in entries}
    assert metrics["usage"]["status"] == "complete"
    assert metrics["usage"]["qpu_charge_time_seconds"] >= 0
    assert metrics["timeline"] == entries
    assert metrics["calibrations"] == [] and metrics["circuits_execution_time_ns"] is None
    with pytest.raises(RequestsApiError) as refused:
        other_instance(qrt_dev).get(f"/jobs/{job_id}/metrics")
    assert refused.value.status_code == 404


def test_a_device_job_keeps_the_calibration_in_force_when_it_executed(
    qrt_dev: DevServer, api: RetrySession
):
    response = submit(qrt_dev)
    assert response.status_code == 200, response.text
    job_id = response.json()["id"]
    assert ended(qrt_dev, job_id)["status"] == "Completed"
    found = timeline(qrt_dev, job_id)
    stages = [e["stage"] for e in found["timeline"]]
    assert stages == ["queued", "assigned", "running", "waiting_for_device", "executing",
                      "running", "finished"]  # fmt: skip
    at = times(found["timeline"])
    assert at == sorted(at)
    (calibration,) = found["calibrations"]
    assert calibration["backend"] == DEVICE and calibration["attempt"] == 1
    assert calibration["executing_at"] == found["timeline"][4]["at"]
    values = calibration["calibration"]
    # The protocol's metric format: each metric names its levels, qubit by qubit.
    assert values["t1_in_us"]["__labels__"] == ["qubit"]
    assert all(isinstance(values["t1_in_us"][f"q{q}"], float) for q in range(5))

    metrics = api.get(f"/jobs/{job_id}/metrics").json()
    assert metrics["calibrations"] == found["calibrations"]
    executing = found["timeline"][4]["duration_ms"] / 1000
    assert metrics["usage"]["qpu_charge_time_seconds"] == pytest.approx(executing, abs=0.002)
    assert metrics["circuits_execution_time_ns"] > 0


def test_a_dedicated_session_runs_its_jobs_in_order_on_its_backend_until_closed(
    qrt_dev: DevServer, api: RetrySession
):
    rest = RuntimeSession(api, "", url_prefix="")
    created = rest.create(backend=DEVICE, mode="dedicated", max_time=600)
    session_id = created["id"]
    assert created["state"] == "open" and created["accepting_jobs"] is True
    assert created["max_ttl"] == 600 and created["backend_name"] == DEVICE
    session = RuntimeSession(api, session_id)

    jobs = []
    for _ in range(3):
        response = submit(qrt_dev, session_id)
        assert response.status_code == 200, response.text
        jobs.append(response.json()["id"])
    # Not on another backend, and not from another instance.
    wrong = submit(qrt_dev, session_id, device=False, program="noop")
    assert wrong.status_code == 400 and f"session '{session_id}'" in wrong.text
    with pytest.raises(RequestsApiError) as hidden:
        RuntimeSession(other_instance(qrt_dev), session_id).details()
    assert hidden.value.status_code == 404

    spans = []
    for job_id in jobs:
        assert ended(qrt_dev, job_id)["status"] == "Completed"
        entries = timeline(qrt_dev, job_id)["timeline"]
        at = dict(zip([e["stage"] for e in entries], times(entries), strict=False))
        spans.append((min(t for s, t in at.items() if s != "queued"), at["finished"]))
    for (_, first_end), (next_start, _) in itertools.pairwise(spans):
        assert first_end <= next_start, "a dedicated session's jobs never overlap"

    details = session.details()
    assert details["mode"] == "dedicated" and details["state"] == "active"
    assert details["started_at"] and details["last_job_completed"]
    assert details["elapsed_time"] > 0
    session.close()  # PATCH accepting_jobs=false
    details = session.details()
    assert details["accepting_jobs"] is False and details["state"] == "closed"
    late = submit(qrt_dev, session_id)
    assert late.status_code == 409 and "takes no more jobs" in late.text


def test_a_batch_runs_its_jobs_at_once_and_a_cancel_cancels_the_queued_ones(
    qrt_dev: DevServer, api: RetrySession
):
    rest = RuntimeSession(api, "", url_prefix="")
    batch_id = rest.create(backend="aer_simulator", mode="batch")["id"]
    jobs = []
    for _ in range(3):
        response = submit(qrt_dev, batch_id, device=False, program="noop")
        assert response.status_code == 200, response.text
        jobs.append(response.json()["id"])
    for job_id in jobs:
        assert ended(qrt_dev, job_id)["status"] == "Completed"
    batch = RuntimeSession(api, batch_id)
    details = batch.details()
    assert details["mode"] == "batch" and details["elapsed_time"] > 0
    batch.cancel()  # DELETE /sessions/{id}/close
    details = batch.details()
    assert details["state"] == "closed" and details["state_reason"] == "cancelled"
    assert submit(qrt_dev, batch_id, device=False, program="noop").status_code == 409


def test_bad_sessions_get_clear_errors_in_ibms_shape(qrt_dev: DevServer, api: RetrySession):
    rest = RuntimeSession(api, "", url_prefix="")
    for body, named in (
        ({"mode": "exclusive", "backend": DEVICE}, "mode"),
        ({"mode": "batch", "backend": "no-such-backend"}, "no-such-backend"),
        ({"mode": "batch"}, "backend"),
        ({"mode": "batch", "backend": DEVICE, "max_ttl": -1}, "max_ttl"),
    ):
        with pytest.raises(RequestsApiError) as refused:
            rest.create(**body)
        assert refused.value.status_code == 400
        assert named in refused.value.message
    response = requests.get(f"{qrt_dev.url}/api/v1/sessions/nope", headers={"Service-CRN": CRN},
                            timeout=30)  # fmt: skip
    assert response.status_code == 404
    error = response.json()["errors"][0]
    assert error["code"] == "not_found" and "nope" in error["message"]
    # The old API's free-form session ids (its sessions were named by their first job) work.
    old = submit(qrt_dev, "an-id-nobody-created", device=False, program="noop")
    assert old.status_code == 200, old.text
    assert ended(qrt_dev, old.json()["id"])["status"] == "Completed"


def test_an_older_job_without_a_stored_timeline_still_answers(tmp_path: Path):
    from qrt_common.jobs import Job, JobStatus, transition
    from qrt_gateway.ibm_metrics import metrics

    job = Job(id="old", program_id="p", backend="aer_simulator", params="{}",
              max_execution_time=60)  # fmt: skip
    job = transition(transition(job, JobStatus.RUNNING), JobStatus.COMPLETED)
    from qrt_common.timeline import timeline as whole

    found = metrics(job, whole(job, []))
    assert [e["stage"] for e in found["timeline"]] == ["queued", "running", "finished"]
    assert found["timestamps"]["finished"] == found["timeline"][-1]["at"]
    assert json.dumps(found)


def test_a_session_past_its_max_ttl_takes_no_more_jobs(qrt_dev: DevServer, api: RetrySession):
    rest = RuntimeSession(api, "", url_prefix="")
    session_id = rest.create(backend="aer_simulator", mode="batch", max_time=1)["id"]
    first = submit(qrt_dev, session_id, device=False, program="noop")
    assert first.status_code == 200, first.text
    assert ended(qrt_dev, first.json()["id"])["status"] == "Completed"
    session = RuntimeSession(api, session_id)
    # Its time runs from its first job's start.
    details = eventually_sync(session.details, "the session reaches its max_ttl",
                              until=lambda d: d["state"] == "closed", timeout=60)  # fmt: skip
    assert details["state_reason"] == "max_ttl reached" and details["active_ttl"] == 0
    late = submit(qrt_dev, session_id, device=False, program="noop")
    assert late.status_code == 409 and "max_ttl of 1 s" in late.text
