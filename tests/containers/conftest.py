"""The platform from its images: gateway, scheduler, two executors and the device as podman
containers locked down as the chart runs them, on the machine's RabbitMQ (`make test-containers`)."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio

from tests.support.mesh import EXCHANGES, QUEUES, RABBITMQ_URL, delete_namespace, free_port
from tests.support.waiting import eventually_sync

from .pods import ROOT, Pods, Started, local_image, podman, render

STORE = "/var/lib/qrt"
"""Where the gateway and the scheduler share their SQLite store (the chart has MongoDB)."""


def why_not_usable() -> str | None:
    """Why podman cannot run the platform's containers here, or None."""
    checked = subprocess.run(
        [str(ROOT / "containers" / "usable.sh")], capture_output=True, text=True, check=False
    )
    if checked.returncode != 0:
        return checked.stderr.strip() or "containers/usable.sh failed"
    for component in ("api-gateway", "scheduler", "executor", "device-2300"):
        image = local_image(f"qrt-{component}:latest")
        if podman("image", "exists", image, check=False).returncode != 0:
            return f"the image {image} is not built (make images)"
    return None


@dataclass
class Platform:
    pods: Pods
    url: str
    key: str
    gateway: Started
    scheduler: Started
    executors: list[Started]
    device: Started

    @property
    def containers(self) -> list[Started]:
        return [self.gateway, self.scheduler, *self.executors, self.device]

    def ops_url(self, started: Started) -> str:
        port = started.ports["http" if started.component == "gateway" else "ops"]
        return f"http://127.0.0.1:{port}"


def answers(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def wait_ready(pods: Pods, started: Started, url: str, timeout: float = 180) -> None:
    """Wait until `url` (a readiness probe) answers 200, failing at once if the container ends."""

    def ended() -> str | None:
        state = pods.state(started)
        if state["Running"]:
            return None
        return f"{started.name} exited with {state['ExitCode']}: {pods.logs(started)[-3000:]}"

    eventually_sync(lambda: answers(url) == 200, f"{url} ready", timeout=timeout, give_up=ended)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, rabbitmq: None) -> Iterator[Platform]:
    why = why_not_usable()
    if why is not None:
        pytest.skip(f"podman cannot run the platform's containers here: {why}")
    docs = render()
    pods = Pods(tmp_path_factory.mktemp("pods"), docs, RABBITMQ_URL)
    rep, pub = free_port(), free_port()
    # Every service on loopback, in this platform's namespace of the shared broker.
    common = {
        "QRT_HOST": "127.0.0.1",
        "QRT_BUS_URL": RABBITMQ_URL,
        "QRT_BUS_NAMESPACE": pods.namespace,
    }
    store = {"QRT_STORE_URL": f"sqlite:///{STORE}/qrt.db"}
    shared_store = ["-v", f"{pods.store_dir}:{STORE}"]
    try:
        device_ops = free_port()
        chart_args = pods.deployment("device")["spec"]["template"]["spec"]["containers"][0]["args"]
        device_args = [
            a.replace("tcp://*:4203", f"tcp://127.0.0.1:{rep}").replace("tcp://*:4204", f"tcp://127.0.0.1:{pub}")
            for a in chart_args
        ]  # fmt: skip
        assert device_args != chart_args
        device = pods.run(
            "device", "device", {"rep": rep, "pub": pub, "ops": device_ops},
            env={"QRT_OPS_PORT": str(device_ops), "QRT_HOST": "127.0.0.1"}, args=device_args,
        )  # fmt: skip
        scheduler_ops = free_port()
        scheduler = pods.run(
            "scheduler", "scheduler", {"ops": scheduler_ops},
            env={**common, **store, "QRT_OPS_PORT": str(scheduler_ops),
                 # One scheduler and no API server here: no Lease.
                 "QRT_LEASE_NAME": None, "QRT_LEASE_DURATION": None},
            extra=shared_store,
        )  # fmt: skip
        gateway_port = free_port()
        gateway = pods.run(
            "gateway", "gateway", {"http": gateway_port},
            env={**common, **store, "QRT_PORT": str(gateway_port), "QRT_OPS_PORT": str(gateway_port)},
            extra=shared_store,
        )  # fmt: skip
        executors = []
        for number in range(2):
            ops = free_port()
            executors.append(
                pods.run(
                    "executor",
                    f"executor-{number}",
                    {"ops": ops},
                    env={
                        **common,
                        "QRT_OPS_PORT": str(ops),
                        "QRT_EXECUTOR_ID": f"{pods.namespace}-ex{number}",
                        "QRT_DEVICES": f"tcp://127.0.0.1:{rep}",
                        # No API server here for the chart's "kubernetes" runner.
                        "QRT_ONESHOT_RUNNER": "bubblewrap",
                    },
                    # bubblewrap mounts a /proc of its own, which the kernel refuses under a
                    # masked /proc (a pod's procMount: Default): unmasked here, for that runner.
                    extra=["--security-opt", "unmask=/proc/*"],
                )
            )
        made = Platform(
            pods, f"http://127.0.0.1:{gateway_port}",
            pods.environment(pods.deployment("gateway")["spec"]["template"]["spec"]["containers"][0])["QRT_BOOTSTRAP_ADMIN_KEY"],
            gateway, scheduler, executors, device,
        )  # fmt: skip
        for started in made.containers:
            probe = pods.deployment(started.component)["spec"]["template"]["spec"]["containers"][0]
            path = probe["readinessProbe"]["httpGet"]["path"]
            wait_ready(pods, started, f"{made.ops_url(started)}{path}")
        yield made
    finally:
        pods.remove_all()
        queues = [*QUEUES, *(f"executor.{pods.namespace}-ex{n}" for n in range(2))]
        asyncio.run(delete_namespace(RABBITMQ_URL, pods.namespace, queues, EXCHANGES))


@pytest_asyncio.fixture(loop_scope="function")
async def api(platform: Platform) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {platform.key}"}
    async with aiohttp.ClientSession(base_url=platform.url, headers=headers) as session:
        yield session
