"""One-shot programs as Kubernetes Jobs, against kmock's emulated API server over real HTTP.

kmock keeps objects but runs no controllers: the tests play the Job controller and the kubelet
(they create the Job's pod, serve its log, and set its phase), and check what the executor asked
the cluster for and what it made of the answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import kmock
import pytest
from kmock import Request
from kubernetes import client

from qrt_common.jobs import JobStatus
from qrt_common.messages import EventKind, JobEvent
from qrt_executor.kubernetes_jobs import KubernetesRunner, ProgramPodSettings
from qrt_executor.oneshot import OneShotInput, run_one_shot
from qrt_executor.runner import JobOutput, Outcome
from tests.support.waiting import eventually

NAMESPACE = "qrt"
NAME = "qrt-program-job-1"
INPUTS = OneShotInput("job-1", "aer_simulator", json.dumps({"values": [1, 2]}), "{}")


@pytest.fixture
def api(kmock: kmock.KubernetesEmulator) -> Iterator[client.ApiClient]:
    # A real API server lists an empty collection; kmock must be told the resource exists.
    for resource in ("batch/v1/jobs", "v1/configmaps", "v1/pods"):
        kmock.resources[resource] = {}  # type: ignore[assignment]
    configuration = client.Configuration(host=str(kmock.url).rstrip("/"))
    with client.ApiClient(configuration) as api_client:
        yield api_client


def runner(api: client.ApiClient) -> KubernetesRunner:
    spec = ProgramPodSettings(
        namespace=NAMESPACE, image="qrt-executor:test", labels={"app.kubernetes.io/instance": "qrt"}
    )
    return KubernetesRunner(api, spec)


async def call(function: Any, *args: Any, **kwargs: Any) -> Any:
    # The client blocks, and kmock serves from this test's event loop: call it from a thread.
    return await asyncio.to_thread(function, *args, **kwargs)


async def stored(api: client.ApiClient, kind: str) -> list[Any]:
    if kind == "jobs":
        listed = await call(client.BatchV1Api(api).list_namespaced_job, NAMESPACE)
    else:
        listed = await call(client.CoreV1Api(api).list_namespaced_config_map, NAMESPACE)
    return list(listed.items)


async def the_job(api: client.ApiClient) -> Any:
    return (await eventually(lambda: stored(api, "jobs"), "the program's Job is created"))[0]


async def pod_is(api: client.ApiClient, phase: str, exit_code: int | None = None) -> None:
    """Play the kubelet: the Job's pod, in `phase`."""
    core = client.CoreV1Api(api)
    status: dict[str, Any] = {"phase": phase}
    if exit_code is not None:
        status["containerStatuses"] = [
            {"name": "program", "ready": False, "restartCount": 0, "image": "i", "imageID": "",
             "state": {"terminated": {"exitCode": exit_code}}}
        ]  # fmt: skip
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"{NAME}-abcde", "namespace": NAMESPACE,
                     "labels": {"qrt.io/program-job": NAME}},
        "spec": {"containers": [{"name": "program", "image": "i"}]},
        "status": status,
    }  # fmt: skip
    existing = await call(core.list_namespaced_pod, NAMESPACE)
    if existing.items:
        await call(
            core.patch_namespaced_pod, pod["metadata"]["name"], NAMESPACE, {"status": status}
        )
    else:
        await call(core.create_namespaced_pod, NAMESPACE, pod)


def collector() -> tuple[list[JobEvent], JobOutput]:
    events: list[JobEvent] = []

    async def send(batch: list[JobEvent]) -> None:
        events.extend(batch)

    return events, JobOutput("job-1", 1, "ex", send, max_log_bytes=1 << 20)


async def execute(
    api: client.ApiClient, stop: asyncio.Future[JobStatus] | None = None, time_limit: float = 30
) -> tuple[asyncio.Task[Outcome], list[JobEvent], JobOutput]:
    events, output = collector()
    stop = stop or asyncio.get_running_loop().create_future()
    command = ["python", "main.py"]
    task = asyncio.create_task(
        run_one_shot(runner(api), command, "/app/programs/sum", INPUTS, output,
                     time_limit=time_limit, stop=stop)
    )  # fmt: skip
    return task, events, output


async def test_a_program_runs_as_a_locked_down_job_and_its_log_gives_the_result(api, kmock):
    task, events, output = await execute(api)
    job = await the_job(api)
    pod = job.spec.template.spec
    container = pod.containers[0]
    assert job.metadata.name == NAME and job.spec.backoff_limit == 0
    assert job.spec.template.metadata.labels["app.kubernetes.io/component"] == "program"
    assert job.spec.template.metadata.labels["app.kubernetes.io/instance"] == "qrt"
    assert container.command == ["python", "main.py"]
    assert container.working_dir == "/app/programs/sum" and container.image == "qrt-executor:test"
    assert {(m.name, m.mount_path, m.read_only) for m in container.volume_mounts} >= {
        ("input", "/var/input", True)
    }
    assert pod.automount_service_account_token is False and pod.restart_policy == "Never"
    assert container.security_context.read_only_root_filesystem is True
    assert container.security_context.capabilities.drop == ["ALL"]
    config_map = (await stored(api, "configmaps"))[0]
    assert json.loads(config_map.data["data.json"]) == {"values": [1, 2]}

    log_reads: list[Request] = []
    pod_log = f"get /api/v1/namespaces/{NAMESPACE}/pods/{NAME}-abcde/log"
    kmock[pod_log] << b'summing\nPlanQK:Job:Result: {"sum": 3}\nbye\n' >> log_reads
    await pod_is(api, "Running")
    # The runner reads the log once it saw the pod running: the pod may end after that.
    await eventually(lambda: log_reads, "the runner reads the running pod's log")
    await pod_is(api, "Succeeded", exit_code=0)
    outcome = await asyncio.wait_for(task, 10)
    await output.close()

    assert outcome.status is JobStatus.COMPLETED, outcome
    results = [e.data for e in events if e.kind is EventKind.RESULT]
    assert [json.loads(r or "") for r in results] == [{"sum": 3}]
    log = "".join(e.data or "" for e in events if e.kind is EventKind.LOG)
    assert "summing" in log and "bye" in log
    assert await stored(api, "jobs") == [] and await stored(api, "configmaps") == []


async def test_a_failing_pod_fails_the_job(api, kmock):
    task, _, output = await execute(api)
    await the_job(api)
    kmock[f"get /api/v1/namespaces/{NAMESPACE}/pods/{NAME}-abcde/log"] << b"Traceback: boom\n"
    await pod_is(api, "Failed", exit_code=3)
    outcome = await asyncio.wait_for(task, 10)
    await output.close()
    assert outcome.status is JobStatus.FAILED and "code 3" in (outcome.reason or "")
    assert await stored(api, "jobs") == []


async def test_cancel_and_the_time_limit_delete_the_job(api, kmock):
    stop: asyncio.Future[JobStatus] = asyncio.get_running_loop().create_future()
    task, _, output = await execute(api, stop=stop)
    await the_job(api)
    await pod_is(api, "Pending")
    stop.set_result(JobStatus.CANCELLED)
    outcome = await asyncio.wait_for(task, 10)
    await output.close()
    assert outcome.status is JobStatus.CANCELLED
    assert await stored(api, "jobs") == [] and await stored(api, "configmaps") == []

    task, _, output = await execute(api, time_limit=0.5)
    await the_job(api)
    outcome = await asyncio.wait_for(task, 10)
    await output.close()
    assert outcome.status is JobStatus.CANCELLED_RAN_TOO_LONG
    assert await stored(api, "jobs") == []


async def test_an_api_server_that_refuses_fails_the_job_with_the_reason(api, kmock):
    kmock["post"] << 403 << {"kind": "Status", "code": 403, "reason": "Forbidden"}
    task, _, output = await execute(api)
    outcome = await asyncio.wait_for(task, 10)
    await output.close()
    assert outcome.status is JobStatus.FAILED
    assert "could not create the program's Kubernetes Job" in (outcome.reason or "")
