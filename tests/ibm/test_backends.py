"""Backends through the stock client: `service.backends()`, `service.backend(name)` and the
`Target` it builds from what qrt serves (the Aer simulators' and the simulated 2300 device's,
calibration included), status with queue length, and `service.usage()`."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from qiskit_ibm_runtime import QiskitRuntimeService

from qrt_common.device_protocol import StaticInfo
from qrt_common.targets import device_target
from qrt_device.config import STARMON_5, DeviceConfig
from tests.support.dev import DevServer
from tests.support.waiting import eventually_sync

from .conftest import CRN, DEVICE
from .loopback import LoopbackGuard


def test_the_guard_refuses_lookups_and_connections_off_the_loopback(loopback_only: LoopbackGuard):
    with pytest.raises(OSError, match="loopback guard refused"):
        socket.getaddrinfo("quantum.cloud.ibm.com", 443)
    with socket.socket() as sock, pytest.raises(OSError, match="loopback guard refused"):
        sock.connect(("192.0.2.1", 443))
    assert len(loopback_only.violations) == 2
    socket.getaddrinfo("localhost", 80)  # the loopback stays open
    socket.getaddrinfo("::1", 80)
    loopback_only.violations.clear()


def test_the_service_offers_the_simulators_and_the_device(service: QiskitRuntimeService):
    assert {b.name for b in service.backends()} == {
        "aer_simulator",
        "aer_simulator_statevector",
        DEVICE,
    }
    assert service.active_instance() == CRN
    usage = service.usage()
    assert usage["instance_id"] == CRN and usage["usage_limit_reached"] is False
    assert [b.name for b in service.backends(simulator=False)] == [DEVICE]
    assert service.least_busy(min_num_qubits=5).name in {
        "aer_simulator",
        "aer_simulator_statevector",
        DEVICE,
    }


def test_a_simulator_target_is_aers_on_every_qubit(service: QiskitRuntimeService):
    backend = service.backend("aer_simulator")
    target = backend.target
    assert backend.num_qubits == 30 and backend.configuration().simulator
    assert {"cx", "cz", "h", "sx", "rz", "x", "ecr", "measure", "reset", "delay", "if_else"} <= set(
        target.operation_names
    )
    assert not {"save_statevector", "kraus"} & set(target.operation_names)  # Aer's own: no IBM form
    assert target.instruction_supported("cx", (0, 29)) and target.instruction_supported(
        "cx", (17, 3)
    )
    assert backend.properties() is None
    status = backend.status()
    assert status.operational and status.status_msg == "active" and status.pending_jobs >= 0


def test_a_device_target_is_its_get_static_with_its_calibration(service: QiskitRuntimeService):
    config = DeviceConfig()
    static = StaticInfo(name=config.name, nqubits=config.qubits, topology=list(config.topology),
                        pgs=list(config.pgs), starttime=0.0)  # fmt: skip
    expected = device_target(static)
    backend = service.backend(DEVICE, use_fractional_gates=True)
    target = backend.target
    assert backend.num_qubits == 5 and not backend.configuration().simulator
    assert set(target.operation_names) == set(expected.operation_names)
    for name in expected.operation_names:
        assert set(target.qargs_for_operation_name(name)) == set(
            expected.qargs_for_operation_name(name)
        ), name
    assert set(backend.coupling_map.get_edges()) == {(q, 2) for q in (0, 1, 3, 4)} | {
        (2, q) for q in (0, 1, 3, 4)
    }
    # Without fractional gates (the client's default) Rx and Ry are left out, as IBM does.
    assert "rx" not in service.backend(DEVICE).target.operation_names
    # Calibration, from get_dynamic: T1 and T2 near Starmon-5's, readout and gate errors.
    properties = backend.properties()
    for qubit, t1_us in enumerate(STARMON_5["t1_us"]):
        assert 0.5 * t1_us < properties.t1(qubit) * 1e6 < 1.5 * t1_us
        assert 0 < target.qubit_properties[qubit].t2 < 2 * target.qubit_properties[qubit].t1
        assert 0 < properties.readout_error(qubit) < 0.2
        assert 0 < target["measure"][(qubit,)].error < 0.2
        assert 0 < target["x"][(qubit,)].error < 0.05
    assert 0 < target["cz"][(0, 2)].error == target["cz"][(2, 0)].error < 0.1
    assert abs(properties.last_update_date.timestamp() - time.time()) < 3600


def test_queue_length_counts_the_jobs_waiting_for_the_backend(
    service: QiskitRuntimeService, dev: DevServer
):
    """A device runs one job at a time: of three jobs holding it, two wait."""
    backend = service.backend(DEVICE)
    assert backend.status().pending_jobs == 0
    with httpx.Client(base_url=dev.url, timeout=30) as http:
        ids = [http.post("/jobs", json={"programId": "device-holder", "backend": DEVICE}).json()["id"]
               for _ in range(3)]  # fmt: skip
        try:
            eventually_sync(
                lambda: backend.status().pending_jobs == 2,
                "two jobs wait for the device",
                every=0.2,
            )
            assert service.backend("aer_simulator").status().pending_jobs == 0
            assert {
                d["name"]: d["queue_length"] for d in service._active_api_client.list_backends()
            }[DEVICE] == 2
        finally:
            for job_id in ids:
                http.post(f"/jobs/{job_id}/cancel")
        eventually_sync(lambda: backend.status().pending_jobs == 0, "the queue empties", every=0.2)
