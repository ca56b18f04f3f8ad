"""The scheduler against a scripted executor on the in-process bus and a real SQLite store."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from qrt_common.bus.memory import InMemoryBus
from qrt_common.errors import StoreUnavailable
from qrt_common.jobs import Job, JobStatus
from qrt_common.messages import (
    CANCEL_QUEUE,
    CONTROL_TOPIC,
    EVENTS_QUEUE,
    HEARTBEAT_TOPIC,
    SUBMITTED_QUEUE,
    Assignment,
    CancelJob,
    EventKind,
    Heartbeat,
    JobEvent,
    JobEvents,
    JobSubmitted,
    executor_queue,
)
from qrt_common.settings import Settings
from qrt_common.store.sqlite import SQLiteStore
from qrt_common.wire import encode
from qrt_scheduler.service import Scheduler


class Harness:
    def __init__(self, store: SQLiteStore, bus: InMemoryBus, scheduler: Scheduler) -> None:
        self.store, self.bus, self.scheduler = store, bus, scheduler
        self.assignments: dict[str, asyncio.Queue[Assignment]] = {}
        self.stops: list[str] = []

    async def executor(self, name: str, *, backends=("aer_simulator",), exclusive=(),
                       running=(), capacity: int = 1) -> None:  # fmt: skip
        if name not in self.assignments:
            inbox: asyncio.Queue[Assignment] = asyncio.Queue()
            self.assignments[name] = inbox

            async def take(body: dict[str, Any]) -> None:
                inbox.put_nowait(Assignment(**body))

            await self.bus.consume(executor_queue(name), take, prefetch=8)
        beat = Heartbeat(name, capacity, list(backends), dict(running), list(exclusive))
        await self.bus.publish(HEARTBEAT_TOPIC, encode(beat))
        await asyncio.sleep(0.05)

    async def submit(self, job_id: str, backend: str = "aer_simulator") -> None:
        job = Job(id=job_id, program_id="p", backend=backend, params="{}", max_execution_time=60)
        await self.store.add_job(job)
        await self.bus.send(SUBMITTED_QUEUE, encode(JobSubmitted.of(job)))

    async def next_assignment(self, name: str, timeout: float = 5) -> Assignment:
        return await asyncio.wait_for(self.assignments[name].get(), timeout)

    async def report(self, executor: str, job_id: str, kind: EventKind, attempt: int,
                     status: str | None = None) -> None:  # fmt: skip
        event = JobEvent(job_id, kind, attempt, executor, status=status)
        await self.bus.send(EVENTS_QUEUE, encode(JobEvents(job_id, [event])))
        await asyncio.sleep(0.05)

    async def job(self, job_id: str) -> Job:
        job = await self.store.get_job(job_id)
        assert job is not None
        return job

    async def job_once(self, job_id: str, status: JobStatus, timeout: float = 10) -> Job:
        """The job, once it has `status` (it fails the test if that takes longer than `timeout`)."""
        async with asyncio.timeout(timeout):
            while (job := await self.job(job_id)).status is not status:
                await asyncio.sleep(0.05)
        return job


@pytest.fixture
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    # Settings a test asks for by indirect parameter.
    overrides = {"heartbeat_timeout": 0.5, **getattr(request, "param", {})}
    settings = Settings(data_dir=tmp_path, heartbeat_interval=0.1, **overrides)
    store = SQLiteStore(tmp_path / "qrt.db")
    await store.open()
    bus = InMemoryBus()
    scheduler = Scheduler(settings, store, bus, orphan_grace=0)
    await scheduler.start()
    h = Harness(store, bus, scheduler)

    async def stopped(body: dict[str, Any]) -> None:
        h.stops.append(body["job_id"])

    await bus.subscribe(CONTROL_TOPIC, stopped)
    yield h
    await scheduler.close()
    await bus.close()
    await store.close()


async def test_a_late_report_of_an_old_attempt_does_not_free_the_new_placement(harness):
    await harness.executor("ex")
    await harness.submit("a")
    first = await harness.next_assignment("ex")
    assert first.attempt == 1
    await harness.report("ex", "a", EventKind.RUNNING, 1)
    assert (await harness.job("a")).status is JobStatus.RUNNING

    # The executor goes silent: its job is queued again ...
    await asyncio.sleep(1.5)
    assert (await harness.job("a")).status is JobStatus.QUEUED
    # ... and when it is heard from again, still running the old attempt, that attempt is
    # stopped, and the job is placed again (here on the same executor).
    await harness.executor("ex", running={"a": 1}, capacity=2)
    assert "a" in harness.stops
    second = await harness.next_assignment("ex")
    assert second.attempt == 2

    # The old attempt's end arrives late: it changes nothing.
    await harness.report("ex", "a", EventKind.FINISHED, 1, status="Completed")
    assert (await harness.job("a")).status is JobStatus.QUEUED
    assert harness.scheduler.placed["a"].attempt == 2

    await harness.report("ex", "a", EventKind.RUNNING, 2)
    await harness.report("ex", "a", EventKind.FINISHED, 2, status="Completed")
    job = await harness.job("a")
    assert (job.status, job.attempt) == (JobStatus.COMPLETED, 2)
    assert "a" not in harness.scheduler.placed


@pytest.mark.parametrize("harness", [{"heartbeat_timeout": 1.0}], indirect=True)
async def test_a_lost_executors_job_is_taken_back_once_the_store_answers_again(
    harness, monkeypatch
):
    await harness.executor("ex")
    await harness.submit("a")
    await harness.next_assignment("ex")
    await harness.report("ex", "a", EventKind.RUNNING, 1)
    replace_job = harness.store.replace_job
    failures: list[JobStatus] = []

    async def failing_once(job: Job, *, expected: JobStatus) -> bool:
        if not failures:
            failures.append(job.status)
            raise StoreUnavailable("the store is restarting")
        replaced: bool = await replace_job(job, expected=expected)
        return replaced

    monkeypatch.setattr(harness.store, "replace_job", failing_once)
    job = await harness.job_once("a", JobStatus.QUEUED)
    assert failures == [JobStatus.QUEUED]  # the first try failed: a later sweep did it
    assert job.reason == "executor ex was lost" and "a" in harness.scheduler.pending


@pytest.mark.parametrize("harness", [{"max_attempts": 2, "heartbeat_timeout": 1.0}], indirect=True)
async def test_a_job_whose_executors_keep_getting_lost_fails_after_max_attempts(harness):
    await harness.executor("first")
    await harness.submit("a")
    assert (await harness.next_assignment("first")).attempt == 1
    await harness.report("first", "a", EventKind.RUNNING, 1)
    # Silent past the heartbeat timeout: the job goes back to the queue.
    job = await harness.job_once("a", JobStatus.QUEUED)
    assert job.attempt == 1 and job.reason == "executor first was lost"

    await harness.executor("second")
    assert (await harness.next_assignment("second")).attempt == 2
    await harness.report("second", "a", EventKind.RUNNING, 2)
    # Lost as well, on the last attempt allowed.
    job = await harness.job_once("a", JobStatus.FAILED)
    assert job.attempt == 2 and job.reason == "executor second was lost; gave up after 2 attempts"
    assert "a" not in harness.scheduler.pending and "a" not in harness.scheduler.placed


@pytest.mark.parametrize("harness", [{"heartbeat_timeout": 10.0}], indirect=True)
async def test_jobs_go_where_the_most_capacity_is_free_and_wait_when_none_is(harness):
    await harness.executor("small", capacity=1)
    await harness.executor("big", capacity=3)
    for n in range(5):
        await harness.submit(f"j{n}")
    async with asyncio.timeout(10):
        while len(harness.scheduler.placed) < 4:
            await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # room for a wrong fifth placement
    placed = harness.scheduler.placed
    assert Counter(p.executor_id for _, p in placed.items()) == {"big": 3, "small": 1}
    assert [job_id for job_id in ("j0", "j1", "j2", "j3", "j4") if job_id not in placed] == ["j4"]
    assert "j4" in harness.scheduler.pending


async def test_a_device_backend_runs_one_job_at_a_time(harness):
    for name in ("ex1", "ex2"):
        await harness.executor(name, backends=["device"], exclusive=["device"], capacity=4)
    await harness.submit("d1", backend="device")
    await harness.submit("d2", backend="device")
    await asyncio.sleep(0.3)
    placed = [j for j in ("d1", "d2") if j in harness.scheduler.placed]
    assert len(placed) == 1
    first = placed[0]
    where = harness.scheduler.placed[first].executor_id
    await harness.next_assignment(where)
    await harness.report(where, first, EventKind.RUNNING, 1)
    await harness.report(where, first, EventKind.FINISHED, 1, status="Completed")
    second = "d2" if first == "d1" else "d1"
    for name in ("ex1", "ex2"):  # still alive
        await harness.executor(name, backends=["device"], exclusive=["device"], capacity=4)
    await asyncio.sleep(0.1)
    assert second in harness.scheduler.placed


async def test_jobs_for_a_backend_nobody_offers_wait(harness):
    await harness.executor("ex")
    await harness.submit("x", backend="elsewhere")
    await harness.submit("y")
    assert (await harness.next_assignment("ex")).job_id == "y"
    assert "x" in harness.scheduler.pending


async def test_a_cancel_is_repeated_until_it_lands_and_survives_the_executor(harness):
    await harness.executor("ex")
    await harness.submit("c")
    assignment = await harness.next_assignment("ex")
    await harness.report("ex", "c", EventKind.RUNNING, assignment.attempt)
    await harness.bus.send(CANCEL_QUEUE, encode(CancelJob("c")))
    await asyncio.sleep(0.1)
    assert harness.stops.count("c") == 1 and (await harness.job("c")).cancel_requested
    # The executor did not act on it (say the order was lost): the next heartbeat repeats it.
    await harness.executor("ex", running={"c": assignment.attempt})
    assert harness.stops.count("c") == 2
    # The executor dies before it stopped the job: the job ends Cancelled, it does not run again.
    await asyncio.sleep(1.5)
    job = await harness.job("c")
    assert job.status is JobStatus.CANCELLED and "c" not in harness.scheduler.pending


async def test_a_message_mixing_jobs_is_dead_lettered_and_fails_its_job(harness):
    await harness.executor("ex")
    await harness.submit("a")
    await harness.next_assignment("ex")
    stray = JobEvent("b", EventKind.RUNNING, 1, "ex")
    await harness.bus.send(EVENTS_QUEUE, encode(JobEvents("a", [stray])))
    await asyncio.sleep(0.2)
    job = await harness.job("a")
    assert job.status is JobStatus.FAILED
    assert "events of other jobs" in (job.reason or "")
