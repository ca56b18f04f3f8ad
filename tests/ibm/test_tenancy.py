"""With keys on (`qrt dev --auth`) the stock client's API key is exchanged at
`/identity/token` for a token that acts for the key's user, the CRN names the qrt instance its
jobs belong to, and the user's role there decides what they may do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from qiskit import QuantumCircuit
from qiskit.providers.exceptions import QiskitBackendNotFoundError
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import SamplerV2
from qiskit_ibm_runtime.exceptions import IBMRuntimeError

from tests.support.dev import DevServer
from tests.support.programs import merge_programs

from .conftest import connect, recipe_environment

ADMIN_KEY = "qrt_00000000000000ab_" + "b" * 43
TEAM = "lab/quantum/team"
OTHER = "lab/quantum/other"


def crn(instance: str) -> str:
    return f"crn:v1:qrt:private:quantum-computing:local:a/qrt:{instance}::"


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevServer, str, str]]:
    """A qrt dev with keys on; alice is a member of TEAM, bob a reader of it."""
    root: Path = tmp_path_factory.mktemp("ibm-auth")
    server = DevServer(root / "data", merge_programs(root / "programs"), options=["--auth"],
                       env={"QRT_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY, "QRT_DEV_DEVICE": "false"})  # fmt: skip
    server.start()
    patch = pytest.MonkeyPatch()
    for name, value in recipe_environment(server.url).items():
        patch.setenv(name, value)
    try:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        with httpx.Client(base_url=server.url, headers=admin, timeout=30) as http:
            for instance in (TEAM, OTHER):
                assert http.post("/admin/instances", json={"name": instance}).status_code == 201
            keys = []
            for user, role in (("alice", "member"), ("bob", "reader")):
                assert http.post("/admin/users", json={"name": user}).status_code == 201
                assert (
                    http.put(
                        f"/admin/instances/{TEAM}/members/{user}", json={"role": role}
                    ).status_code
                    == 200
                )
                keys.append(
                    http.post(f"/admin/users/{user}/keys", json={"label": "ibm"}).json()["key"]
                )
        yield server, keys[0], keys[1]
    finally:
        patch.undo()
        server.kill()


def bell_on(backend) -> QuantumCircuit:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    return generate_preset_pass_manager(backend=backend, optimization_level=1).run(circuit)


def test_a_member_runs_jobs_in_the_crns_instance_as_themselves(locked):
    server, alice, _ = locked
    service = connect(server.url, token=alice, instance=crn(TEAM))
    backend = service.backend("aer_simulator")
    job = SamplerV2(mode=backend).run([bell_on(backend)], shots=100)
    assert sum(job.result()[0].data.meas.get_counts().values()) == 100
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ) as http:
        stored = http.get(f"/jobs/{job.job_id()}").json()
    assert (stored["hub"], stored["group"], stored["project"]) == tuple(TEAM.split("/"))
    raw = service._active_api_client.job_get(job.job_id())
    assert raw["user_id"] == "alice"
    # The same job is not found through another instance's CRN (IBM lists per instance).
    other = connect(server.url, token=ADMIN_KEY, instance=crn(OTHER))
    assert job.job_id() not in {j.job_id() for j in other.jobs(limit=None)}


def test_a_reader_lists_but_may_not_submit(locked):
    server, _, bob = locked
    reader = connect(server.url, token=bob, instance=crn(TEAM))
    backend = reader.backend("aer_simulator")
    with pytest.raises(
        IBMRuntimeError,
        match="submitting a job needs the member role in lab/quantum/team; bob is reader",
    ):
        SamplerV2(mode=backend).run([bell_on(backend)], shots=10)
    assert all(job.primitive_id == "sampler" for job in reader.jobs(limit=None))


def test_an_instance_the_user_is_no_member_of_is_refused(locked):
    server, alice, _ = locked
    outsider = connect(server.url, token=alice, instance=crn(OTHER))
    with pytest.raises(QiskitBackendNotFoundError):
        outsider.backend("aer_simulator")
    answer = httpx.get(f"{server.url}/api/v1/backends", headers={
        "Authorization": f"Bearer {alice}", "Service-CRN": crn(OTHER)})  # fmt: skip
    assert answer.status_code == 403
    body = answer.json()
    assert body["status_code"] == 403 and body["errors"][0]["code"] == "forbidden"
    assert (
        "reading backends needs the reader role in lab/quantum/other; alice is no member"
        in body["errors"][0]["message"]
    )


def test_a_wrong_key_or_crn_gets_an_error_in_ibms_shape(locked):
    server, alice, _ = locked
    # The stock client, given a wrong key, gets BXNIM0415E from /identity/token (tests/gateway/
    # test_tokens.py), then sends the key itself and raises IBMNotAuthorizedError on the 401
    # below; asked through the client, its token manager waits a minute before the second try.
    wrong = "qrt_0123456789abcdef_" + "A" * 43
    refused = httpx.get(f"{server.url}/api/v1/instances/usage", headers={
        "Authorization": f"apikey {wrong}", "Service-CRN": crn(TEAM)})  # fmt: skip
    assert refused.status_code == 401 and refused.json()["errors"][0]["message"]
    answer = httpx.get(f"{server.url}/api/v1/backends", headers={
        "Authorization": f"Bearer {alice}", "Service-CRN": "crn:v1:bluemix:public:quantum-computing:us-east:a/1::"})  # fmt: skip
    assert answer.status_code == 400 and answer.headers["uber-trace-id"]
    error = answer.json()["errors"][0]
    assert error["target"] == {"type": "header", "name": "Service-CRN"}
    assert (
        "names no qrt instance: its eighth field must be <hub>/<group>/<project>"
        in error["message"]
    )
    missing = httpx.get(f"{server.url}/api/v1/jobs/nope", headers={
        "Authorization": f"Bearer {alice}", "Service-CRN": crn(TEAM)})  # fmt: skip
    assert missing.status_code == 404 and missing.json()["error"] == {
        "code": "not_found",
        "message": "job 'nope' not found",
    }
