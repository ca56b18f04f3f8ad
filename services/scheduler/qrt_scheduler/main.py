"""Running the scheduler: `serve` is what `qrt scheduler` runs."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from typing import TYPE_CHECKING

from qrt_common.lifecycle import backing_services, serve_health, until_signalled
from qrt_common.metrics import ReadinessCheck
from qrt_common.settings import Settings

from .service import Scheduler

if TYPE_CHECKING:
    from .leader import LeaderElector

logger = logging.getLogger("qrt")


def lease_elector(settings: Settings) -> LeaderElector | None:
    """The Lease election among scheduler replicas, when QRT_LEASE_NAME names a Lease."""
    if not settings.lease_name:
        return None
    # The Kubernetes client is a large import that only an election needs.
    from qrt_common.kube import current_namespace, in_cluster_api

    from .leader import LeaderElector, LeaseTerms

    return LeaderElector(
        in_cluster_api(),
        name=settings.lease_name,
        namespace=settings.lease_namespace or current_namespace(),
        identity=f"{socket.gethostname()}-{os.getpid()}",
        terms=LeaseTerms.lasting(settings.lease_duration),
    )


async def serve(settings: Settings) -> None:
    """Schedule jobs until SIGINT or SIGTERM; with a Lease, only while this replica holds it
    (it exits 1 when it loses it, so that a fresh replica stands by)."""
    async with backing_services(settings) as (store, bus):
        checks: dict[str, ReadinessCheck] = {"store": store.is_ready, "bus": bus.is_ready}
        operations = await serve_health(settings, checks)
        scheduler = Scheduler(settings, store, bus)
        elector = lease_elector(settings)
        signalled = asyncio.create_task(until_signalled())
        watched: set[asyncio.Task[None]] = {signalled}
        try:
            if elector is not None:
                acquiring = asyncio.create_task(elector.acquire())
                watched.add(acquiring)
                await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if signalled.done():
                    return
                watched.remove(acquiring)  # acquired: from now on, watch for its loss
                watched.add(asyncio.create_task(elector.keep()))
            await scheduler.start()
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if signalled not in done:
                logger.error("leadership lost: exiting, so that a new replica stands by")
                raise SystemExit(1)
        finally:
            for task in watched:
                task.cancel()
            await scheduler.close()
            if elector is not None:
                await elector.release()
            await operations.cleanup()
