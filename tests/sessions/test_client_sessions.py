"""The stock qiskit-ibm-runtime client's `Session` and `Batch` context managers against a
running `qrt dev`, with SamplerV2 jobs on its simulated Starmon-5 device (the client makes
sessions only for backends that are not simulators).

These need IBM's `/api/v1` backends and jobs routes (`qrt_gateway.ibm_jobs`, built on the
ibm-jobs branch); until that branch is merged they are skipped.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

pytest.importorskip("qrt_gateway.ibm_jobs", reason="IBM's /api/v1 jobs routes (ibm-jobs branch)")

from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager
from qiskit_ibm_runtime import Batch, QiskitRuntimeService, SamplerV2, Session

from tests.support.dev import DevServer, serving
from tests.support.waiting import eventually_sync

INSTANCE = "ibm-q/open/main"
CRN = f"crn:v1:qrt:private:quantum-computing:local:a/qrt:{INSTANCE}::"
DEVICE = "Starmon-5"
SHOTS = 200


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QiskitRuntimeService]:
    """The client pointed at a `qrt dev` as the README's recipe says."""
    with serving(tmp_path_factory.mktemp("client-sessions")) as dev:
        saved = {
            name: os.environ.get(name) for name in ("IAM_URL", "QISKIT_FUNCTIONS_EXPERIMENTAL")
        }
        os.environ.update(IAM_URL=dev.url, QISKIT_FUNCTIONS_EXPERIMENTAL="1")
        try:
            found = connect(dev)
            eventually_sync(lambda: {b.name for b in found.backends()}, "the device is a backend",
                            until=lambda names: DEVICE in names, timeout=60)  # fmt: skip
            yield found
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def connect(dev: DevServer) -> QiskitRuntimeService:
    return QiskitRuntimeService(
        channel="ibm_quantum_platform", token="any key", url=dev.url, instance=CRN,
        url_resolver=lambda url, instance, private_endpoint, channel: f"{url}/api/v1",
    )  # fmt: skip


def bell_for(backend: Any) -> QuantumCircuit:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    isa: QuantumCircuit = generate_preset_pass_manager(1, backend=backend).run(circuit)
    return isa


def correlated(counts: dict[str, int]) -> None:
    assert sum(counts.values()) == SHOTS
    # A Bell pair: the device's noise leaves most shots agreeing.
    assert counts.get("00", 0) + counts.get("11", 0) > SHOTS * 0.6, counts


def span(job: Any) -> tuple[datetime, datetime]:
    timeline = job.metrics()["timeline"]
    at = [datetime.fromisoformat(e["at"].replace("Z", "+00:00")) for e in timeline]
    return at[1], at[-1]  # from its assignment to its end


def test_a_session_runs_its_samplers_one_after_another_on_the_device(service):
    backend = service.backend(DEVICE)
    bell = bell_for(backend)
    with Session(backend=backend) as session:
        assert session.session_id is not None
        assert session.status() == "Pending"
        sampler = SamplerV2(mode=session)
        jobs = [sampler.run([bell], shots=SHOTS) for _ in range(3)]
        for job in jobs:
            correlated(job.result()[0].data.meas.get_counts())
            assert job.session_id == session.session_id
        details = session.details()
        assert details is not None
        assert details["mode"] == "dedicated" and details["backend_name"] == DEVICE
        assert details["state"] == "active" and details["accepting_jobs"] is True
        assert session.usage() > 0
    for earlier, later in itertools.pairwise(span(job) for job in jobs):
        assert earlier[1] <= later[0], "a session's jobs never overlap"
    assert session.status() == "Closed"  # closed on leaving the block, no job left
    metrics = jobs[0].metrics()
    assert metrics["usage"]["status"] == "complete"
    assert [c["backend"] for c in metrics["calibrations"]][:1] == [DEVICE]
    with pytest.raises(Exception, match="closed"):
        SamplerV2(mode=session).run([bell], shots=SHOTS)


def test_a_batch_runs_its_samplers_on_the_device(service):
    backend = service.backend(DEVICE)
    bell = bell_for(backend)
    with Batch(backend=backend) as batch:
        sampler = SamplerV2(mode=batch)
        jobs = [sampler.run([bell], shots=SHOTS) for _ in range(2)]
        for job in jobs:
            correlated(job.result()[0].data.meas.get_counts())
    details = batch.details()
    assert details is not None and details["mode"] == "batch"
    assert details["state"] == "closed" and details["usage_time"] > 0
    assert {job.session_id for job in jobs} == {batch.session_id}
