"""`podman kube play` of the rendered chart's Deployments and ConfigMap with the images just built:
every pod starts and its probes pass.

What podman 4.3 cannot play is adapted, and only that: Secrets become podman secrets (their
`data` as JSON, which is how podman reads a secretKeyRef), the broker and store URLs in them
point at the machine's RabbitMQ (through slirp4netns, which reaches the host's loopback) and at
a SQLite file in each pod's emptyDir, the scheduler's Lease variables go (podman has no
fieldRef to the namespace, and there is no API server), replicas are 1, and the images are the
local ones. Each component is rendered with ports of its own (`settings.opsPort`,
`gateway.port`, `device.repPort`/`pubPort`): podman publishes every containerPort on the host.
Probes are checked from outside, over HTTP, as the kubelet makes them: podman 4.3 turns an
httpGet probe into a curl command inside the container (the images have no curl) on a port it
cannot resolve by name.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.mesh import EXCHANGES, QUEUES, delete_namespace, free_port
from tests.support.waiting import eventually_sync

from .conftest import answers, why_not_usable
from .pods import SECCOMP_PROFILES, local_image, podman, render

pytestmark = [pytest.mark.containers, pytest.mark.timeout(600)]

HOST = "10.0.2.2"
"""The machine's loopback as slirp4netns shows it to a pod (allow_host_loopback)."""
BROKER = f"amqp://guest:guest@{HOST}:5672/"


def played_manifests(
    name: str, ports: dict[str, int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The Deployments and ConfigMaps to play, and the Secrets they read."""
    common = {"fullnameOverride": name, "gateway": {"port": ports["http"]}}
    renders = {
        "gateway": render({**common, "settings": {"opsPort": ports["gateway-ops"]}}),
        "scheduler": render({**common, "settings": {"opsPort": ports["scheduler"]}}),
        "executor": render({
            **common, "settings": {"opsPort": ports["executor"]},
            # No API server for Jobs: one-shot programs run in the executor's pod.
            "executor": {"oneShot": {"runner": "bubblewrap"}, "devices": [f"tcp://{HOST}:{ports['rep']}"]},
            "device": {"enabled": False},
        }),
        "device": render({
            **common, "settings": {"opsPort": ports["device"]},
            "device": {"repPort": ports["rep"], "pubPort": ports["pub"]},
        }),
    }  # fmt: skip
    played: list[dict[str, Any]] = []
    for component, docs in renders.items():
        for doc in docs:
            labels = doc["metadata"].get("labels", {})
            if labels.get("app.kubernetes.io/component") != component:
                continue
            if doc["kind"] == "ConfigMap":
                played.append(doc)
            elif doc["kind"] == "Deployment":
                doc["spec"]["replicas"] = 1
                for container in doc["spec"]["template"]["spec"]["containers"]:
                    container["image"] = local_image(container["image"])
                    container["env"] = [
                        e
                        for e in container.get("env", [])
                        if not e["name"].startswith("QRT_LEASE_")
                    ]
                played.append(doc)
    secrets = [doc for doc in renders["gateway"] if doc["kind"] == "Secret"]
    for secret in secrets:
        if "bus-url" in secret["data"]:
            secret["data"]["bus-url"] = base64.b64encode(BROKER.encode()).decode()
            secret["data"]["store-url"] = base64.b64encode(b"sqlite:////tmp/qrt.db").decode()
    return played, secrets


def succeeds(url: str) -> bool:
    return answers(url) == 200


def stopped(container: str) -> str | None:
    """Why `container` is not running (its state and last log lines), or None if it runs."""
    state = podman("inspect", "--format", "{{.State.Status}}", container, check=False)
    if state.stdout.strip() == "running":
        return None
    logs = podman("logs", container, check=False)
    return f"{container} is {state.stdout.strip()}: {(logs.stdout + logs.stderr)[-2000:]}"


def test_the_chart_s_deployments_play_and_their_probes_pass(tmp_path: Path, rabbitmq: None):
    why = why_not_usable()
    if why is not None:
        pytest.skip(f"podman cannot run the platform's containers here: {why}")
    name = f"qrtplay-{uuid.uuid4().hex[:6]}"
    ports = {
        k: free_port()
        for k in ("http", "gateway-ops", "scheduler", "executor", "device", "rep", "pub")
    }
    played, secrets = played_manifests(name, ports)
    assert {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in played if d["kind"] == "Deployment"} == {
        "gateway", "scheduler", "executor", "device"
    }  # fmt: skip
    manifest = tmp_path / "played.yaml"
    manifest.write_text(yaml.safe_dump_all(played))
    for secret in secrets:
        data = tmp_path / f"{secret['metadata']['name']}.json"
        data.write_text(json.dumps(secret["data"]))
        podman("secret", "create", secret["metadata"]["name"], str(data))
    try:
        podman(
            "kube", "play", "--network", "slirp4netns:allow_host_loopback=true",
            "--seccomp-profile-root", str(SECCOMP_PROFILES), str(manifest), timeout=300,
        )  # fmt: skip
        for doc in played:
            if doc["kind"] != "Deployment":
                continue
            pod = f"{doc['metadata']['name']}-pod-0"
            for container in doc["spec"]["template"]["spec"]["containers"]:
                by_name = {p["name"]: p["containerPort"] for p in container["ports"]}
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    target = container[probe]["httpGet"]
                    url = f"http://127.0.0.1:{by_name[target['port']]}{target['path']}"
                    eventually_sync(
                        partial(succeeds, url), f"{probe} {url} of {pod}", timeout=180,
                        give_up=partial(stopped, f"{pod}-{container['name']}"),
                    )  # fmt: skip
    finally:
        podman("kube", "down", str(manifest), check=False, timeout=120)
        for secret in secrets:
            podman("secret", "rm", secret["metadata"]["name"], check=False)
        for doc in played:  # podman keeps a ConfigMap as a volume of that name
            if doc["kind"] == "ConfigMap":
                podman("volume", "rm", "--force", doc["metadata"]["name"], check=False)
        queues = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "name"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        ours = [q.removeprefix(f"{name}.") for q in queues if q.startswith(f"{name}.")]
        asyncio.run(
            delete_namespace(
                "amqp://guest:guest@127.0.0.1:5672/", name, {*QUEUES, *ours}, EXCHANGES
            )
        )
