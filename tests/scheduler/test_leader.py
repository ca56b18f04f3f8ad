"""Leader election of scheduler replicas, against kmock's emulated Kubernetes API over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import kmock
import pytest
from kubernetes import client

from qrt_scheduler.leader import LeaderElector, LeaseTerms
from tests.support.waiting import eventually

FAST = LeaseTerms(duration=1.0, renew_deadline=0.6, retry_period=0.1)


@pytest.fixture
def api(kmock: kmock.KubernetesEmulator) -> Iterator[client.ApiClient]:
    configuration = client.Configuration(host=str(kmock.url).rstrip("/"))
    with client.ApiClient(configuration) as api_client:
        yield api_client


def elector(api: client.ApiClient, identity: str, terms: LeaseTerms = FAST) -> LeaderElector:
    return LeaderElector(api, name="qrt-scheduler", namespace="qrt", identity=identity, terms=terms)


async def read_lease(api: client.ApiClient) -> Any:
    # The client blocks, and kmock serves from this test's event loop: call it from a thread.
    leases = client.CoordinationV1Api(api)
    return await asyncio.to_thread(leases.read_namespaced_lease, "qrt-scheduler", "qrt")


async def holder(api: client.ApiClient) -> str | None:
    return (await read_lease(api)).spec.holder_identity  # type: ignore[no-any-return]


async def test_the_first_replica_leads_and_the_second_waits_until_it_lets_go(api):
    first, second = elector(api, "a"), elector(api, "b")
    await asyncio.wait_for(first.acquire(), 5)
    assert first.is_leader and await holder(api) == "a"
    waiting = asyncio.create_task(second.acquire())
    keeping = asyncio.create_task(first.keep())
    # Time well past the lease duration, over which the holder renews it.
    lease = await eventually(
        lambda: read_lease(api),
        "the holder renews the lease past 2.5 durations",
        until=lambda lease: (
            lease.spec.renew_time - lease.spec.acquire_time > timedelta(seconds=2.5 * FAST.duration)
        ),
    )
    assert lease.spec.holder_identity == "a"
    assert not waiting.done() and await holder(api) == "a"
    keeping.cancel()
    await first.release()
    await asyncio.wait_for(waiting, 1)  # no need to wait for the lease to expire
    assert second.is_leader and not first.is_leader and await holder(api) == "b"


async def test_a_holder_that_stops_renewing_is_replaced_and_learns_it_lost(api):
    first, second = elector(api, "a"), elector(api, "b")
    await first.acquire()
    await asyncio.wait_for(second.acquire(), 3)  # after the 1 s lease ran out
    assert await holder(api) == "b"
    assert (await read_lease(api)).spec.lease_transitions == 1
    # The old holder comes back: it cannot renew a lease that is someone else's now.
    await asyncio.wait_for(first.keep(), 3)
    assert not first.is_leader
    await first.release()  # a lost leader releases nothing
    assert await holder(api) == "b"


async def test_a_lost_race_for_the_lease_is_no_error(api, kmock):
    first = elector(api, "a")
    await first.acquire()
    await first.release()
    conflict = kmock["patch"] << 409 << {"kind": "Status", "code": 409, "reason": "Conflict"}
    second = elector(api, "b")
    racing = asyncio.create_task(second.acquire())
    # Lost, and tried again: a lost race does not end the wait.
    await eventually(lambda: len(conflict), "two races lost", until=lambda n: n >= 2)
    assert not racing.done() and not second.is_leader
    racing.cancel()


async def test_an_unreachable_api_server_means_not_leading(caplog):
    configuration = client.Configuration(host="http://127.0.0.1:9")  # the discard port: refused
    with client.ApiClient(configuration) as api:
        lonely = elector(api, "a", LeaseTerms(duration=1.0, renew_deadline=0.3, retry_period=0.1))
        attempt = asyncio.create_task(lonely.acquire())

        def failures() -> list[str]:
            return [r.message for r in caplog.records if "lease not acquired" in r.message]

        # Failed, and tried again: an unreachable server does not end the wait.
        await eventually(failures, "two attempts failed", until=lambda seen: len(seen) >= 2)
        assert not attempt.done() and not lonely.is_leader
        attempt.cancel()
