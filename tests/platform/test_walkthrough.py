"""The seed's test-server walkthrough, step by step, against a real `qrt dev` process."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.dev import DevServer
from tests.support.platform import logs_of, wait_for
from tests.support.programs import merge_programs, write_program


@pytest.fixture
def own_dev(tmp_path: Path) -> Iterator[DevServer]:
    """A `qrt dev` of the test's own, to restart."""
    server = DevServer(tmp_path / "data", merge_programs(tmp_path / "programs"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
async def http(qrt_dev: DevServer) -> AsyncIterator[aiohttp.ClientSession]:
    """To the session's `qrt dev`."""
    async with aiohttp.ClientSession(base_url=qrt_dev.url) as session:
        yield session


async def test_seed_walkthrough(http: aiohttp.ClientSession):
    # List all available programs.
    async with http.get("/programs", headers={"accept": "application/json"}) as response:
        assert response.status == 200
        ids = [p["id"] for p in (await response.json())["programs"]]
    assert {"sample-program", "hello-quantum", "circuit-runner"} <= set(ids)

    # Run the sample program (the seed's body, with a backend that exists).
    body = {"programId": "sample-program", "hub": "string", "group": "string",
            "project": "string", "backend": "aer_simulator", "params": ['{"iterations":3}']}  # fmt: skip
    async with http.post("/jobs", json=body) as response:
        assert response.status == 200
        job_id = (await response.json())["id"]

    # Stream it from the start: every interim result, then the final one, then close.
    async with http.ws_connect(f"/stream/jobs/{job_id}") as ws:
        frames = [json.loads(message.data) async for message in ws]
    assert [f["iteration"] for f in frames[:-1]] == [0, 1, 2]
    assert all(sum(f["counts"].values()) == 1024 for f in frames[:-1])
    assert frames[-1] == "All done!"

    # Status, logs and results.
    job = await wait_for(http, job_id)
    assert job["status"] == "Completed" and job["program"] == {"id": "sample-program"}
    log = await logs_of(http, job_id)
    assert log.count('"iteration"') == 3 and log.endswith('"All done!"\n')
    async with http.get(f"/jobs/{job_id}/results") as response:
        assert json.loads(await response.json()) == "All done!"

    # The old server could not cancel: this one can, while the job runs.
    body["params"] = ['{"iterations": 100000}']
    async with http.post("/jobs", json=body) as response:
        long_job = (await response.json())["id"]
    await wait_for(http, long_job, {"Running"})
    async with http.post(f"/jobs/{long_job}/cancel") as response:
        assert response.status == 204
    assert (await wait_for(http, long_job, timeout=10))["status"] == "Cancelled"


async def test_a_program_is_added_without_a_restart(qrt_dev: DevServer, http):
    source = (
        "def main(backend, messenger, name):\n"
        "    messenger.publish(f'hello {name}')\n"
        "    return {'greeted': name, 'backend': backend.name}\n"
    )
    write_program(
        qrt_dev.programs_dir, "greeter", {"name": "greeter", "description": "Hi."}, source
    )
    async with http.get("/programs/greeter") as response:
        assert response.status == 404
    ini = qrt_dev.programs_dir / "programs.ini"
    ini.write_text(ini.read_text() + "greeter=greeter.greeter\n")
    async with http.get("/programs/greeter") as response:
        assert response.status == 200
        assert await response.json() == {
            "id": "greeter", "name": "greeter", "cost": 300, "description": "Hi.",
            "version": "1.0", "maxExecutionTime": 300, "backendRequirements": None,
            "parameters": None, "returnValues": None, "interimResults": None, "isPublic": True,
            "kind": "qiskit-runtime", "bundled": True, "owner": None, "digest": None,
            "createdAt": None, "updatedAt": None,
        }  # fmt: skip
    body = {"programId": "greeter", "params": ['{"name": "Ada"}']}
    async with http.post("/jobs", json=body) as response:
        job_id = (await response.json())["id"]
    assert (await wait_for(http, job_id))["status"] == "Completed"
    async with http.get(f"/jobs/{job_id}/results") as response:
        assert json.loads(await response.json()) == {"greeted": "Ada", "backend": "aer_simulator"}


async def test_jobs_logs_and_results_survive_a_restart(own_dev: DevServer):
    async with aiohttp.ClientSession(base_url=own_dev.url) as http:
        body = {"programId": "hello-quantum", "params": {"greeting": "persist me"}}
        async with http.post("/jobs", json=body) as response:
            done_id = (await response.json())["id"]
        done = await wait_for(http, done_id)
        done_log = await logs_of(http, done_id)
        async with http.get(f"/jobs/{done_id}/results") as response:
            done_result = await response.json()
        async with http.post("/jobs", json={"programId": "sleeper",
                                            "params": {"seconds": 2, "ticks": 2}}) as response:  # fmt: skip
            cut_id = (await response.json())["id"]
        await wait_for(http, cut_id, {"Running"})

    assert own_dev.stop(signal.SIGTERM) == 0
    own_dev.start()

    async with aiohttp.ClientSession(base_url=own_dev.url) as http:
        assert await wait_for(http, done_id) == done
        assert await logs_of(http, done_id) == done_log
        async with http.get(f"/jobs/{done_id}/results") as response:
            assert await response.json() == done_result
        async with http.ws_connect(f"/stream/jobs/{done_id}") as ws:
            frames = [m.data async for m in ws]
            assert frames[0] == '"persist me"'
        # The job the shutdown cut off runs again, as a second attempt.
        cut = await wait_for(http, cut_id, timeout=30)
        assert (cut["status"], cut["attempt"]) == ("Completed", 2)
        assert "[qrt] attempt 2" in await logs_of(http, cut_id)


async def test_bad_settings_are_reported_without_a_traceback(tmp_path: Path):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "qrt_cli", "dev", "--port", "99999",
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await process.communicate()
    assert process.returncode == 2
    assert b"invalid setting port" in stderr and b"Traceback" not in stderr
