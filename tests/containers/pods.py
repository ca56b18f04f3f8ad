"""The platform run from its images with podman, as the chart runs it.

Each container gets what its Deployment in the rendered chart gives it: the image, the pod's and
the container's securityContext (user and group, read-only root, dropped capabilities, no
privilege escalation, the seccomp profile), the environment (Secrets read from the rendered
Secrets), the arguments and the volumes (an emptyDir is a fresh directory of the test, a
ConfigMap its rendered files, read-only). What only a cluster has is replaced for one machine,
and said where: the broker and store URLs (the machine's RabbitMQ on loopback, a SQLite file
shared by the gateway and the scheduler instead of MongoDB), host networking with free ports
instead of pod IPs and fixed ports, and no Kubernetes API.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "qrt"
CONTAINERS_CONF = ROOT / "containers" / "containers.conf"
TAG = os.environ.get("QRT_IMAGE_TAG", "dev")
SECCOMP_PROFILES = CHART / "files" / "seccomp"
"""Where the chart keeps the seccomp profiles its `Localhost` profiles name."""
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `podman args...` with the project's podman settings; its output as text."""
    env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF))}
    return subprocess.run(
        ["podman", *args], env=env, capture_output=True, text=True, check=check, timeout=timeout
    )


def render(values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The chart's manifests, rendered offline with `values`."""
    with helm_python.Chart.load(str(CHART)) as chart:
        files = chart.render(
            values=dict(values or {}), name="qrt", namespace="qrt", is_install=True
        )
    return [
        doc
        for path, text in sorted(files.items())
        if path.endswith(".yaml") and text.strip()
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def local_image(reference: str) -> str:
    """The image `make images` built for a chart's image reference (`qrt-executor:latest`)."""
    repository = reference.split("@")[0].rsplit(":", 1)[0]
    return f"localhost/{repository.rsplit('/', 1)[-1]}:{TAG}"


def security_arguments(pod: Mapping[str, Any], container: Mapping[str, Any]) -> list[str]:
    """podman's words for a pod's and its container's securityContext."""
    pod_context, context = pod.get("securityContext", {}), container.get("securityContext", {})
    merged = {**pod_context, **context}
    arguments = ["--user", f"{merged['runAsUser']}:{merged['runAsGroup']}"]
    if "fsGroup" in pod_context:
        arguments += ["--group-add", str(pod_context["fsGroup"])]
    if context.get("readOnlyRootFilesystem"):
        # podman would add writable tmpfs mounts of its own (/tmp, /run, /var/tmp); a pod has none.
        arguments += ["--read-only", "--read-only-tmpfs=false"]
    for capability in context.get("capabilities", {}).get("drop", []):
        arguments += ["--cap-drop", capability]
    for capability in context.get("capabilities", {}).get("add", []):
        arguments += ["--cap-add", capability]
    if context.get("allowPrivilegeEscalation") is False:
        arguments += ["--security-opt", "no-new-privileges"]
    seccomp = merged.get("seccompProfile", {"type": "RuntimeDefault"})
    if seccomp["type"] == "Localhost":
        profile = SECCOMP_PROFILES / seccomp["localhostProfile"]
        arguments += ["--security-opt", f"seccomp={profile}"]
    elif seccomp["type"] == "RuntimeDefault" and os.environ.get("QRT_TEST_RUNTIME_DEFAULT"):
        arguments += ["--security-opt", f"seccomp={os.environ['QRT_TEST_RUNTIME_DEFAULT']}"]
    else:
        assert seccomp["type"] == "RuntimeDefault", seccomp  # never Unconfined
    return arguments


@dataclass
class Started:
    """A container of the platform: its podman name and the host ports of its named ports."""

    name: str
    component: str
    ports: dict[str, int]
    volumes: dict[str, Path] = field(default_factory=dict)


class Pods:
    """Containers of one platform, made from one rendering of the chart.

    `root` holds the containers' volumes; every container is removed by `remove_all`.
    """

    def __init__(self, root: Path, docs: list[dict[str, Any]], bus_url: str) -> None:
        self.root = root
        self.docs = docs
        self.prefix = f"qrt-test-{uuid.uuid4().hex[:8]}"
        self.namespace = self.prefix
        """The platform's namespace on the shared broker (QRT_BUS_NAMESPACE)."""
        self.bus_url = bus_url
        self.store_dir = root / "store"
        self.store_dir.mkdir(mode=0o777)
        self.store_dir.chmod(0o777)
        self.started: list[Started] = []
        self.secrets = {
            doc["metadata"]["name"]: {
                key: base64.b64decode(value).decode() for key, value in doc["data"].items()
            }
            for doc in docs
            if doc["kind"] == "Secret"
        }
        self.config_maps = {
            doc["metadata"]["name"]: doc["data"] for doc in docs if doc["kind"] == "ConfigMap"
        }

    def deployment(self, component: str) -> dict[str, Any]:
        (doc,) = [
            d
            for d in self.docs
            if d["kind"] == "Deployment"
            and d["metadata"]["labels"]["app.kubernetes.io/component"] == component
        ]
        return doc

    def environment(self, container: Mapping[str, Any]) -> dict[str, str]:
        """A container's environment as the chart sets it (fieldRefs, which need the API, left out)."""
        env: dict[str, str] = {}
        for variable in container.get("env", []):
            if "value" in variable:
                env[variable["name"]] = str(variable["value"])
            elif "secretKeyRef" in variable.get("valueFrom", {}):
                ref = variable["valueFrom"]["secretKeyRef"]
                env[variable["name"]] = self.secrets[ref["name"]][ref["key"]]
        return env

    def volume_arguments(
        self, name: str, pod: Mapping[str, Any], container: Mapping[str, Any]
    ) -> tuple[list[str], dict[str, Path]]:
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        arguments: list[str] = []
        made: dict[str, Path] = {}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            directory = self.root / name / mount["name"]
            directory.mkdir(parents=True)
            if "emptyDir" in volume:
                directory.chmod(0o777)  # as the kubelet makes an emptyDir
                options = "rw"
            elif "configMap" in volume:
                for key, text in self.config_maps[volume["configMap"]["name"]].items():
                    (directory / key).write_text(text)
                options = "ro"
            elif "projected" in volume:
                # A service-account token (what must not leak), the cluster's CA, the namespace.
                for source in volume["projected"]["sources"]:
                    if "serviceAccountToken" in source:
                        path = directory / source["serviceAccountToken"]["path"]
                        path.write_text(f"token-of-{name}-{uuid.uuid4().hex}")
                    for item in source.get("configMap", source.get("downwardAPI", {})).get(
                        "items", []
                    ):
                        (directory / item["path"]).write_text("qrt")
                for path in directory.iterdir():
                    path.chmod(0o644)  # the kubelet's mode, readable by the container's user
                options = "ro"
            else:
                raise AssertionError(f"{name}: no stand-in for volume {volume}")
            made[mount["name"]] = directory
            arguments += ["-v", f"{directory}:{mount['mountPath']}:{options}"]
        return arguments, made

    def run(
        self,
        component: str,
        name: str,
        ports: Mapping[str, int],
        env: Mapping[str, str | None] = {},
        args: list[str] | None = None,
        extra: list[str] = [],  # noqa: B006 - never mutated
    ) -> Started:
        """Start `component`'s container as its Deployment describes it, named `name`.

        `ports` maps its port names to the host ports it serves on here; `env` overrides its
        environment (None removes a variable), `args` its arguments; `extra` are more podman
        arguments (a mount the chart does not have, said where it is used).
        """
        pod = self.deployment(component)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        environment = {**self.environment(container), **env}
        volume_arguments, volumes = self.volume_arguments(name, pod, container)
        command = [
            "run", "--detach", "--name", f"{self.prefix}-{name}", "--network", "host",
            *security_arguments(pod, container), *volume_arguments, *extra,
        ]  # fmt: skip
        for key, value in sorted(environment.items()):
            if value is not None:
                command += ["--env", f"{key}={value}"]
        command += [
            local_image(container["image"]),
            *(args if args is not None else container.get("args", [])),
        ]
        podman(*command)
        started = Started(f"{self.prefix}-{name}", component, dict(ports), volumes)
        self.started.append(started)
        return started

    def logs(self, started: Started) -> str:
        result = podman("logs", started.name, check=False)
        return result.stdout + result.stderr

    def state(self, started: Started) -> dict[str, Any]:
        inspected = podman("inspect", "--format", "{{json .State}}", started.name)
        state: dict[str, Any] = yaml.safe_load(inspected.stdout)
        return state

    def remove_all(self) -> None:
        names = podman("ps", "--all", "--format", "{{.Names}}", check=False).stdout.split()
        for name in [*(s.name for s in self.started), *names]:
            if name.startswith(f"{self.prefix}-"):
                podman("rm", "--force", "--time", "2", name, check=False)
        # Files the containers' user made in the volumes belong to uid 10001.
        shutil.rmtree(self.root, ignore_errors=True)
