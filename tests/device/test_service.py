"""device-2300 on real ZeroMQ sockets: protocol v3 (every reply validated against QuTech's
schemas), protocol 0.1.0, locking, rejections, calibration, heartbeats, bad input."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import zmq
import zmq.asyncio

from qrt_common.errors import DeviceConfigError
from qrt_device.calibration import Calibration
from qrt_device.config import DeviceConfig, load_config
from qrt_device.service import Device
from tests.support.device_clients import Client, Subscriber, running
from tests.support.device_schemas import check_reply
from tests.support.waiting import eventually

GHZ = (
    "version 3.0\nqubit[5] q\nbit[5] b\nH q[2]\nCNOT q[2], q[0]\nCNOT q[2], q[1]\n"
    "CNOT q[2], q[3]\nCNOT q[2], q[4]\nb = measure q\n"
)
BELL_V1 = "version 1.0\nqubits 2\nh q[0]\ncnot q[0], q[2]\nmeasure_all\n".replace(
    "qubits 2", "qubits 3"
)


async def test_a_session_runs_a_circuit_and_every_reply_is_v3():
    async with running(noise=False) as (device, context):
        client = Client(context, device.rep_endpoint)
        static = (await client.call("get_static"))["payload"]
        assert static["protocol_version"] == 3 and static["nqubits"] == 5
        assert static["name"] == "Starmon-5" and static["topology"] == [
            [0, 2],
            [1, 2],
            [3, 2],
            [4, 2],
        ]
        assert "CNOT" in static["pgs"] and "mX90" in static["pgs"] and static["supports_raw_data"]
        assert static["starttime"] <= time.time()
        assert (await client.call("initialize"))["status"] == "success"
        reply = await client.execute(GHZ, shots=64, include_raw_data=True)
        payload = reply["payload"]
        assert payload["job_id"] == 1
        assert (
            set(payload["results"]) <= {"00000", "11111"} and sum(payload["results"].values()) == 64
        )
        assert len(payload["raw_data"]) == 64 and set(payload["raw_data"]) == set(
            payload["results"]
        )
        without = (await client.execute(GHZ, shots=5, job_id=2))["payload"]
        assert without["job_id"] == 2 and without["raw_data"] == []
        assert (await client.call("terminate"))["status"] == "success"


async def test_cqasm_1_and_a_v3_body_under_a_v1_header_run_too():
    async with running(noise=False) as (device, context):
        client = Client(context, device.rep_endpoint)
        await client.call("initialize")
        v1 = (await client.execute(BELL_V1, shots=50))["payload"]["results"]
        assert set(v1) <= {"000", "101"} and len(v1) == 2
        mixed = GHZ.replace("version 3.0", "version 1.0")
        assert set((await client.execute(mixed))["payload"]["results"]) <= {"00000", "11111"}
        nothing = (await client.execute("version 3.0\nqubit[2] q\nbit[2] b\nH q[0]\n", shots=3))[
            "payload"
        ]
        assert nothing["results"] == {"00": 3}


async def test_noise_follows_the_calibration_and_a_seed_makes_counts_reproducible():
    async with running() as (device, context):
        client = Client(context, device.rep_endpoint)
        await client.call("initialize")
        first = (await client.execute(GHZ, shots=2000, job_id=5))["payload"]["results"]
        again = (await client.execute(GHZ, shots=2000, job_id=5))["payload"]["results"]
        other = (await client.execute(GHZ, shots=2000, job_id=6))["payload"]["results"]
        assert first == again and first != other
        wrong = sum(n for key, n in first.items() if key not in ("00000", "11111"))
        # Readout errors of 2-3 % per qubit and four 2-3 % CNOTs: about a fifth goes astray.
        assert 0.05 * 2000 < wrong < 0.4 * 2000


async def test_protocol_0_1_0_requests():
    async with running(noise=False) as (device, context):
        client = Client(context, device.rep_endpoint)
        client.session = "abcd"
        static = await client.call("get_static", version="0.1.0")
        assert static["version"] == "0.1.0" and static["status"] == "success"
        assert {"nqubits", "topology", "name", "pgs", "starttime"} <= set(static["payload"])
        init = await client.call("initialize", version="0.1.0")
        assert init == {"session_id": "abcd", "status": "success", "version": "0.1.0"}
        payload = {"run_id": 7, "circuit": BELL_V1, "number_of_shots": 10}
        reply = await client.call("execute", payload, version="0.1.0")
        assert reply["version"] == "0.1.0" and reply["payload"]["run_id"] == 7
        assert sum(reply["payload"]["results"].values()) == 10
        assert (await client.call("terminate", version="0.1.0"))["version"] == "0.1.0"


async def test_set_publish_turns_the_heartbeat_off_and_on(monkeypatch):
    async with running() as (device, context):
        subscriber = Subscriber(context, device.pub_endpoint)
        await subscriber.wait_for("IDLE")
        due: list[float] = []  # when a heartbeat or a state change was due to go out
        publish = device._publish

        async def noted(*, force: bool = False) -> None:
            due.append(time.time())
            await publish(force=force)

        monkeypatch.setattr(device, "_publish", noted)
        client = Client(context, device.rep_endpoint)
        assert (await client.call("set_publish", {"active": False}, version="0.1.0"))[
            "status"
        ] == "success"
        off = time.time()
        # While off, the state changes and heartbeats fall due: none of it is sent.
        await client.call("initialize")
        await eventually(
            lambda: [at for at in due if at > off],
            "heartbeats fall due while publishing is off",
            until=lambda later: len(later) >= 3,
        )
        on = time.time()
        await client.call("set_publish", {"active": True}, version="0.1.0")
        before: list[dict[str, Any]] = []  # sent before publishing went off
        while (message := await subscriber.next())["payload"]["timestamp"] < on:
            before.append(message)
        assert [m for m in before if m["payload"]["timestamp"] >= off] == []
        # Once on again, what it missed is announced, and the heartbeat goes on.
        assert message["payload"]["state"] == "EXECUTING"
        assert (await subscriber.next())["payload"]["state"] == "EXECUTING"
        bad = await client.call("set_publish", {"active": "yes"}, version="0.1.0")
        assert "payload.active" in bad["payload"]["error_msg"]


async def test_locking_and_the_lease():
    async with running(noise=False, lease_seconds=0.4) as (device, context):
        subscriber = Subscriber(context, device.pub_endpoint)
        alice, bob = Client(context, device.rep_endpoint), Client(context, device.rep_endpoint)
        outside = await alice.execute(GHZ)
        assert outside["status"] == "failure"
        assert "outside an initialized session" in outside["payload"]["error_msg"]
        await alice.call("initialize")
        await subscriber.wait_for("EXECUTING")
        assert (await alice.call("initialize"))["status"] == "success"  # again: still hers
        taken = await bob.call("initialize")
        assert (
            taken["status"] == "failure"
            and "locked by another session" in taken["payload"]["error_msg"]
        )
        assert "locked by another session" in (await bob.execute(GHZ))["payload"]["error_msg"]
        assert (await bob.call("terminate"))["status"] == "failure"
        assert (await bob.call("get_static"))["status"] == "success"  # reading is always fine
        assert (await alice.call("terminate"))["status"] == "success"
        await subscriber.wait_for("IDLE")
        assert (await bob.call("initialize"))["status"] == "success"
        # The device also publishes its state now and then: an IDLE sent before Bob's lock
        # was announced says nothing about his lease.
        await subscriber.wait_for("EXECUTING")
        # Bob goes silent: after the lease his lock is gone and the device is IDLE again.
        await subscriber.wait_for("IDLE", 3)
        assert (await alice.call("initialize"))["status"] == "success"
        assert (await alice.execute(GHZ))["status"] == "success"
        lost = await bob.execute(GHZ)
        assert "locked by another session" in lost["payload"]["error_msg"]


REJECTIONS = [
    # (circuit, shots, rule, line, fragment)
    ("version 3.0\nqubit[6] q\nH q[0]\n", 10, "qubits", 2, "declares 6 qubits; Starmon-5 has 5"),
    ("version 1.0\nqubits 7\nh q[0]\n", 10, "qubits", 2, "declares 7 qubits"),
    (
        "version 3.0\nqubit[5] q\nH q[0]\nRn(1.0, 0.0, 0.0, 1.0, 0.0) q[1]\n",
        10,
        "pgs",
        4,
        "Rn is not in the primitive gate set",
    ),
    ("version 1.0\nqubits 3\n\ntoffoli q[0], q[1], q[2]\n", 10, "pgs", 4, "Toffoli is not in"),
    (
        "version 3.0\nqubit[5] q\nH q[0]\nCNOT q[0], q[1]\n",
        10,
        "topology",
        4,
        "qubits 0 and 1, which are not coupled",
    ),
    ("version 1.0\nqubits 5\nh q[0]\ncz q[3], q[4]\n", 10, "topology", 4, "not coupled"),
    ("version 3.0\nqubit[5] q\nctrl.X q[4], q[3]\n", 10, "topology", 3, "not coupled"),
    ("version 3.0\nqubit[5] q\nH q[5]\n", 10, "syntax", 3, "out of range"),
    (
        "version 1.0\nqubits 5\nh q[0]\nfrobnicate q[1]\n",
        10,
        "syntax",
        4,
        "unknown instruction frobnicate",
    ),
    ("version 3.0\nqubit[2] q\nX q[0]\ninit q[0]\n", 10, "init", 4, "init must come before"),
    (
        "version 1.0\nqubits 5\nmeasure q[0]\nc-x b[0], q[2]\nmeasure q[2]\n",
        100_000,
        "size",
        0,
        "shot by shot",
    ),
    ("version 2.0\nqubits 5\n", 10, "syntax", 1, "version 2.0 is not supported"),
    (
        "version 3.0\nqubit[5] q\nbit[1000000000] b\nb[0] = measure q[0]\n",
        10,
        "bits",
        3,
        "declares 1000000000 bits; at most 128 can be run",
    ),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def strict_device() -> AsyncIterator[tuple[Device, zmq.asyncio.Context]]:
    """One device for every rejection case: each runs in a session of its own, which it ends."""
    async with running(
        noise=False, pgs=[p for p in DeviceConfig().pgs if p != "Rn"], max_dynamic_work=2**20
    ) as started:
        yield started


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("circuit", "shots", "rule", "line", "fragment"), REJECTIONS)
async def test_every_rejection_names_rule_and_line(
    strict_device, circuit, shots, rule, line, fragment
):
    device, context = strict_device
    client = Client(context, device.rep_endpoint)
    assert (await client.call("initialize"))["status"] == "success"
    try:
        reply = await client.execute(circuit, shots=shots)
        assert reply["status"] == "failure"
        message = reply["payload"]["error_msg"]
        where = f" at line {line}" if line else ""
        assert message.startswith(f"circuit rejected by rule '{rule}'{where}: "), message
        assert fragment in message
        assert (await client.execute(GHZ, shots=3))["status"] == "success"
    finally:
        await client.call("terminate")


async def test_limits_of_the_device():
    async with running(noise=False, max_shots=1000, max_circuit_bytes=500, max_operations=50) as (
        device,
        context,
    ):
        client = Client(context, device.rep_endpoint)
        await client.call("initialize")
        shots = await client.execute(GHZ, shots=1001)
        assert (
            "rule 'max_shots'" in shots["payload"]["error_msg"]
            and "at most 1000" in shots["payload"]["error_msg"]
        )
        big = GHZ + "// padding\n" * 60
        assert "rule 'size'" in (await client.execute(big))["payload"]["error_msg"]
        many = "version 1.0\nqubits 5\n" + "x q[0]\n" * 51
        reply = await client.execute(many)
        assert (
            "rule 'size'" in reply["payload"]["error_msg"]
            and "51 operations" in reply["payload"]["error_msg"]
        )
        # JSON's escapes can carry half a surrogate pair, which no text encodes: refused by
        # name, and the device answers the next request (it logged a traceback before).
        half = await client.execute(GHZ + "// \udc80\n")
        assert half["status"] == "failure", half
        assert "rule 'encoding': a lone surrogate at character" in half["payload"]["error_msg"]
        assert (await client.execute(GHZ, shots=3))["status"] == "success"


BAD_REQUESTS = [
    (b"{not json", "not a JSON document"),
    (b"\xff\xfe", "not a JSON document"),
    (b"[1, 2]", "must be a JSON object"),
    (b"[" * 100_000, "not a JSON document"),
    (json.dumps({"command": "initialize"}).encode(), "session_id is required for initialize"),
    (json.dumps({"command": "execute"}).encode(), "session_id is required for execute"),
    (
        json.dumps({"session_id": 5, "command": "get_static"}).encode(),
        "session_id must be a string",
    ),
    (json.dumps({"session_id": "S", "command": "teleport"}).encode(), "unknown command 'teleport'"),
    (json.dumps({"session_id": "S"}).encode(), "command is required"),
    (
        json.dumps({"session_id": "S", "command": "execute", "payload": [1]}).encode(),
        "payload must be an object",
    ),
    (
        json.dumps(
            {
                "session_id": "S",
                "command": "execute",
                "payload": {"circuit": "x", "number_of_shots": 1},
            }
        ).encode(),
        "payload.job_id is required",
    ),
    (
        json.dumps(
            {
                "session_id": "S",
                "command": "execute",
                "payload": {"job_id": "1", "circuit": "x", "number_of_shots": 1},
            }
        ).encode(),
        "payload.job_id",
    ),
    (
        json.dumps(
            {
                "session_id": "S",
                "command": "execute",
                "payload": {"job_id": 1, "circuit": 5, "number_of_shots": 1},
            }
        ).encode(),
        "payload.circuit",
    ),
    (
        json.dumps(
            {
                "session_id": "S",
                "command": "execute",
                "payload": {"job_id": 1, "circuit": "x", "number_of_shots": "10"},
            }
        ).encode(),
        "payload.number_of_shots",
    ),
    (
        json.dumps(
            {
                "session_id": "S",
                "command": "execute",
                "payload": {"job_id": 1, "circuit": "x", "number_of_shots": 0},
            }
        ).encode(),
        "positive integer",
    ),
    (
        json.dumps(
            {
                "session_id": "S",
                "command": "execute",
                "payload": {"job_id": 1, "circuit": "x", "number_of_shots": True},
            }
        ).encode(),
        "payload.number_of_shots",
    ),
    (
        json.dumps(
            {
                "session_id": "S",
                "command": "execute",
                "payload": {
                    "job_id": 1,
                    "circuit": "x",
                    "number_of_shots": 1,
                    "include_raw_data": "yes",
                },
            }
        ).encode(),
        "include_raw_data",
    ),
]


@pytest.mark.parametrize(("frame", "fragment"), BAD_REQUESTS)
async def test_bad_input_gets_a_failure_and_the_socket_keeps_answering(frame, fragment):
    async with running(noise=False) as (device, context):
        client = Client(context, device.rep_endpoint)
        reply = await client.send_raw(frame)
        assert reply["status"] == "failure" and fragment in reply["payload"]["error_msg"], reply
        if reply["session_id"] != "S":
            check_reply("get_static", reply)
        assert (await client.call("get_static"))["status"] == "success"


async def test_a_peer_that_speaks_no_req_envelope_is_ignored():
    async with running(noise=False) as (device, context):
        raw = context.socket(zmq.DEALER)
        raw.connect(device.rep_endpoint)
        await raw.send(b"no delimiter frame")
        client = Client(context, device.rep_endpoint)
        assert (await client.call("get_static"))["status"] == "success"
        raw.close(0)


async def test_heartbeats_and_other_requests_go_on_during_a_simulation():
    # A conditional gate makes Aer simulate shot by shot, with noise: long enough to watch.
    slow = (
        "version 1.0\nqubits 5\nh q[2]\nmeasure q[2]\nc-x b[2], q[0]\n"
        + "cnot q[2], q[0]\n" * 40
        + "measure_all\n"
    )
    async with running() as (device, context):
        subscriber = Subscriber(context, device.pub_endpoint)
        await subscriber.wait_for("IDLE")
        alice, bob = Client(context, device.rep_endpoint), Client(context, device.rep_endpoint)
        await alice.call("initialize")
        running_execute = asyncio.create_task(alice.execute(slow, shots=30_000))
        await eventually(lambda: device._executing > 0, "the execute reaches the device")
        simulating = time.time()
        assert not running_execute.done(), "the simulation was too short to watch"
        beats: list[dict[str, Any]] = []
        while len(beats) < 4:
            beat = await subscriber.next(1)
            if beat["payload"]["timestamp"] >= simulating:  # not one still queued from before
                beats.append(beat)
        assert {b["payload"]["state"] for b in beats} == {"EXECUTING"}
        assert not running_execute.done(), "the simulation was too short to watch"
        assert (await bob.call("get_static"))["status"] == "success"
        refused = await bob.call("initialize")
        assert "locked by another session" in refused["payload"]["error_msg"]
        assert (await running_execute)["status"] == "success"


async def test_calibration_refuses_execution_and_get_dynamic_reports_metrics():
    async with running(calibration={"interval_seconds": 0.3, "duration_seconds": 0.6}) as (
        device,
        context,
    ):
        subscriber = Subscriber(context, device.pub_endpoint)
        client = Client(context, device.rep_endpoint)
        before = (await client.call("get_dynamic"))["payload"]
        assert before["t1_in_us"]["__labels__"] == ["qubit"] and set(before["t1_in_us"]) == {
            "__labels__",
            "q0",
            "q1",
            "q2",
            "q3",
            "q4",
        }
        assert before["two_qubit_gate_fidelity"]["__labels__"] == ["qubit1", "qubit2"]
        assert 0.9 < before["two_qubit_gate_fidelity"]["q0"]["q2"] < 1
        assert 0.9 < before["readout_fidelity"]["q1"] < 1
        await subscriber.wait_for("CALIBRATING")
        refused = await client.execute(GHZ)
        assert (
            "CALIBRATING" in refused["payload"]["error_msg"]
            and "execute is refused" in refused["payload"]["error_msg"]
        )
        assert "CALIBRATING" in (await client.call("initialize"))["payload"]["error_msg"]
        await subscriber.wait_for("IDLE")
        after = (await client.call("get_dynamic"))["payload"]
        assert after["last_calibration_timestamp"] > before["last_calibration_timestamp"]
        assert after["t1_in_us"] != before["t1_in_us"]


async def test_a_locked_device_calibrates_only_after_the_session():
    async with running(
        noise=False, calibration={"interval_seconds": 0.2, "duration_seconds": 0.2}
    ) as (device, context):
        subscriber = Subscriber(context, device.pub_endpoint)
        client = Client(context, device.rep_endpoint)
        # A machine under load may reach the device while it calibrates the first time.
        await eventually(
            lambda: client.call("initialize"),
            "the session begins",
            until=lambda reply: reply["status"] == "success",
        )
        # Only the calibration, finding the device locked, clears this: then it fell due and
        # waits for the session.
        device._released.set()
        await eventually(
            lambda: not device._released.is_set(), "the calibration falls due during the session"
        )
        assert (await client.execute(GHZ))["status"] == "success"
        ended = time.time()
        await client.call("terminate")
        await subscriber.wait_for("CALIBRATING", 2, after=ended)


def test_drift_worsens_values_until_the_next_calibration():
    config = DeviceConfig(calibration={"drift_per_hour": 0.5, "jitter": 0.0})
    calibration = Calibration(config, random.Random(3), now=1000.0)
    fresh, later = calibration.snapshot(1000.0), calibration.snapshot(1000.0 + 3600)
    assert fresh.t1_us == tuple(config.per_qubit("t1_us"))
    assert all(b < a for a, b in zip(fresh.t1_us, later.t1_us, strict=True))
    assert all(
        b < a for a, b in zip(fresh.single_qubit_fidelity, later.single_qubit_fidelity, strict=True)
    )
    assert all(b > a for a, b in zip(fresh.readout_error, later.readout_error, strict=True))
    assert all(t2 <= 2 * t1 for t1, t2 in zip(later.t1_us, later.t2_us, strict=True))
    calibration.calibrate(1000.0 + 3600)
    assert calibration.snapshot(1000.0 + 3600).t1_us == fresh.t1_us
    metrics = calibration.metrics(1000.0 + 3600 + 30)
    assert metrics["seconds_since_calibration"] == 30


def test_config_files(tmp_path):
    good = tmp_path / "device.toml"
    good.write_text(
        'name = "Spin-2"\nqubits = 2\ntopology = [[0, 1]]\npgs = ["X", "Rz", "CZ", "measure"]\n'
        "[calibration]\nt1_us = 10.0\nt2_us = [5.0, 8.0]\ntwo_qubit_fidelity = 0.9\nreadout_error = 0.01\n"
        "single_qubit_fidelity = 0.99\n"
    )
    config = load_config(good)
    assert config.name == "Spin-2" and config.per_qubit("t1_us") == [10.0, 10.0]
    assert config.edge_fidelities() == {(0, 1): 0.9}
    for text, fragment in [
        ("qubits = 2\ntopology = [[0, 2]]\n", "topology edge [0, 2]"),
        ('pgs = ["Frob"]\n', "unknown gates ['Frob']"),
        ("colour = 1\n", "colour"),
        ("[calibration]\nt1_us = [1.0]\n", "1 values for 5 qubits"),
        ("[calibration]\nt2_us = 100.0\n", "T2 <= 2 T1"),
        ('[calibration]\ntwo_qubit_fidelity = {"0-1" = 0.9}\n', "'0-1' is not an edge"),
        ("name = \n", "not valid TOML"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(
            DeviceConfigError, match=fragment.replace("[", r"\[").replace("]", r"\]")
        ):
            load_config(bad)
    with pytest.raises(DeviceConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_cli_reports_a_bad_config_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("qubits = 0\n")
    done = subprocess.run(
        [sys.executable, "-m", "qrt_cli", "device", "--config", str(bad)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "invalid device configuration" in done.stderr and "Traceback" not in done.stderr
