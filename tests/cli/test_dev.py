"""`qrt dev`'s simulated device runs in a process of its own: a circuit that crashes native code,
or the device process itself ending, never takes `qrt dev` (and every user's job) down; a
poisoned job left in the store fails instead of crashing each restart."""

from __future__ import annotations

import json
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import zmq
import zmq.asyncio
from qiskit_ibm_runtime import RuntimeEncoder

from qrt_cli.dev import Platform
from qrt_common.jobs import Job, JobStatus, new_job_id
from qrt_common.settings import Settings
from qrt_common.store import open_store
from tests.support.platform import logs_of, make_settings, wait_for
from tests.support.processes import children, cpu_seconds, ended
from tests.support.programs import merge_programs
from tests.support.waiting import eventually

REFUSED = "version 3.0\nqubit[5] q\nX q[1/0]"
"""Once a native crash (libqasm's SIGFPE); refused by rule since the parser checks it first."""
SLOW = (
    "version 1.0\nqubits 5\nh q[2]\nmeasure q[2]\nc-x b[2], q[0]\n"
    + "cnot q[2], q[0]\n" * 40
    + "measure_all\n"
)
"""Seconds of simulation at a million shots: time to crash the worker in the middle."""
BELL = "version 1.0\nqubits 5\nh q[2]\ncnot q[2], q[0]\nmeasure_all\n"


def dev_settings(tmp_path: Path) -> Settings:
    config = tmp_path / "device.toml"
    config.write_text("noise = false\nseed = 3\nmax_shots = 10000000\nmax_dynamic_work = 1e12\n")
    return make_settings(
        tmp_path, merge_programs(tmp_path / "programs"), dev_device=True, device_config=config
    )


async def submit(http: aiohttp.ClientSession, circuit: str, shots: int = 10) -> str:
    body = {
        "programId": "cqasm-runner",
        "backend": "Starmon-5",
        "params": {"circuit": circuit, "shots": shots},
    }
    async with http.post("/jobs", json=body) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["id"])


async def get_static(address: str) -> dict[str, Any]:
    context = zmq.asyncio.Context()
    socket = context.socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    try:
        await socket.send(json.dumps({"command": "get_static", "version": "0.1.0"}).encode())
        if not await socket.poll(5000):
            raise ConnectionError(f"{address} did not answer")
        reply: dict[str, Any] = json.loads(await socket.recv())
        return reply
    finally:
        context.destroy(0)


async def test_the_dev_device_is_a_process_of_its_own_and_comes_back_when_it_ends(tmp_path):
    platform = await Platform.start(dev_settings(tmp_path))
    try:
        device = platform.device
        assert device is not None and device.process is not None
        first = device.process.pid
        assert first != os.getpid()
        async with aiohttp.ClientSession(base_url=platform.url) as http:
            # The device's worker starts with its first session: the first job waits for it.
            assert children(first) == []
            started = await submit(http, BELL)
            assert (await wait_for(http, started, timeout=60))["status"] == "Completed"
            # Native code crashes in the middle of a job's circuit (as Aer did, by SIGSEGV):
            # the job fails, saying so, and the device and qrt dev go on.
            (worker,) = children(first)
            idle = cpu_seconds(worker)
            crashed = await submit(http, SLOW, shots=10**6)
            await eventually(
                lambda: cpu_seconds(worker) > idle + 0.5, "the worker simulates", timeout=60
            )
            os.kill(worker, signal.SIGSEGV)
            job = await wait_for(http, crashed, timeout=60)
            assert job["status"] == "Failed", job
            assert "the simulator crashed (SIGSEGV)" in await logs_of(http, crashed)
            assert device.process.pid == first  # the worker crashed, not the device
            # The device process itself crashes: qrt dev goes on and starts it again.
            os.kill(first, signal.SIGSEGV)
            await eventually(lambda: ended(first), "the device process ends")
            await eventually(
                lambda: get_static(device.rep_endpoint),
                "the device answers again on the same address",
                until=lambda reply: reply["status"] == "success",
                not_yet=(ConnectionError,),
                timeout=60,
            )
            assert device.process.pid != first
            async with http.get("/healthz") as response:
                assert response.status == 200
            after = await submit(http, BELL)
            assert (await wait_for(http, after, timeout=60))["status"] == "Completed"
    finally:
        await platform.stop()
    assert device.process.returncode is not None  # stopped with the platform


async def test_a_poisoned_job_in_the_store_fails_at_restart_and_qrt_dev_keeps_serving(tmp_path):
    settings = dev_settings(tmp_path)
    # What a crash of the whole platform left behind: the job is Running in the store.
    store = open_store(settings.effective_store_url)
    await store.open()
    params = json.dumps({"circuit": REFUSED, "shots": 10}, cls=RuntimeEncoder)
    poisoned = Job(
        id=new_job_id(), program_id="cqasm-runner", backend="Starmon-5", params=params,
        max_execution_time=300, status=JobStatus.RUNNING, started=datetime.now(UTC),
        attempt=1, executor_id="gone-executor",
    )  # fmt: skip
    await store.add_job(poisoned)
    await store.close()
    for restart in range(2):
        platform = await Platform.start(settings)
        try:
            async with aiohttp.ClientSession(base_url=platform.url) as http:
                job = await wait_for(http, poisoned.id, timeout=60)
                assert job["status"] == "Failed", job
                if restart == 0:
                    log = await logs_of(http, poisoned.id)
                    assert "rule 'arithmetic' at line 3: integer division by zero" in log
                fine = await submit(http, BELL)
                assert (await wait_for(http, fine, timeout=60))["status"] == "Completed"
        finally:
            await platform.stop()
