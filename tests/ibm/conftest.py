"""The stock qiskit-ibm-runtime client, unchanged, against a running `qrt dev`, pointed at it
as the README's recipe says; nothing of it may leave the loopback interface."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from qiskit_ibm_runtime import QiskitRuntimeService

from tests.support.dev import DevServer
from tests.support.programs import merge_programs

from .loopback import LoopbackGuard

INSTANCE = "ibm-q/open/main"
CRN = f"crn:v1:qrt:private:quantum-computing:local:a/qrt:{INSTANCE}::"
DEVICE = "Starmon-5"
"""The simulated device `qrt dev` starts."""


def recipe_environment(url: str) -> dict[str, str]:
    """The environment variables of the README's recipe, for a qrt at `url`."""
    return {"IAM_URL": url, "QISKIT_FUNCTIONS_EXPERIMENTAL": "1"}


def connect(url: str, token: str = "any key", instance: str = CRN) -> QiskitRuntimeService:
    """QiskitRuntimeService with the README's recipe's arguments (its environment set)."""
    return QiskitRuntimeService(
        channel="ibm_quantum_platform",
        token=token,
        url=url,
        instance=instance,
        url_resolver=lambda url, instance, private_endpoint, channel: f"{url}/api/v1",
    )


@pytest.fixture(scope="package")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    root = tmp_path_factory.mktemp("ibm")
    server = DevServer(root / "data", merge_programs(root / "programs"),
                       env={"QRT_DEVICE_METRICS_INTERVAL": "1"})  # fmt: skip
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="package")
def service(dev: DevServer) -> Iterator[QiskitRuntimeService]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in recipe_environment(dev.url).items():
            patch.setenv(name, value)
        found = connect(dev.url)
        deadline = time.monotonic() + 60
        # The device backend appears once its executor has described it (first heartbeat).
        while DEVICE not in {b.name for b in found.backends()}:
            assert time.monotonic() < deadline, "the simulated device never became a backend"
            time.sleep(0.2)
        yield found


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[LoopbackGuard]:
    """Fails the test if anything in it looked up or connected to a host off the loopback."""
    guard = LoopbackGuard().install()
    try:
        yield guard
    finally:
        guard.uninstall()
    assert not guard.violations, f"traffic off the loopback interface: {guard.violations}"
