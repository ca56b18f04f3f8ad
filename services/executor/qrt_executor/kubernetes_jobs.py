"""One-shot programs as Kubernetes Jobs: how executors in a cluster run them.

Each execution becomes a ConfigMap holding `data.json` and `params.json`, mounted read-only at
`/var/input`, and a Job of one pod that runs the program's command in its project directory of
the program image (by default the executor's own image, which carries the bundled programs). The
pod carries the `program` component label, which the chart's NetworkPolicy cuts off from every
network; it runs as a non-root user on a read-only root file system with no service-account
token. Its log (stdout and stderr, as Kubernetes keeps them) streams into the job's log;
cancel and the time limit delete the Job; the Job and the ConfigMap go when the execution ends.

The `kubernetes` client is synchronous: its calls run in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from qrt_common.errors import SandboxUnavailable

from .oneshot import INPUT_DIR, OneShotInput, OneShotProcess, OneShotRunner

logger = logging.getLogger(__name__)

PROGRAM_LABELS = {"app.kubernetes.io/part-of": "qrt", "app.kubernetes.io/component": "program"}
"""Labels of every program pod: the NetworkPolicy for programs selects them."""
POLL_SECONDS = 0.5
"""How often a pod's phase is read while waiting for it to start or end."""
KEEP_FINISHED_SECONDS = 300
"""ttlSecondsAfterFinished: the cluster removes a Job the executor could not (it died)."""


@dataclass(frozen=True, slots=True)
class ProgramPodSettings:
    """Where and how program pods run."""

    namespace: str
    image: str
    labels: dict[str, str] = field(default_factory=dict)
    """Added to PROGRAM_LABELS (e.g. the release's instance label, for the NetworkPolicy)."""
    cpu: str = "1"
    memory: str = "1Gi"
    deadline_seconds: int = 24 * 3600
    """activeDeadlineSeconds: a backstop; the executor's time limit deletes the Job first."""


def _name(job_id: str) -> str:
    return f"qrt-program-{job_id}"[:63].rstrip("-")


class KubernetesRunner(OneShotRunner):
    """Runs one-shot programs as Kubernetes Jobs."""

    def __init__(self, api: client.ApiClient, pods: ProgramPodSettings) -> None:
        self._core = client.CoreV1Api(api)
        self._batch = client.BatchV1Api(api)
        self.pods = pods

    async def start(
        self, command: Sequence[str], project_dir: str, inputs: OneShotInput
    ) -> OneShotProcess:
        name = _name(inputs.job_id)
        try:
            await asyncio.to_thread(self._create, name, list(command), project_dir, inputs)
        except (ApiException, HTTPError, OSError) as exc:
            await asyncio.to_thread(self.delete, name)
            reason = exc.reason if isinstance(exc, ApiException) else exc
            message = f"could not create the program's Kubernetes Job: {reason}"
            raise SandboxUnavailable(message) from exc
        return _JobProcess(self, name)

    def _create(
        self, name: str, command: list[str], project_dir: str, inputs: OneShotInput
    ) -> None:
        namespace, labels = self.pods.namespace, {**self.pods.labels, **PROGRAM_LABELS}
        metadata = client.V1ObjectMeta(name=name, namespace=namespace, labels=labels)
        self._core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=metadata, data={"data.json": inputs.data, "params.json": inputs.params}
            ),
        )
        environment = {"QRT_JOB_ID": inputs.job_id, "QRT_BACKEND": inputs.backend}
        container = client.V1Container(
            name="program",
            image=self.pods.image,
            command=command,
            working_dir=project_dir,
            env=[client.V1EnvVar(name=k, value=v) for k, v in environment.items()],
            volume_mounts=[
                client.V1VolumeMount(name="input", mount_path=INPUT_DIR, read_only=True),
                client.V1VolumeMount(name="tmp", mount_path="/tmp"),
            ],
            resources=client.V1ResourceRequirements(
                requests={"cpu": self.pods.cpu, "memory": self.pods.memory},
                limits={"cpu": self.pods.cpu, "memory": self.pods.memory},
            ),
            security_context=client.V1SecurityContext(
                allow_privilege_escalation=False,
                read_only_root_filesystem=True,
                run_as_non_root=True,
                capabilities=client.V1Capabilities(drop=["ALL"]),
            ),
        )
        pod = client.V1PodSpec(
            containers=[container],
            restart_policy="Never",
            automount_service_account_token=False,
            enable_service_links=False,
            security_context=client.V1PodSecurityContext(
                run_as_non_root=True,
                run_as_user=10001,
                seccomp_profile=client.V1SeccompProfile(type="RuntimeDefault"),
            ),
            volumes=[
                client.V1Volume(name="input", config_map=client.V1ConfigMapVolumeSource(name=name)),
                client.V1Volume(name="tmp", empty_dir=client.V1EmptyDirVolumeSource()),
            ],
        )
        job = client.V1Job(
            metadata=metadata,
            spec=client.V1JobSpec(
                backoff_limit=0,  # a program runs once: a failure is the job's failure
                active_deadline_seconds=self.pods.deadline_seconds,
                ttl_seconds_after_finished=KEEP_FINISHED_SECONDS,
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels={**labels, "qrt.io/program-job": name}),
                    spec=pod,
                ),
            ),
        )
        self._batch.create_namespaced_job(namespace, job)

    def pod(self, name: str) -> Any:
        """The Job's pod, once the cluster created it."""
        pods = self._core.list_namespaced_pod(
            self.pods.namespace, label_selector=f"qrt.io/program-job={name}"
        )
        mine = [
            pod
            for pod in pods.items
            if (pod.metadata.labels or {}).get("qrt.io/program-job") == name
        ]
        return mine[0] if mine else None

    def stream_log(self, pod_name: str, feed: Any, stopped: threading.Event) -> None:
        """Follow the pod's log until it ends, feeding each chunk to `feed` (in this thread)."""
        response = self._core.read_namespaced_pod_log(
            pod_name, self.pods.namespace, follow=True, _preload_content=False
        )
        try:
            for chunk in response.stream(4096):
                if stopped.is_set():
                    break
                feed(chunk)
        finally:
            response.release_conn()

    def delete(self, name: str) -> None:
        """Delete the Job (its pod with it) and its input, whatever is left of them."""
        namespace = self.pods.namespace
        with contextlib.suppress(ApiException, HTTPError, OSError):
            self._batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        with contextlib.suppress(ApiException, HTTPError, OSError):
            self._core.delete_namespaced_config_map(name, namespace)


class _JobProcess(OneShotProcess):
    """A program's Job, seen as a process: its log as stdout, its container's exit code."""

    def __init__(self, runner: KubernetesRunner, name: str) -> None:
        self._runner, self._name = runner, name
        self.stdout = asyncio.StreamReader()
        self.stderr = None  # a pod's log holds both streams
        self._stopped = threading.Event()
        self._killed = asyncio.Event()
        self._log: asyncio.Future[None] | None = None
        self._deleting: asyncio.Future[None] | None = None

    async def wait(self) -> int:
        pod = await self._until(lambda p: p is not None and p.status.phase != "Pending")
        if pod is None:  # killed before it started
            self.stdout.feed_eof()
            return -9
        loop = asyncio.get_running_loop()

        def feed(chunk: bytes) -> None:
            loop.call_soon_threadsafe(self.stdout.feed_data, chunk)

        self._log = asyncio.ensure_future(
            asyncio.to_thread(self._runner.stream_log, pod.metadata.name, feed, self._stopped)
        )
        pod = await self._until(lambda p: p is None or p.status.phase in ("Succeeded", "Failed"))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._log), 10)
        self.stdout.feed_eof()
        return -9 if pod is None else _exit_code(pod)

    async def _until(self, done: Any) -> Any:
        """Poll the pod until `done(pod)` or the Job is killed (then None)."""
        while not self._killed.is_set():
            try:
                pod = await asyncio.to_thread(self._runner.pod, self._name)
            except (ApiException, HTTPError, OSError) as exc:
                logger.warning("program pod not readable: %s", exc)
                pod = None
            else:
                if done(pod):
                    return pod
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._killed.wait(), POLL_SECONDS)
        return None

    def kill(self) -> None:
        self._killed.set()
        self._stopped.set()
        # Deleting the Job kills its pod; close() waits for the deletion.
        self._deleting = asyncio.ensure_future(asyncio.to_thread(self._runner.delete, self._name))

    async def close(self) -> None:
        if self._deleting is None:  # not killed: nothing is deleting the Job yet
            self.kill()
        assert self._deleting is not None
        await self._deleting
        if self._log is not None:
            self._log.cancel()


def _exit_code(pod: Any) -> int:
    for status in pod.status.container_statuses or []:
        terminated = status.state.terminated if status.state else None
        if terminated is not None:
            return int(terminated.exit_code)
    return 0 if pod.status.phase == "Succeeded" else 1
