"""SamplerV2 and EstimatorV2 in job mode through the stock client, on Aer and on the
simulated 2300 device, and the jobs they make: state, results (within statistical bounds of the
exact values), logs, tags, listing with filters, cancel, a job that runs too long, refusals with
qrt's message, and the same jobs seen through qrt's own API."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import httpx
import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import EstimatorV2, QiskitRuntimeService, SamplerV2
from qiskit_ibm_runtime.exceptions import (
    IBMRuntimeError,
    RuntimeInvalidStateError,
    RuntimeJobFailureError,
    RuntimeJobMaxTimeoutError,
    RuntimeJobNotFound,
)
from qiskit_ibm_runtime.noise_learner import NoiseLearner

from qrt_client import Client
from qrt_client.models import Result
from tests.support.dev import DevServer
from tests.support.waiting import eventually_sync

from .conftest import DEVICE

SIGMAS = 5
"""How far (in standard deviations) a sampled estimate may stray from the exact value."""


def bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    return circuit


def isa(circuit: QuantumCircuit, backend) -> QuantumCircuit:
    return generate_preset_pass_manager(
        backend=backend, optimization_level=1, seed_transpiler=7
    ).run(circuit)


def within(estimate: float, exact: float, sigma: float) -> bool:
    return abs(estimate - exact) <= SIGMAS * sigma


def heavy(backend) -> tuple[QuantumCircuit, np.ndarray]:
    """A pub that keeps Aer busy for minutes: a 20-qubit circuit swept over 200 points."""
    thetas = ParameterVector("t", 20)
    circuit = QuantumCircuit(20)
    for _ in range(10):
        for q in range(20):
            circuit.ry(thetas[q], q)
        for q in range(19):
            circuit.cx(q, q + 1)
    circuit.measure_all()
    return isa(circuit, backend), np.random.default_rng(1).random((200, 20))


def test_sampler_on_aer_gives_bell_counts(service: QiskitRuntimeService):
    backend = service.backend("aer_simulator")
    circuit = bell()
    circuit.measure_all()
    job = SamplerV2(mode=backend).run([isa(circuit, backend)], shots=4000)
    result = job.result()
    assert job.status() == "DONE" and job.done() and job.primitive_id == "sampler"
    counts = result[0].data.meas.get_counts()
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == 4000
    assert within(counts.get("00", 0) / 4000, 0.5, math.sqrt(0.25 / 4000))
    assert service.job(job.job_id()).result()[0].data.meas.get_counts() == counts


def test_sampler_runs_several_pubs_with_a_parameter_sweep(service: QiskitRuntimeService):
    backend = service.backend("aer_simulator")
    theta = Parameter("theta")
    rotation = QuantumCircuit(1)
    rotation.ry(theta, 0)
    rotation.measure_all()
    ghz = QuantumCircuit(3)
    ghz.h(0)
    ghz.cx(0, 1)
    ghz.cx(1, 2)
    ghz.measure_all()
    sweep = np.array([[0.0], [math.pi / 3], [math.pi / 2], [math.pi]])
    shots = 2000
    result = SamplerV2(mode=backend).run([(isa(rotation, backend), sweep), (isa(ghz, backend), None, 500)],
                                         shots=shots).result()  # fmt: skip
    swept = result[0].data.meas
    assert swept.shape == (4,) and swept.num_shots == shots
    for index, (angle,) in enumerate(sweep):
        ones = swept[index].get_counts().get("1", 0) / shots
        exact = math.sin(angle / 2) ** 2
        assert within(ones, exact, math.sqrt(max(exact * (1 - exact), 1e-4) / shots)), (angle, ones)
    ghz_counts = result[1].data.meas.get_counts()
    assert set(ghz_counts) <= {"000", "111"} and sum(ghz_counts.values()) == 500


def test_estimator_on_aer_gives_expectation_values_of_a_sweep(service: QiskitRuntimeService):
    backend = service.backend("aer_simulator")
    circuit = isa(bell(), backend)
    observables = [SparsePauliOp(p).apply_layout(circuit.layout) for p in ("ZZ", "XX", "ZI", "YY")]
    theta = Parameter("theta")
    rotation = QuantumCircuit(1)
    rotation.ry(theta, 0)
    rotated = isa(rotation, backend)
    angles = np.linspace(0, math.pi, 5).reshape(5, 1)
    z = SparsePauliOp("Z").apply_layout(rotated.layout)
    precision = 0.01
    job = EstimatorV2(mode=backend).run(
        [(circuit, observables), (rotated, z, angles)], precision=precision
    )
    result = job.result()
    assert job.primitive_id == "estimator"
    for value, exact in zip(result[0].data.evs, (1, 1, 0, -1), strict=True):
        assert within(value, exact, precision), (value, exact)
    for value, (angle,) in zip(result[1].data.evs, angles, strict=True):
        assert within(value, math.cos(angle), precision), (value, angle)


def test_sampler_and_estimator_run_on_the_device(service: QiskitRuntimeService):
    backend = service.backend(DEVICE)
    circuit = bell()
    circuit.measure_all()
    shots = 1000
    job = SamplerV2(mode=backend).run([isa(circuit, backend)], shots=shots)
    counts = job.result()[0].data.meas.get_counts()
    assert sum(counts.values()) == shots
    # The calibration in force when it ran (the device's last one, from before it started).
    properties = job.properties()
    assert properties is not None and properties.t1(0) > 0
    assert properties.last_update_date <= job.creation_date + timedelta(minutes=1)
    # The device simulates with the noise of its calibration: mostly, not only, 00 and 11.
    assert (counts.get("00", 0) + counts.get("11", 0)) / shots > 0.75
    mapped = isa(bell(), backend)
    zz = SparsePauliOp("ZZ").apply_layout(mapped.layout)
    value = EstimatorV2(mode=backend).run([(mapped, zz)], precision=0.03).result()[0].data.evs
    assert 0.5 < float(value) <= 1.0


def test_jobs_are_listed_with_filters_tags_and_order(service: QiskitRuntimeService):
    backend = service.backend("aer_simulator")
    circuit = bell()
    circuit.measure_all()
    started = datetime.now() - timedelta(seconds=1)
    sampler = SamplerV2(mode=backend)
    sampler.options.environment.job_tags = ["ibm-listing"]
    first = sampler.run([isa(circuit, backend)], shots=10)
    second = sampler.run([isa(circuit, backend)], shots=10)
    for job in (first, second):
        job.result()
    ids = {first.job_id(), second.job_id()}
    tagged = service.jobs(job_tags=["ibm-listing"], limit=None)
    assert [job.job_id() for job in tagged] == [second.job_id(), first.job_id()]  # newest first
    oldest = service.jobs(job_tags=["ibm-listing"], descending=False, limit=None)
    assert [job.job_id() for job in oldest] == [first.job_id(), second.job_id()]
    assert [j.job_id() for j in service.jobs(job_tags=["ibm-listing"], limit=1, skip=1)] == [
        first.job_id()
    ]
    assert ids <= {
        j.job_id() for j in service.jobs(program_id="sampler", created_after=started, limit=None)
    }
    assert not ids & {j.job_id() for j in service.jobs(program_id="estimator", limit=None)}
    assert not ids & {j.job_id() for j in service.jobs(backend_name=DEVICE, limit=None)}
    assert not ids & {j.job_id() for j in service.jobs(pending=True, limit=None)}
    assert not ids & {j.job_id() for j in service.jobs(created_before=started, limit=None)}
    assert set(first.update_tags(["ibm-retagged", "second-tag"])) == {"ibm-retagged", "second-tag"}
    assert [j.job_id() for j in service.jobs(job_tags=["ibm-retagged"])] == [first.job_id()]
    listed = service.job(first.job_id())
    assert (
        set(listed.tags) == {"ibm-retagged", "second-tag"}
        and listed.backend().name == "aer_simulator"
    )
    assert listed.creation_date is not None and listed.inputs["version"] == 2


def test_logs_are_the_jobs_log_and_say_what_was_ignored(
    service: QiskitRuntimeService, dev: DevServer
):
    backend = service.backend("aer_simulator")
    circuit = bell()
    circuit.measure_all()
    sampler = SamplerV2(mode=backend)
    sampler.options.dynamical_decoupling.enable = True  # nothing to do on a noiseless simulator
    job = sampler.run([isa(circuit, backend)], shots=10)
    job.result()
    logs = job.logs()
    assert "dynamical_decoupling.enable" in logs
    assert logs == httpx.get(f"{dev.url}/jobs/{job.job_id()}/logs").json()


def test_a_refused_option_and_an_unsupported_program_raise_with_qrts_message(
    service: QiskitRuntimeService,
):
    backend = service.backend(DEVICE)
    circuit = bell()
    circuit.measure_all()
    sampler = SamplerV2(mode=backend)
    sampler.options.twirling.enable_gates = True
    with pytest.raises(
        IBMRuntimeError, match=r"twirling\.enable_gates: qrt does not mitigate errors or twirl"
    ):
        sampler.run([isa(circuit, backend)], shots=10)
    with pytest.raises(
        IBMRuntimeError,
        match=r"noise-learner\S* is not a primitive qrt runs: it runs \S*sampler\S*, \S*estimator",
    ):
        NoiseLearner(mode=service.backend("aer_simulator")).run([isa(circuit, backend)])


def test_a_job_that_fails_raises_on_result_with_qrts_reason(service: QiskitRuntimeService):
    """What the README's recipe section says of `job.result()` on a failed job: a noise model
    Aer cannot read passes the client's checks and fails the job as it runs."""
    backend = service.backend("aer_simulator")
    circuit = bell()
    circuit.measure_all()
    sampler = SamplerV2(mode=backend)
    sampler.options.simulator.noise_model = {"errors": "not a list of errors"}
    job = sampler.run([isa(circuit, backend)], shots=10)
    reason = r"options\.simulator\.noise_model: not a noise model Aer can read"
    with pytest.raises(RuntimeJobFailureError, match=reason):
        job.result(timeout=120)
    assert job.status() == "ERROR" and job.errored()
    assert "not a noise model Aer can read" in (service.job(job.job_id()).error_message() or "")


def test_cancel_a_running_job(service: QiskitRuntimeService, dev: DevServer):
    backend = service.backend("aer_simulator")
    job = SamplerV2(mode=backend).run([heavy(backend)], shots=10)
    eventually_sync(
        job.status, "the job runs", until=lambda s: s == "RUNNING", timeout=120, every=0.2
    )
    job.cancel()
    fresh = service.job(job.job_id())
    eventually_sync(
        fresh.status,
        "the job is cancelled",
        until=lambda s: s == "CANCELLED",
        timeout=60,
        every=0.2,
    )
    with pytest.raises(RuntimeInvalidStateError, match="Job was cancelled"):
        fresh.result()
    assert httpx.get(f"{dev.url}/jobs/{job.job_id()}").json()["status"] == "Cancelled"
    with pytest.raises(RuntimeInvalidStateError, match="has already ended: Cancelled"):
        fresh.cancel()


def test_a_job_that_runs_too_long_raises_max_timeout(service: QiskitRuntimeService):
    backend = service.backend("aer_simulator")
    sampler = SamplerV2(mode=backend)
    sampler.options.max_execution_time = 2
    job = sampler.run([heavy(backend)], shots=10)
    with pytest.raises(RuntimeJobMaxTimeoutError, match="Error code 1305; Ran too long"):
        job.result(timeout=120)
    assert job.status() == "ERROR" and job.errored()
    assert "ran longer than maximum execution time" in service.job(job.job_id()).error_message()


def test_a_finished_job_streams_and_reads_through_qrts_client(
    service: QiskitRuntimeService, dev: DevServer
):
    backend = service.backend("aer_simulator")
    circuit = bell()
    circuit.measure_all()
    job = SamplerV2(mode=backend).run([isa(circuit, backend)], shots=50)
    counts = job.result()[0].data.meas.get_counts()
    with Client(dev.url) as qrt:
        same = qrt.job(job.job_id())
        assert same.status() == "Completed"
        assert same.result()[0].data.meas.get_counts() == counts
        results = [event for event in same.stream() if isinstance(event, Result)]
        assert len(results) == 1 and results[0].value[0].data.meas.get_counts() == counts


def test_jobs_made_here_are_qrt_jobs_everywhere(service: QiskitRuntimeService, dev: DevServer):
    """Listed and cancelled through qrt's own API; deleted through IBM's, gone from both."""
    backend = service.backend("aer_simulator")
    job = SamplerV2(mode=backend).run([heavy(backend)], shots=10)
    with httpx.Client(base_url=dev.url, timeout=30) as http:
        listed = http.get("/jobs", params={"program": "sampler", "pending": "true"}).json()["jobs"]
        assert job.job_id() in {j["id"] for j in listed}
        assert http.post(f"/jobs/{job.job_id()}/cancel").status_code == 204
        eventually_sync(
            job.status,
            "cancelled through /jobs",
            until=lambda s: s == "CANCELLED",
            timeout=60,
            every=0.2,
        )
        service.delete_job(job.job_id())
        assert http.get(f"/jobs/{job.job_id()}").status_code == 404
    with pytest.raises(RuntimeJobNotFound):
        service.job(job.job_id())
