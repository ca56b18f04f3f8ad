"""The synchronous client's verbs against a running `qrt dev`."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from qiskit import QuantumCircuit

from qrt_client import (
    Client,
    Conflict,
    Forbidden,
    Interim,
    InvalidInput,
    JobCancelled,
    JobFailed,
    Log,
    NotFound,
    Result,
    TransportError,
    WaitTimeout,
)
from tests.support.dev import DevServer
from tests.support.mesh import free_port
from tests.support.waiting import eventually_sync


def test_run_wait_result_and_logs(client: Client):
    job = client.run("hello-quantum", {"greeting": "hi there"})
    info = job.wait(timeout=60)
    assert info.status == "Completed" and info.ended_yet and info.program == "hello-quantum"
    assert info.ended is not None and info.created is not None and info.ended >= info.created
    counts = job.result()
    assert set(counts) <= {"00 00", "11 00"} and sum(counts.values()) == 1024
    assert job.status() == "Completed"
    assert "hi there" in job.logs() and "┌───┐" in job.logs()  # the printed circuit


def test_params_and_results_travel_with_the_runtime_codec(client: Client):
    bell = QuantumCircuit(2, 2, name="bell")
    bell.h(0)
    bell.cx(0, 1)
    job = client.run("echo", {"circuit": bell, "z": 1 + 2j}, backend="aer_simulator_statevector")
    echoed = job.result(timeout=60)
    assert echoed["z"] == 1 + 2j
    assert isinstance(echoed["circuit"], QuantumCircuit) and echoed["circuit"].name == "bell"
    assert "circuit bell 2" in job.logs() and "backend aer_simulator_statevector" in job.logs()
    assert job.info().backend == "aer_simulator_statevector"


def test_stream_gives_interim_results_the_log_and_the_result_last(client: Client):
    job = client.run("sleeper", {"seconds": 1.5, "ticks": 3})
    events = list(job.stream())
    results = [e for e in events if not isinstance(e, Log)]
    assert results == [Interim({"tick": 0}), Interim({"tick": 1}), Interim({"tick": 2}),
                       Result("woke up")]  # fmt: skip
    log = "".join(e.text for e in events if isinstance(e, Log))
    assert "tick 0\n" in log and "tick 2\n" in log
    assert job.status() == "Completed"
    # A late reader gets the same, replayed; and without the log if asked.
    assert list(job.stream(logs=False)) == results


def test_a_job_without_a_final_publish_streams_only_interim_results(client: Client):
    job = client.run("sample-program", {"iterations": 2})
    events = list(job.stream(logs=False))
    assert [type(e) for e in events] == [Interim, Interim, Result]
    first = events[0]
    assert isinstance(first, Interim) and first.value["iteration"] == 0
    assert events[-1] == Result("All done!")
    silent = client.run("chatty", {"lines": 2})
    assert list(silent.stream(logs=False)) == [Result(2)]


def test_a_cancelled_job_says_so(client: Client):
    job = client.run("sleeper", {"seconds": 600})
    eventually_sync(job.status, f"{job.id} runs", until=lambda s: s == "Running", timeout=60)
    with pytest.raises(WaitTimeout):
        job.wait(timeout=0.3)
    job.cancel()
    with pytest.raises(JobCancelled) as raised:
        job.result(timeout=60)
    assert raised.value.status == "Cancelled" and raised.value.job_id == job.id
    assert f"job {job.id} ended Cancelled" in str(raised.value)
    with pytest.raises(Conflict) as conflict:
        job.cancel()
    assert conflict.value.status == 409 and "Cancelled" in conflict.value.detail
    assert list(job.stream(logs=False)) == [Interim({"tick": 0})]


def test_a_failed_job_says_how_it_ended(client: Client):
    job = client.run("failing")
    with pytest.raises(JobFailed) as raised:
        job.result(timeout=60)
    assert raised.value.status == "Failed" and "boom" in (raised.value.reason or "")
    assert "ValueError: boom" in job.logs() and "about to fail" in job.logs()
    job.delete()
    with pytest.raises(NotFound):
        job.status()


def test_errors_carry_the_servers_status_detail_and_field(client: Client):
    with pytest.raises(NotFound) as raised:
        client.job("no-such-job").status()
    assert raised.value.status == 404 and "no-such-job" in raised.value.detail
    with pytest.raises(NotFound) as raised:
        client.run("no-such-program")
    assert raised.value.field == "programId"
    with pytest.raises(NotFound):
        client.programs.show("no-such-program")
    with pytest.raises(InvalidInput) as invalid:
        client.run("hello-quantum", {"greeting": "x"}, priority=99)
    assert invalid.value.status == 400 and invalid.value.field == "priority"
    with pytest.raises(InvalidInput) as invalid:
        client.run("hello-quantum", {})
    assert invalid.value.field == "params.greeting"
    with pytest.raises(Conflict):
        running = client.run("sleeper", {"seconds": 600})
        try:
            running.delete()
        finally:
            running.cancel()
    with pytest.raises(Forbidden):
        client.programs.delete("hello-quantum")


def test_an_unreachable_platform_is_a_transport_error():
    with (
        Client(f"http://127.0.0.1:{free_port()}", retries=1) as client,
        pytest.raises(TransportError),
    ):
        client.backends()


def test_jobs_are_listed_by_filters(client: Client):
    tag = f"t-{uuid.uuid4()}"
    first = client.run("hello-quantum", {"greeting": "a"}, tags=[tag])
    second = client.run("failing", tags=[tag, "other"], hub="h1", group="g", project="p")
    first.wait(60)
    second.wait(60)
    page = client.jobs(tags=[tag])
    assert page.count == 2 and [j.id for j in page.jobs] == [second.id, first.id]
    assert [j.id for j in client.jobs(tags=[tag], status="Failed").jobs] == [second.id]
    assert [j.id for j in client.jobs(tags=[tag], hub="h1").jobs] == [second.id]
    assert client.jobs(tags=[tag], pending=True).count == 0
    assert client.jobs(tags=[tag], limit=1).count == 2
    assert [j.id for j in client.jobs(tags=[tag], limit=1, offset=1).jobs] == [first.id]
    assert page.jobs[0].tags == [tag, "other"]
    with pytest.raises(InvalidInput) as invalid:
        client.jobs(status="Sleeping")
    assert invalid.value.field == "status"


def test_backends(client: Client):
    backends = {b.name: b for b in client.backends()}
    assert backends["aer_simulator"].simulator is True
    assert "aer_simulator_statevector" in backends


def test_backend_shows_a_devices_calibration_and_a_simulators_queue(
    client: Client, qrt_dev: DevServer
):
    def device() -> str | None:
        return next((b.name for b in client.backends() if not b.simulator), None)

    name = eventually_sync(device, "the simulated device is offered")
    assert name is not None
    detail = client.backend(name)
    raw = httpx.get(f"{qrt_dev.url}/backends/{name}").json()
    assert (detail.name, detail.simulator, detail.online) == (name, False, True)
    assert detail.nqubits == raw["nqubits"] and detail.nqubits is not None
    assert detail.topology == [tuple(pair) for pair in raw["topology"]] and detail.topology
    assert [q.qubit for q in detail.qubits] == list(range(detail.nqubits))
    for qubit, shown in zip(detail.qubits, raw["calibration"]["qubits"], strict=True):
        assert (qubit.t1_us, qubit.t2_us) == (shown["t1Us"], shown["t2Us"])
        assert qubit.readout_fidelity == shown["readoutFidelity"]
        assert qubit.gate_fidelity == shown["singleQubitGateFidelity"]
    assert [(p.qubits, p.fidelity) for p in detail.pairs] == [
        (tuple(p["qubits"]), p["fidelity"]) for p in raw["calibration"]["pairs"]
    ]
    assert detail.last_seen is not None and detail.last_seen.tzinfo is not None
    simulator = client.backend("aer_simulator")
    assert simulator.simulator and simulator.online and simulator.nqubits is None
    assert simulator.queued >= 0 and simulator.qubits == [] and simulator.topology == []
    with pytest.raises(NotFound) as raised:
        client.backend("no-such-backend")
    assert "no-such-backend" in raised.value.detail


def test_programs_are_listed_uploaded_changed_and_deleted(client: Client, tmp_path: Path):
    assert {"hello-quantum", "sample-program"} <= {p.id for p in client.programs.list()}
    parameters = client.programs.show("hello-quantum").parameters
    assert parameters is not None and parameters[0]["name"] == "greeting"
    code = tmp_path / "doubler"
    code.mkdir()
    (code / "program.py").write_text("def main(backend, user_messenger, x):\n    return 2 * x\n")
    name = f"doubler-{uuid.uuid4().hex[:8]}"
    program = client.programs.upload(code, name=name, description="Doubles x.")
    assert program.name == name and program.owner == "ibm-q/open/main" and not program.bundled
    assert program.id in {p.id for p in client.programs.list(owner="ibm-q/open/main")}
    assert client.run(program.id, {"x": 21}).result(timeout=60) == 42
    (code / "program.py").write_text("def main(backend, user_messenger, x):\n    return 3 * x\n")
    changed = client.programs.update(program.id, code, description="Triples x.")
    assert changed.description == "Triples x." and changed.raw["digest"] != program.raw["digest"]
    assert client.run(program.id, {"x": 2}).result(timeout=60) == 6
    assert client.programs.update(program.id, is_public=True).is_public is True
    with pytest.raises(Conflict):
        client.programs.upload(code, name=name)
    client.programs.delete(program.id)
    with pytest.raises(NotFound):
        client.programs.show(program.id)
    with pytest.raises(InvalidInput) as invalid:
        client.programs.upload(b"not a zip", name="broken")
    assert invalid.value.field == "data"


def test_the_client_closes_and_can_be_used_from_many_clients(qrt_dev: DevServer):
    clients = [Client(qrt_dev.url) for _ in range(3)]
    try:
        assert all(c.backends() for c in clients)
    finally:
        for c in clients:
            c.close()
            c.close()  # a second close is harmless
