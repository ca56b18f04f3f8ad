"""The platform run from its four images, each container locked down as the chart runs it."""

from __future__ import annotations

import base64
import io
import json
import textwrap
import urllib.request
import zipfile
from typing import Any

import aiohttp
import pytest

from qrt_executor import landlock
from tests.support.platform import get_json, logs_of, wait_for
from tests.support.waiting import eventually

from .conftest import Platform, answers
from .pods import SERVICE_ACCOUNT, podman

pytestmark = [pytest.mark.containers, pytest.mark.timeout(600)]

BELL = "version 3.0\nqubit[5] q\nbit[5] b\nH q[0]\nCNOT q[0], q[2]\nb = measure q\n"


def exec_in(platform: Platform, name: str, *command: str) -> str:
    return podman("exec", name, *command).stdout


def test_every_container_runs_as_the_chart_says(platform: Platform):
    for started in platform.containers:
        # uid 10001, no capability at all, a read-only root: what the pod's process sees.
        status = exec_in(platform, started.name, "cat", "/proc/1/status")
        fields = dict(line.split(":", 1) for line in status.splitlines())
        assert fields["Uid"].split()[:2] == ["10001", "10001"], started.name
        assert all(int(fields[c], 16) == 0 for c in ("CapEff", "CapPrm", "CapBnd")), started.name
        assert fields["NoNewPrivs"].strip() == "1", started.name
        refused = podman("exec", started.name, "touch", "/opt/qrt/written", check=False)
        assert refused.returncode != 0 and "Read-only file system" in refused.stderr


def test_readyz_and_metrics_of_every_container(platform: Platform):
    for started in platform.containers:
        base = platform.ops_url(started)
        assert answers(f"{base}/readyz") == 200, started.name
        assert answers(f"{base}/healthz") == 200, started.name
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert "# TYPE qrt_" in text, started.name


async def test_the_test_server_walkthrough(api: aiohttp.ClientSession):
    programs = await get_json(api, "/programs")
    assert "sample-program" in json.dumps(programs)
    body = {
        "programId": "sample-program", "hub": "ibm-q", "group": "open", "project": "main",
        "backend": "aer_simulator", "params": ['{"iterations": 3}'],
    }  # fmt: skip
    async with api.post("/jobs", json=body) as response:
        assert response.status == 200, await response.text()
        job_id = (await response.json())["id"]
    job = await wait_for(api, job_id, timeout=120)
    assert job["status"] == "Completed", await logs_of(api, job_id)
    assert "iteration" in (await logs_of(api, job_id)).lower()
    async with api.get(f"/jobs/{job_id}/results") as response:
        assert response.status == 200, await response.text()
        assert await response.text()


async def test_a_cqasm_job_on_the_device(api: aiohttp.ClientSession):
    body = {
        "programId": "cqasm-runner",
        "backend": "Starmon-5",
        "params": {"circuit": BELL, "shots": 100},
    }
    async with api.post("/jobs", json=body) as response:
        assert response.status == 200, await response.text()
        job_id = (await response.json())["id"]
    job = await wait_for(api, job_id, timeout=120)
    assert job["status"] == "Completed", await logs_of(api, job_id)
    result = await results_of(api, job_id)
    assert sum(result["results"].values()) == 100, result


async def test_a_one_shot_planqk_program(api: aiohttp.ClientSession):
    body = {"data": {"values": [1, 5.2, 20, 7, 9.4]}, "params": {"round_off": True}}
    async with api.post("/services/planqk-oneshot-sum/", json=body) as response:
        assert response.status == 201, await response.text()
        execution_id = (await response.json())["id"]
    path = f"/services/planqk-oneshot-sum/{execution_id}"
    execution = await eventually(
        lambda: get_json(api, path), f"{path} ended",
        until=lambda body: body.get("status") in {"SUCCEEDED", "FAILED", "CANCELLED"}, timeout=120,
    )  # fmt: skip
    result = await get_json(api, f"{path}/result")
    assert (execution["status"], result) == ("SUCCEEDED", {"sum": 43, "count": 5}), await logs_of(
        api, execution_id
    )


def program_archive(source: str) -> str:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("program.py", textwrap.dedent(source))
    return base64.b64encode(archive.getvalue()).decode()


async def upload(api: aiohttp.ClientSession, name: str, source: str) -> str:
    body = {"name": name, "data": program_archive(source), "description": name}
    async with api.post("/programs", json=body) as response:
        assert response.status == 201, await response.text()
        program_id: str = (await response.json())["id"]
        return program_id


async def run(api: aiohttp.ClientSession, program_id: str, **params: Any) -> Any:
    async with api.post("/jobs", json={"programId": program_id, "params": params}) as response:
        assert response.status == 200, await response.text()
        job_id = (await response.json())["id"]
    job = await wait_for(api, job_id, timeout=120)
    assert job["status"] == "Completed", await logs_of(api, job_id)
    return await results_of(api, job_id)


async def results_of(api: aiohttp.ClientSession, job_id: str) -> Any:
    """A job's final result, decoded (the test server's API returns it as JSON text)."""
    async with api.get(f"/jobs/{job_id}/results") as response:
        assert response.status == 200, await response.text()
        result = await response.json()
    return json.loads(result) if isinstance(result, str) else result


WRITER = """
    import os, tempfile


    def main(backend, user_messenger, **kwargs):
        outcomes = {}
        for path in ("/opt/qrt/planted", "/app/programs/planted", "/etc/planted", "/planted",
                     "/var/tmp/planted", "/tmp/../usr/planted"):
            try:
                with open(path, "w") as handle:
                    handle.write("x")
                outcomes[path] = "written"
            except OSError as exc:
                outcomes[path] = type(exc).__name__ + ": " + (exc.strerror or "")
        mine = os.path.join(tempfile.gettempdir(), "mine.txt")
        with open(mine, "w") as handle:
            handle.write("fine")
        outcomes["own temporary directory"] = open(mine).read()
        return outcomes
"""


async def test_a_qiskit_program_cannot_write_outside_its_temporary_directory(
    api: aiohttp.ClientSession, platform: Platform
):
    outcomes = await run(api, await upload(api, "writer", WRITER))
    assert outcomes.pop("own temporary directory") == "fine"
    assert outcomes and all(o != "written" for o in outcomes.values()), outcomes
    for executor in platform.executors:
        listing = podman("exec", executor.name, "ls", "/opt/qrt", "/app/programs").stdout
        assert "planted" not in listing


SPY = """
    import os, socket


    def main(backend, user_messenger, broker_port=5672, token=""):
        seen = {"environment": sorted(k for k in os.environ if k.startswith("QRT_"))}
        leaks = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/environ", "rb") as handle:
                        if b"amqp://" in handle.read():
                            leaks.append(pid)
                except OSError:
                    pass
        seen["environments holding the broker URL"] = leaks
        try:
            seen["token"] = open(token).read()
        except OSError as exc:
            seen["token"] = type(exc).__name__
        try:
            socket.create_connection(("127.0.0.1", broker_port), timeout=3).close()
            seen["broker"] = "connected"
        except OSError as exc:
            seen["broker"] = type(exc).__name__ + ": " + (exc.strerror or "")
        return seen
"""


async def test_a_job_reaches_no_credential_token_or_broker(
    api: aiohttp.ClientSession, platform: Platform
):
    # What the executor's own container holds: the broker's URL in its environment, the
    # service-account token the chart mounts into it.
    (executor, *_) = platform.executors
    token = exec_in(platform, executor.name, "cat", f"{SERVICE_ACCOUNT}/token")
    assert token.startswith("token-of-")
    inspected = podman("inspect", "--format", "{{json .Config.Env}}", executor.name).stdout
    assert "amqp://" in inspected

    seen = await run(api, await upload(api, "spy", SPY), token=f"{SERVICE_ACCOUNT}/token")
    assert seen["environment"] == ["QRT_JOB_ID"]
    assert seen["environments holding the broker URL"] == []
    assert seen["token"] in ("FileNotFoundError", "PermissionError"), seen
    assert seen["broker"] != "connected", seen


NEIGHBOURS = """
    import errno, os, signal


    def main(backend, user_messenger):
        # Every process of the executor's container but this job's own: the executor, its
        # zygote, the warm job processes. SIGSTOP, then SIGCONT at once should it have worked.
        found = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            outcome = []
            for number in (signal.SIGSTOP, signal.SIGCONT):
                try:
                    os.kill(int(entry), number)
                    outcome.append("ok")
                except OSError as exc:
                    outcome.append(errno.errorcode[exc.errno])
            found[entry] = outcome
        return found
"""


async def test_a_job_cannot_signal_the_executor_or_its_other_processes(
    api: aiohttp.ClientSession, platform: Platform
):
    # uid 10001 without capabilities: no PID namespace for jobs, so they see the container's
    # processes, all of the executor's user; the job's Landlock domain keeps its signals in.
    if not landlock.scopes():
        pytest.skip("the kernel has no Landlock scopes (ABI 6, Linux 6.12)")
    found = await run(api, await upload(api, "neighbours", NEIGHBOURS))
    assert found.pop("1") == ["EPERM", "EPERM"]  # the executor itself
    assert found, "no zygote in sight"
    # ESRCH: a process that ended meanwhile (a warm job process taking its job).
    assert all(outcome in (["EPERM", "EPERM"], ["ESRCH", "ESRCH"]) for outcome in found.values())


SLEEPER = """
    import time


    def main(backend, user_messenger, seconds=5):
        print("started", flush=True)
        time.sleep(seconds)
        return {"slept": seconds}
"""


def running_jobs(platform: Platform, ops_url: str) -> float:
    with urllib.request.urlopen(f"{ops_url}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("qrt_executor_running_jobs"):
                return float(line.split()[-1])
    return 0.0


async def test_sigterm_drains_an_executor_container(api: aiohttp.ClientSession, platform: Platform):
    program_id = await upload(api, "sleeper", SLEEPER)
    async with api.post(
        "/jobs", json={"programId": program_id, "params": {"seconds": 6}}
    ) as response:
        job_id = (await response.json())["id"]
    await wait_for(api, job_id, {"Running"}, timeout=120)
    busy = await eventually(
        lambda: _busy(platform), "an executor container runs the job", until=lambda b: b is not None
    )
    podman("kill", "--signal", "TERM", busy.name)
    job = await wait_for(api, job_id, timeout=120)
    assert job["status"] == "Completed", await logs_of(api, job_id)
    assert job["attempt"] == 1  # finished where it ran, not handed back
    exit_code = podman("wait", busy.name, timeout=120).stdout.strip()
    assert exit_code == "0", platform.pods.logs(busy)[-3000:]
    # The other executor takes new work.
    assert (await run(api, program_id, seconds=0)) == {"slept": 0}


async def _busy(platform: Platform) -> Any:
    for executor in platform.executors:
        if running_jobs(platform, platform.ops_url(executor)) >= 1:
            return executor
    return None
