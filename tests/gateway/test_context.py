"""What handlers do with the gateway's collaborators together: submit and cancel jobs, and know
the backends a job may ask for from the executors' heartbeats."""

from __future__ import annotations

import types
from typing import Any

import pytest

from qrt_common.accounts import SINGLE_USER, Principal, Role
from qrt_common.errors import BusUnavailable, Conflict, InvalidInput, NotFound
from qrt_common.jobs import Job, JobStatus
from qrt_common.messages import (
    CANCEL_QUEUE,
    HEARTBEAT_TOPIC,
    SUBMITTED_QUEUE,
    CancelJob,
    Heartbeat,
    JobSubmitted,
)
from qrt_common.wire import decode, encode
from qrt_gateway import context
from tests.support.waiting import eventually

from .conftest import Harness, MakeGateway

SIMULATORS = ["aer_simulator", "aer_simulator_statevector"]


def a_job(job_id: str = "j1", **fields: Any) -> Job:
    values: dict[str, Any] = {"program_id": "noop", "backend": "aer_simulator", "params": "{}",
              "max_execution_time": 60, "hub": "h", "group": "g", "project": "p",
              "priority": 4} | fields  # fmt: skip
    return Job(id=job_id, **values)


def beat(executor_id: str, devices: list[str], leaving: bool = False) -> Heartbeat:
    return Heartbeat(executor_id, 2, ["aer_simulator", *devices], {}, devices, leaving=leaving)


class Clock:
    """`time.monotonic` as the gateway's context module sees it, moved by the test."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(context, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    return clock


async def test_submit_stores_the_job_and_announces_it_to_the_scheduler(gw: Harness):
    job = a_job()
    await gw.gateway.submit(job)
    assert await gw.store.get_job("j1") == job
    [body] = await gw.sent(SUBMITTED_QUEUE)
    announced = decode(JobSubmitted, body)
    assert announced == JobSubmitted.of(job)
    assert (announced.instance, announced.priority) == ("h/g/p", 4)


@pytest.mark.parametrize(
    "refusal",
    [BusUnavailable("the broker is down"), RuntimeError("the broker is down")],
    ids=["unavailable", "any error"],
)
async def test_a_job_the_bus_refuses_is_not_kept(gw: Harness, refusal):
    gw.bus.refused, gw.bus.refusal = {SUBMITTED_QUEUE}, refusal
    with pytest.raises(BusUnavailable) as caught:
        await gw.gateway.submit(a_job())
    assert (
        str(caught.value) == "job not accepted, the message bus is unavailable: the broker is down"
    )
    assert await gw.store.get_job("j1") is None
    gw.bus.refused = set()
    assert await gw.sent(SUBMITTED_QUEUE) == []


async def test_find_job_raises_not_found_naming_the_job(gw: Harness):
    await gw.store.add_job(a_job())
    assert (await gw.gateway.find_job("j1", SINGLE_USER)).id == "j1"
    with pytest.raises(NotFound, match=r"^job 'nope' not found$"):
        await gw.gateway.find_job("nope", SINGLE_USER)


async def test_find_job_finds_only_jobs_of_the_caller_s_instances(gw: Harness):
    await gw.store.add_job(a_job())  # of h/g/p
    reader = Principal("bob", roles={"h/g/p": Role.READER})
    assert (await gw.gateway.find_job("j1", reader)).id == "j1"
    outsider = Principal("eve", roles={"h/g/other": Role.ADMIN})
    with pytest.raises(NotFound, match=r"^job 'j1' not found$"):  # the same as a missing one
        await gw.gateway.find_job("j1", outsider)


async def test_program_finds_bundled_programs(gw: Harness):
    found = await gw.gateway.program("noop")
    assert found is not None and found.bundled and found.max_execution_time == 60
    assert await gw.gateway.program("nope") is None


@pytest.mark.parametrize("status", [JobStatus.QUEUED, JobStatus.RUNNING])
async def test_cancel_of_a_pending_job_asks_the_scheduler(gw: Harness, status):
    await gw.store.add_job(a_job(status=status))
    await gw.gateway.cancel(await gw.job("j1"), "in words")
    assert [decode(CancelJob, body) for body in await gw.sent(CANCEL_QUEUE)] == [CancelJob("j1")]


@pytest.mark.parametrize(
    "status",
    [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.CANCELLED_RAN_TOO_LONG],
)
async def test_cancel_of_an_ended_job_is_a_conflict_in_the_callers_words(gw: Harness, status):
    await gw.store.add_job(a_job(status=status))
    with pytest.raises(Conflict) as caught:
        await gw.gateway.cancel(await gw.job("j1"), "SUCCEEDED")
    assert str(caught.value) == "job 'j1' has already ended: SUCCEEDED"
    assert await gw.sent(CANCEL_QUEUE) == []


async def test_only_the_simulators_are_backends_until_an_executor_offers_a_device(gw: Harness):
    assert gw.gateway.backends() == SIMULATORS
    assert gw.gateway.devices() == []


async def test_devices_of_live_executors_are_backends(gw: Harness, clock: Clock):
    await gw.gateway.on_heartbeat(encode(beat("e1", ["starmon-5"])))
    await gw.gateway.on_heartbeat(encode(beat("e2", ["spin-2", "starmon-5"])))
    await gw.gateway.on_heartbeat(encode(beat("e3", [])))
    assert gw.gateway.backends() == [*SIMULATORS, "spin-2", "starmon-5"]
    assert gw.gateway.devices() == ["spin-2", "starmon-5"]


async def test_a_device_named_like_a_simulator_is_not_a_device(gw: Harness, clock: Clock):
    await gw.gateway.on_heartbeat(encode(beat("e1", ["aer_simulator"])))
    assert gw.gateway.backends() == SIMULATORS and gw.gateway.devices() == []


async def test_a_device_expires_once_its_executor_is_silent_past_the_timeout(
    make_gateway: MakeGateway, clock: Clock
):
    gw = await make_gateway(heartbeat_timeout=5.0)
    await gw.gateway.on_heartbeat(encode(beat("e1", ["starmon-5"])))
    await gw.gateway.on_heartbeat(encode(beat("e2", ["spin-2"])))
    clock.now += 3.0
    await gw.gateway.on_heartbeat(encode(beat("e2", ["spin-2"])))
    clock.now += 2.0
    assert gw.gateway.devices() == ["spin-2", "starmon-5"]
    clock.now += 0.001
    assert gw.gateway.devices() == ["spin-2"]
    clock.now += 3.0
    assert gw.gateway.backends() == SIMULATORS
    await gw.gateway.on_heartbeat(encode(beat("e1", ["starmon-5"])))
    assert gw.gateway.devices() == ["starmon-5"]


async def test_a_leaving_executors_devices_are_gone_at_once(gw: Harness, clock: Clock):
    await gw.gateway.on_heartbeat(encode(beat("e1", ["starmon-5"])))
    await gw.gateway.on_heartbeat(encode(beat("e1", ["starmon-5"], leaving=True)))
    assert gw.gateway.devices() == []
    await gw.gateway.on_heartbeat(encode(beat("e9", [], leaving=True)))  # never heard of


async def test_the_gateway_hears_heartbeats_on_the_bus(gw: Harness):
    await gw.bus.publish(HEARTBEAT_TOPIC, encode(beat("e1", ["starmon-5"])))
    await eventually(gw.gateway.devices, "the device is known", until=lambda d: d == ["starmon-5"])


async def test_require_backend_refuses_an_unknown_one_naming_the_available(gw: Harness):
    await gw.gateway.on_heartbeat(encode(beat("e1", ["starmon-5"])))
    gw.gateway.require_backend("aer_simulator")
    gw.gateway.require_backend("starmon-5")
    with pytest.raises(InvalidInput) as caught:
        gw.gateway.require_backend("ibmq_qasm_simulator")
    assert caught.value.field == "backend"
    assert str(caught.value) == (
        "unknown backend 'ibmq_qasm_simulator'; "
        "available: aer_simulator, aer_simulator_statevector, starmon-5"
    )
