"""The executor's side of a 2300 device: the REQ client, the Qiskit backend, and jobs through
the whole platform (HTTP -> executor -> ZeroMQ -> device -> result)."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from typing import Any

import aiohttp
import pytest
import zmq
import zmq.asyncio
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder

from qrt_cli.dev import Platform
from qrt_common.device_protocol import Command
from qrt_common.errors import DeviceRefused, DeviceUnavailable
from qrt_device.config import DeviceConfig
from qrt_device.service import Device
from qrt_executor.device_backend import DeviceBackend
from qrt_executor.device_client import DeviceClient
from tests.support.device_schemas import (
    REQUESTS,
    check_published,
    check_reply,
    check_request,
    schema,
)
from tests.support.platform import make_settings, wait_for
from tests.support.programs import ROOT, merge_programs
from tests.support.waiting import TIME_SCALE, eventually, eventually_sync

BELL_V1 = "version 1.0\nqubits 5\nh q[2]\ncnot q[2], q[0]\nmeasure_all\n"
SLOW = (
    "version 1.0\nqubits 5\nh q[2]\nmeasure q[2]\nc-x b[2], q[0]\n"
    + "cnot q[2], q[0]\n" * 40
    + "measure_all\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_device(port: int | None = None, **settings: Any) -> Device:
    config = DeviceConfig(**{"seed": 5, "noise": False, "heartbeat_seconds": 0.05, **settings})
    rep = f"tcp://127.0.0.1:{port}" if port else "tcp://127.0.0.1:*"
    device = Device(config, rep, "tcp://127.0.0.1:*")
    await device.start()
    return device


async def test_client_requests_are_v3_and_a_timed_out_socket_is_replaced():
    port = free_port()
    # Skip (without the spec) before any socket exists: a skip halfway would leave this
    # test's context to the collector, whose term() then blocks whatever thread it runs in.
    schema(REQUESTS[Command.GET_STATIC.value])
    context = zmq.asyncio.Context()
    silent = context.socket(zmq.ROUTER)
    silent.bind(f"tcp://127.0.0.1:{port}")
    client = DeviceClient(f"tcp://127.0.0.1:{port}", timeout=0.3)
    session = str(uuid.uuid4())
    asking = asyncio.create_task(asyncio.to_thread(client.request, Command.GET_STATIC, session))
    frames = await asyncio.wait_for(silent.recv_multipart(), 5)
    check_request(json.loads(frames[-1]))  # what the 2200 side sends is v3 too
    with pytest.raises(DeviceUnavailable, match=r"did not answer get_static within 0\.3 s"):
        await asking
    client.close()
    silent.close(0)
    context.destroy(0)
    # The device comes (back) on the same address: the next request gets through (given more
    # than the 0.3 s meant for the silent socket, which a loaded machine can take to answer).
    device = await start_device(port)
    try:
        static = await asyncio.to_thread(client.request, Command.GET_STATIC, session, timeout=10)
        assert static["name"] == "Starmon-5"
        with pytest.raises(DeviceRefused, match="outside an initialized session"):
            payload = {"job_id": 1, "circuit": BELL_V1, "number_of_shots": 1}
            await asyncio.to_thread(client.request, Command.EXECUTE, session, payload, timeout=10)
    finally:
        client.close()
        await device.close()


async def test_backend_target_transpiles_and_runs_qiskit_circuits():
    device = await start_device()
    try:
        backend = await asyncio.to_thread(DeviceBackend, device.rep_endpoint)
        assert backend.name == "Starmon-5" and backend.num_qubits == 5
        assert sorted(backend.coupling_map.get_edges()) == [
            (0, 2),
            (1, 2),
            (2, 0),
            (2, 1),
            (2, 3),
            (2, 4),
            (3, 2),
            (4, 2),
        ]
        assert {"cx", "cz", "sx", "sxdg", "rz", "measure", "reset"} <= set(backend.operation_names)
        qr, a, b = QuantumRegister(3), ClassicalRegister(2, "a"), ClassicalRegister(1, "b")
        ghz = QuantumCircuit(qr, a, b, name="ghz")
        ghz.h(0)
        ghz.cx(0, 1)
        ghz.cx(1, 2)  # 0-1 and 1-2 are not coupled: the transpiler routes them
        ghz.measure([0, 1, 2], [0, 1, 2])
        flip = QuantumCircuit(1, 1, name="flip")
        flip.x(0)
        flip.measure(0, 0)
        job = await asyncio.to_thread(backend.run, [ghz, flip], shots=200, memory=True)
        result = job.result()
        assert (
            set(result.get_counts("ghz")) == {"0 00", "1 11"}
            and sum(result.get_counts("ghz").values()) == 200
        )
        assert result.get_counts("flip") == {"1": 200}
        assert len(result.get_memory("ghz")) == 200
        payload = await asyncio.to_thread(backend.run_cqasm, BELL_V1, 20, True)
        assert set(payload["results"]) <= {"00000", "00101"} and len(payload["raw_data"]) == 20
        with pytest.raises(DeviceRefused, match="rule 'topology' at line 3"):
            await asyncio.to_thread(backend.run_cqasm, "version 3.0\nqubit[5] q\nCZ q[0], q[1]\n")
        backend.close()
    finally:
        await device.close()


async def test_backend_waits_for_another_session_to_end(monkeypatch: pytest.MonkeyPatch):
    device = await start_device()
    context = zmq.asyncio.Context()
    refused: list[str] = []
    handle = device.handle

    async def recording(frame: bytes) -> bytes:
        reply = await handle(frame)
        if b"locked by another session" in reply:
            refused.append(json.loads(frame)["command"])
        return reply

    monkeypatch.setattr(device, "handle", recording)
    try:
        other = context.socket(zmq.REQ)
        other.connect(device.rep_endpoint)
        session = str(uuid.uuid4())
        await other.send_json({"session_id": session, "command": "initialize"})
        check_reply("initialize", await other.recv_json())
        backend = await asyncio.to_thread(DeviceBackend, device.rep_endpoint)
        running = asyncio.create_task(asyncio.to_thread(backend.run_cqasm, BELL_V1, 10))
        # Refused twice, it tried again: it waits rather than failing.
        await eventually(
            lambda: refused,
            "the backend asks again",
            until=lambda commands: commands.count("initialize") >= 2,
        )
        assert not running.done()
        await other.send_json({"session_id": session, "command": "terminate"})
        await other.recv_json()
        # The device's worker may still be importing Qiskit and Aer on a loaded machine.
        ran = await asyncio.wait_for(running, 90 * TIME_SCALE)
        assert sum(ran["results"].values()) == 10
        backend.close()
    finally:
        context.destroy(0)
        await device.close()


async def test_a_device_restart_during_an_execute():
    port = free_port()
    device = await start_device(port, noise=True)
    backend = await asyncio.to_thread(
        DeviceBackend, f"tcp://127.0.0.1:{port}", None, timeout=2, execute_timeout=2
    )
    try:
        running = asyncio.create_task(asyncio.to_thread(backend.run_cqasm, SLOW, 500))
        await eventually(lambda: device._executing > 0, "the device simulates the circuit")
        await device.close()  # gone mid-simulation: that reply never comes
        device = await start_device(port)
        payload = await asyncio.wait_for(running, 20)
        assert sum(payload["results"].values()) == 500
        assert device.session is None  # the new session was terminated on the new device
    finally:
        backend.close()
        await device.close()


def test_qrt_device_process_answers_and_says_offline_when_stopped():
    rep, pub = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [sys.executable, "-m", "qrt_cli", "device", "--rep-address", rep, "--pub-address", pub],
        cwd=ROOT, stderr=subprocess.PIPE, text=True, env={**os.environ, "QRT_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    context = zmq.Context()
    try:
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(pub)
        backend = DeviceBackend(rep, timeout=60)
        assert backend.name == "Starmon-5"
        assert sub.poll(5000)
        check_published(json.loads(sub.recv()))
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        states: list[str] = []

        def received() -> list[str]:
            while sub.poll(0):
                message = json.loads(sub.recv())
                check_published(message)
                states.append(message["payload"]["state"])
            return states

        # The process has exited: all it published is on its way, and its last word is OFFLINE.
        eventually_sync(received, "the device says OFFLINE", until=lambda s: s[-1:] == ["OFFLINE"])
        backend.close()
    finally:
        if process.poll() is None:
            process.kill()
        context.destroy(0)


async def locked(address: str) -> bool:
    """Whether a session holds the device at `address` (asked by trying to lock it; a lock
    that is got is given back at once)."""
    client = DeviceClient(address, timeout=10)
    session = str(uuid.uuid4())
    try:
        await asyncio.to_thread(client.request, Command.INITIALIZE, session)
    except DeviceRefused as exc:
        if "locked by another session" in str(exc):
            return True
        raise
    else:
        await asyncio.to_thread(client.request, Command.TERMINATE, session)
        return False
    finally:
        client.close()


async def test_jobs_run_on_the_dev_device_through_the_gateway(tmp_path):
    config = tmp_path / "device.toml"
    config.write_text("noise = false\nseed = 3\n")
    settings = make_settings(
        tmp_path, merge_programs(tmp_path / "programs"), dev_device=True, device_config=config
    )
    platform = await Platform.start(settings)
    try:
        async with aiohttp.ClientSession(base_url=platform.url) as http:
            async with http.get("/backends") as response:
                backends = (await response.json())["backends"]
            assert {"name": "Starmon-5", "simulator": False} in backends

            async def submit(program: str, params: Any, backend: str = "Starmon-5") -> str:
                body = {
                    "programId": program,
                    "backend": backend,
                    "params": [json.dumps(params, cls=RuntimeEncoder)],
                }
                async with http.post("/jobs", json=body) as response:
                    assert response.status == 200, await response.text()
                    return str((await response.json())["id"])

            async def result(job_id: str) -> Any:
                async with http.get(f"/jobs/{job_id}/results") as response:
                    return json.loads(await response.json(), cls=RuntimeDecoder)

            first = await submit(
                "cqasm-runner", {"circuit": BELL_V1, "shots": 100, "include_raw_data": True}
            )
            second = await submit(
                "cqasm-runner",
                {"circuit": BELL_V1.replace("version 1.0", "version 1.0 "), "shots": 50},
            )
            bell = QuantumCircuit(2, 2)
            bell.h(0)
            bell.cx(0, 1)
            bell.measure([0, 1], [0, 1])
            third = await submit("circuit-runner", {"circuits": bell, "shots": 64})
            bad = await submit(
                "cqasm-runner", {"circuit": "version 3.0\nqubit[5] q\nCZ q[0], q[1]\n"}
            )
            simulated = await submit(
                "cqasm-runner", {"circuit": BELL_V1, "shots": 10}, backend="aer_simulator"
            )
            jobs = {
                job_id: await wait_for(http, job_id, timeout=60)
                for job_id in (first, second, third, bad, simulated)
            }
            for job_id in (first, second, third, simulated):
                assert jobs[job_id]["status"] == "Completed", jobs[job_id]
            out = await result(first)
            assert set(out["results"]) <= {"00000", "00101"} and len(out["raw_data"]) == 100
            counts = (await result(third))["results"][0]["data"]["counts"]
            assert set(counts) <= {"0x0", "0x3"} and sum(counts.values()) == 64
            assert set((await result(simulated))["results"]) <= {"00000", "00101"}
            assert jobs[bad]["status"] == "Failed"
            async with http.get(f"/jobs/{bad}/logs") as response:
                log = await response.json()
                # A device's refusal is the reason, not a traceback of the program's call.
                assert "rule 'topology' at line 3" in log and "Traceback" not in log, log
            # One job at a time on a device: no two device jobs overlap.
            spans = sorted(
                (jobs[j]["started"], jobs[j]["ended"]) for j in (first, second, third, bad)
            )
            for (_, ended), (started, _) in itertools.pairwise(spans):
                assert started >= ended

            # A job cancelled while it holds the device: its executor ends the session at once
            # (instead of leaving the device locked until the lease runs out).
            holder = await submit("device-holder", {})
            device = platform.device
            assert device is not None
            # Running, not only started: a job cancelled before the scheduler knows it started
            # ends at once, and its executor ends the session a moment later.
            await wait_for(http, holder, {"Running"})
            await eventually(lambda: locked(device.rep_endpoint), "the job locks the device")
            async with http.post(f"/jobs/{holder}/cancel") as response:
                assert response.status == 204
            assert (await wait_for(http, holder))["status"] == "Cancelled"
            assert not await locked(device.rep_endpoint)
            after = await submit("cqasm-runner", {"circuit": BELL_V1, "shots": 5})
            assert (await wait_for(http, after, timeout=30))["status"] == "Completed"
    finally:
        await platform.stop()
