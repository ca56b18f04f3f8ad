"""Running an executor: `serve` is what `qrt executor` runs."""

from __future__ import annotations

import logging

from qrt_common.errors import ConfigurationError
from qrt_common.lifecycle import connect_bus, serve_health, until_signalled
from qrt_common.metrics import ReadinessCheck
from qrt_common.processes import keep_proc_entry_private
from qrt_common.registry import ProgramRegistry
from qrt_common.settings import Settings

from .oneshot import OneShotRunner
from .service import Executor

logger = logging.getLogger("qrt")


def one_shot_runner(settings: Settings) -> OneShotRunner | None:
    """Kubernetes Jobs for one-shot programs when QRT_ONESHOT_RUNNER says so; else None, the
    default (bubblewrap on this machine). Raises ConfigurationError without QRT_PROGRAM_IMAGE."""
    if settings.oneshot_runner != "kubernetes":
        return None
    # The Kubernetes client is a large import that only this runner needs.
    from qrt_common.kube import current_namespace, in_cluster_api

    from .kubernetes_jobs import KubernetesRunner, ProgramPodSettings

    if not settings.program_image:
        raise ConfigurationError("QRT_ONESHOT_RUNNER=kubernetes needs QRT_PROGRAM_IMAGE")
    pods = ProgramPodSettings(
        namespace=settings.program_namespace or current_namespace(),
        image=settings.program_image,
        labels=settings.program_pod_label_map,
        cpu=settings.program_cpu,
        memory=settings.program_memory,
    )
    return KubernetesRunner(in_cluster_api(), pods)


async def serve(settings: Settings) -> None:
    """Run assignments until SIGINT or SIGTERM; the first signal drains (running jobs finish
    for QRT_DRAIN_SECONDS, the rest are handed back), a second one stops at once."""
    # Job processes of the same user (QRT_JOB_SANDBOX=off, as in the chart) must not read this
    # process's environment, which holds the broker's and the store's passwords.
    keep_proc_entry_private()
    bus = await connect_bus(settings)
    executor = Executor(
        settings, bus, ProgramRegistry.of(settings), one_shot=one_shot_runner(settings)
    )
    await executor.start()
    checks: dict[str, ReadinessCheck] = {"bus": bus.is_ready, "devices": executor.devices.is_ready}
    operations = await serve_health(settings, checks)

    async def drain() -> None:
        logger.info("draining", extra={"seconds": settings.drain_seconds})
        await executor.drain(settings.drain_seconds)

    try:
        await until_signalled(drain)
    finally:
        await operations.cleanup()
        await executor.close()
        await bus.close()
