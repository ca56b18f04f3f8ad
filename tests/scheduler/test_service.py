"""The scheduler against a scripted executor on the in-process bus and a real SQLite store."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from qrt_common.bus.base import Handler
from qrt_common.bus.memory import InMemoryBus
from qrt_common.errors import MalformedMessage, StoreUnavailable
from qrt_common.jobs import Job, JobStatus, transition, utcnow
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
from qrt_common.timeline import StageRecord
from qrt_common.wire import encode
from qrt_scheduler.service import Scheduler
from tests.support.disks import SmallDisk, small_disk
from tests.support.waiting import eventually

DEAD_LETTERS = "dead letters"


class TracingBus(InMemoryBus):
    """The in-process bus, counting for each queue and topic the copies sent to handlers and
    the ones handled: when the counts agree, no message is on its way any more."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: Counter[str] = Counter()
        self.handled: Counter[str] = Counter()
        self.handlers: Counter[str] = Counter()
        """Subscribers of each topic: each gets its own copy of a message."""

    async def send(self, queue: str, body: dict[str, Any]) -> None:
        self.sent[queue] += 1
        await super().send(queue, body)

    async def publish(self, topic: str, body: dict[str, Any]) -> None:
        self.sent[topic] += self.handlers[topic]
        await super().publish(topic, body)

    async def consume(self, queue: str, handler: Handler, *, prefetch: int = 16) -> None:
        await super().consume(queue, self._counted(queue, handler), prefetch=prefetch)

    async def subscribe(self, topic: str, handler: Handler) -> None:
        self.handlers[topic] += 1
        await super().subscribe(topic, self._counted(topic, handler))

    async def consume_dead_letters(self, handler: Handler) -> None:
        self.handlers[DEAD_LETTERS] += 1
        await super().consume_dead_letters(self._counted(DEAD_LETTERS, handler))

    def _counted(self, name: str, handler: Handler) -> Handler:
        async def counted(body: dict[str, Any]) -> None:
            try:
                await handler(body)
            except MalformedMessage:
                # Done with here; its copies go on to the dead-letter handlers.
                self.sent[DEAD_LETTERS] += self.handlers[DEAD_LETTERS]
                self.handled[name] += 1
                raise
            self.handled[name] += 1

        return counted

    def unhandled(self) -> dict[str, int]:
        return {
            name: n - self.handled[name] for name, n in self.sent.items() if n > self.handled[name]
        }


class Harness:
    def __init__(self, store: SQLiteStore, bus: TracingBus, scheduler: Scheduler) -> None:
        self.store, self.bus, self.scheduler = store, bus, scheduler
        self.assignments: dict[str, asyncio.Queue[Assignment]] = {}
        self.stops: list[str] = []
        self.dispatching = 0
        dispatch = scheduler._dispatch

        async def counted_dispatch() -> None:
            # A round of placing has nothing on the bus to count, yet may still place a job.
            self.dispatching += 1
            try:
                await dispatch()
            finally:
                self.dispatching -= 1

        scheduler._dispatch = counted_dispatch  # type: ignore[method-assign]

    async def executor(self, name: str, *, backends=("aer_simulator",), exclusive=(),
                       running=(), capacity: int = 1) -> None:  # fmt: skip
        """Send `name`'s heartbeat; returns once the scheduler has taken it in."""
        if name not in self.assignments:
            inbox: asyncio.Queue[Assignment] = asyncio.Queue()
            self.assignments[name] = inbox

            async def take(body: dict[str, Any]) -> None:
                inbox.put_nowait(Assignment(**body))

            await self.bus.consume(executor_queue(name), take, prefetch=8)
        beat = Heartbeat(name, capacity, list(backends), dict(running), list(exclusive))
        sent_at = time.monotonic()
        await self.bus.publish(HEARTBEAT_TOPIC, encode(beat))
        await eventually(
            lambda: self.scheduler.executors.get(name),
            f"the scheduler takes in {name}'s heartbeat",
            until=lambda state: state is not None and state.last_seen >= sent_at,
        )

    async def submit(self, job_id: str, backend: str = "aer_simulator", hub: str = "ibm-q") -> None:
        job = Job(id=job_id, program_id="p", backend=backend, params="{}", max_execution_time=60,
                  hub=hub)  # fmt: skip
        await self.store.add_job(job)
        await self.bus.send(SUBMITTED_QUEUE, encode(JobSubmitted.of(job)))

    async def next_assignment(self, name: str, timeout: float = 30) -> Assignment:
        inbox = self.assignments[name]

        def taken() -> Assignment | None:
            return None if inbox.empty() else inbox.get_nowait()

        assignment = await eventually(taken, f"an assignment reaches {name}", timeout=timeout)
        assert assignment is not None
        return assignment

    async def report(self, executor: str, job_id: str, kind: EventKind, attempt: int,
                     status: JobStatus | None = None) -> None:  # fmt: skip
        """Send an executor's event; returns once the scheduler has handled it."""
        event = JobEvent(job_id, kind, attempt, executor, status=status)
        await self.bus.send(EVENTS_QUEUE, encode(JobEvents(job_id, [event])))
        # Reports go one at a time: all events sent so far handled means this one too.
        sent = self.bus.sent[EVENTS_QUEUE]
        await eventually(
            lambda: self.bus.handled[EVENTS_QUEUE],
            f"the scheduler handles {executor}'s {kind.value} of {job_id}",
            until=lambda handled: handled >= sent,
        )

    async def job(self, job_id: str) -> Job:
        job = await self.store.get_job(job_id)
        assert job is not None
        return job

    async def job_once(self, job_id: str, status: JobStatus, timeout: float = 30) -> Job:
        """The job, once it has `status`."""
        return await eventually(
            lambda: self.job(job_id),
            f"job {job_id} is {status.value}",
            until=lambda job: job.status is status,
            timeout=timeout,
        )

    def _activity(self) -> dict[str, Any]:
        scheduler = self.scheduler
        busy = {
            "unhandled": self.bus.unhandled(),
            "dispatching": self.dispatching,
            "woken": scheduler._wake.is_set(),
            "placing": len(scheduler._placing),
        }
        return {what: value for what, value in busy.items() if value}

    async def settled(self) -> None:
        """Wait until every message sent has been handled and the scheduler is placing nothing:
        what a message was to change has changed by then, so an absence is certain."""
        await eventually(self._activity, "the scheduler settles", until=lambda busy: not busy)


@pytest.fixture
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    # Settings a test asks for by indirect parameter; executors are lost only where a test
    # means them to be (a short heartbeat timeout).
    overrides = {"heartbeat_timeout": 10.0, **getattr(request, "param", {})}
    settings = Settings(data_dir=tmp_path, heartbeat_interval=0.1, **overrides)
    store = SQLiteStore(tmp_path / "qrt.db")
    await store.open()
    bus = TracingBus()
    scheduler = Scheduler(settings, store, bus, orphan_grace=0)
    h = Harness(store, bus, scheduler)
    await scheduler.start()

    async def stopped(body: dict[str, Any]) -> None:
        h.stops.append(body["job_id"])

    await bus.subscribe(CONTROL_TOPIC, stopped)
    yield h
    await scheduler.close()
    await bus.close()
    await store.close()


# Loss takes the heartbeat timeout; it leaves the steps until then time to spare under load.
@pytest.mark.parametrize("harness", [{"heartbeat_timeout": 2.0}], indirect=True)
async def test_a_late_report_of_an_old_attempt_does_not_free_the_new_placement(harness):
    await harness.executor("ex")
    await harness.submit("a")
    first = await harness.next_assignment("ex")
    assert first.attempt == 1
    await harness.report("ex", "a", EventKind.RUNNING, 1)
    assert (await harness.job("a")).status is JobStatus.RUNNING

    # The executor goes silent: its job is queued again ...
    await harness.job_once("a", JobStatus.QUEUED)
    # ... and when it is heard from again, still running the old attempt, that attempt is
    # stopped, and the job is placed again (here on the same executor).
    await harness.executor("ex", running={"a": 1}, capacity=2)
    second = await harness.next_assignment("ex")
    assert second.attempt == 2
    await harness.settled()
    assert "a" in harness.stops

    # The old attempt's end arrives late: it changes nothing.
    await harness.report("ex", "a", EventKind.FINISHED, 1, status=JobStatus.COMPLETED)
    await harness.settled()
    assert (await harness.job("a")).status is JobStatus.QUEUED
    assert harness.scheduler.placed["a"].attempt == 2

    await harness.report("ex", "a", EventKind.RUNNING, 2)
    await harness.report("ex", "a", EventKind.FINISHED, 2, status=JobStatus.COMPLETED)
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

    async def failing_once(job: Job, *, expected: JobStatus, stage: StageRecord | None) -> bool:
        if not failures:
            failures.append(job.status)
            raise StoreUnavailable("the store is restarting")
        replaced: bool = await replace_job(job, expected=expected, stage=stage)
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
    await harness.settled()
    assert "a" not in harness.scheduler.pending and "a" not in harness.scheduler.placed


async def test_jobs_go_where_the_most_capacity_is_free_and_wait_when_none_is(harness):
    await harness.executor("small", capacity=1)
    await harness.executor("big", capacity=3)
    for n in range(5):
        await harness.submit(f"j{n}")
    await eventually(lambda: len(harness.scheduler.placed), "4 jobs placed", until=lambda n: n >= 4)
    await harness.settled()  # a wrong fifth placement would have been made by now
    placed = harness.scheduler.placed
    assert Counter(p.executor_id for _, p in placed.items()) == {"big": 3, "small": 1}
    assert [job_id for job_id in ("j0", "j1", "j2", "j3", "j4") if job_id not in placed] == ["j4"]
    assert "j4" in harness.scheduler.pending


@pytest.mark.parametrize("harness", [{"instance_max_running_jobs": 2}], indirect=True)
async def test_an_instance_runs_at_most_its_cap_of_jobs_at_once(harness):
    # A tester's six sleeping jobs took every place for as long as they liked (up to a year)
    # while another instance's job waited: the queue only takes turns when a place frees.
    await harness.executor("ex", capacity=4)
    for n in range(4):
        await harness.submit(f"a{n}", hub="alpha")
    await eventually(lambda: len(harness.scheduler.placed), "alpha's jobs placed",
                     until=lambda n: n >= 2)  # fmt: skip
    await harness.settled()  # a third of alpha's would have been placed by now
    assert sorted(harness.scheduler.placed) == ["a0", "a1"]
    await harness.submit("b0", hub="beta")
    await eventually(lambda: "b0" in harness.scheduler.placed, "beta's job is placed at once")
    await harness.settled()
    assert sorted(harness.scheduler.placed) == ["a0", "a1", "b0"]  # a place is still free
    for _ in range(2):
        await harness.next_assignment("ex")
    await harness.report("ex", "a0", EventKind.RUNNING, 1)
    await harness.report("ex", "a0", EventKind.FINISHED, 1, status=JobStatus.COMPLETED)
    await eventually(lambda: "a2" in harness.scheduler.placed, "alpha's next job once one ended")
    await harness.settled()
    assert sorted(harness.scheduler.placed) == ["a1", "a2", "b0"]


async def test_a_device_backend_runs_one_job_at_a_time(harness):
    for name in ("ex1", "ex2"):
        await harness.executor(name, backends=["device"], exclusive=["device"], capacity=4)
    await harness.submit("d1", backend="device")
    await harness.submit("d2", backend="device")

    def placed() -> list[str]:
        return [j for j in ("d1", "d2") if j in harness.scheduler.placed]

    await eventually(placed, "a device job is placed")
    await harness.settled()
    assert len(placed()) == 1
    first = placed()[0]
    where = harness.scheduler.placed[first].executor_id
    await harness.next_assignment(where)
    await harness.report(where, first, EventKind.RUNNING, 1)
    await harness.report(where, first, EventKind.FINISHED, 1, status=JobStatus.COMPLETED)
    second = "d2" if first == "d1" else "d1"
    await eventually(
        placed, f"{second} is placed once {first} ended", until=lambda p: p == [second]
    )


async def test_jobs_for_a_backend_nobody_offers_wait(harness):
    await harness.executor("ex")
    await harness.submit("x", backend="elsewhere")
    await harness.submit("y")
    assert (await harness.next_assignment("ex")).job_id == "y"
    await harness.settled()
    assert "x" in harness.scheduler.pending


@pytest.mark.parametrize("harness", [{"heartbeat_timeout": 2.0}], indirect=True)
async def test_a_cancel_is_repeated_until_it_lands_and_survives_the_executor(harness):
    await harness.executor("ex")
    await harness.submit("c")
    assignment = await harness.next_assignment("ex")
    await harness.report("ex", "c", EventKind.RUNNING, assignment.attempt)
    await harness.bus.send(CANCEL_QUEUE, encode(CancelJob("c")))
    await harness.settled()
    assert harness.stops.count("c") == 1 and (await harness.job("c")).cancel_requested
    # The executor did not act on it (say the order was lost): the next heartbeat repeats it.
    await harness.executor("ex", running={"c": assignment.attempt})
    await harness.settled()
    assert harness.stops.count("c") == 2
    # The executor dies before it stopped the job: the job ends Cancelled, it does not run again.
    await harness.job_once("c", JobStatus.CANCELLED)
    await harness.settled()
    assert "c" not in harness.scheduler.pending and "c" not in harness.scheduler.placed


async def test_a_message_mixing_jobs_is_dead_lettered_and_fails_its_job(harness):
    await harness.executor("ex")
    await harness.submit("a")
    await harness.next_assignment("ex")
    stray = JobEvent("b", EventKind.RUNNING, 1, "ex")
    await harness.bus.send(EVENTS_QUEUE, encode(JobEvents("a", [stray])))
    job = await harness.job_once("a", JobStatus.FAILED)
    assert "events of other jobs" in (job.reason or "")


async def stored_unannounced(harness: Harness, job_id: str, age: float) -> None:
    """A job in the store that no message announced (its gateway died in between), `age`
    seconds old."""
    created = utcnow() - timedelta(seconds=age)
    job = Job(id=job_id, program_id="p", backend="aer_simulator", params="{}",
              max_execution_time=60, created=created)  # fmt: skip
    await harness.store.add_job(job)


async def test_a_queued_job_nobody_announced_is_picked_up_by_a_sweep(harness):
    await harness.executor("ex", capacity=2)
    await stored_unannounced(harness, "stranded", age=60)
    await stored_unannounced(harness, "just-stored", age=0)  # its message is still on its way
    assert await harness.scheduler.sweep() == 1
    assert (await harness.next_assignment("ex")).job_id == "stranded"
    assert await harness.scheduler.sweep() == 0  # placed now: not picked up twice
    await harness.settled()
    assert "just-stored" not in harness.scheduler.pending
    assert harness.assignments["ex"].empty()


@pytest.mark.parametrize("harness", [{"sweep_interval": 0.2}], indirect=True)
async def test_the_scheduler_sweeps_the_store_by_itself(harness):
    await harness.executor("ex")
    await stored_unannounced(harness, "stranded", age=60)
    assert (await harness.next_assignment("ex")).job_id == "stranded"
    await harness.job_once("stranded", JobStatus.QUEUED)  # assigned, not started yet
    assert (await harness.job("stranded")).executor_id == "ex"


async def test_a_running_job_no_placement_holds_is_ended_by_a_cancel(harness):
    # The store holds it Running on an executor this scheduler never heard of (its end was
    # lost, say dead-lettered while the disk was full): a cancel is what ends it.
    job = Job(id="stuck", program_id="p", backend="aer_simulator", params="{}",
              max_execution_time=60)  # fmt: skip
    await harness.store.add_job(job)
    running = transition(job, JobStatus.RUNNING, executor_id="long-gone")
    assert await harness.store.replace_job(running, expected=JobStatus.QUEUED)
    assert "stuck" not in harness.scheduler.placed
    await harness.bus.send(CANCEL_QUEUE, encode(CancelJob("stuck")))
    ended = await harness.job_once("stuck", JobStatus.CANCELLED)
    assert ended.reason == "cancelled on request" and "stuck" in harness.stops


@contextlib.asynccontextmanager
async def job_running_on_a_small_disk(
    tmp_path: Path,
) -> AsyncIterator[tuple[SmallDisk, SQLiteStore, TracingBus, Harness]]:
    """A scheduler whose SQLite store lies on a small tmpfs, with job `a` running on executor
    `ex`; the disk, the store, the bus and the harness."""
    with small_disk(tmp_path / "disk") as disk:
        settings = Settings(data_dir=disk.path, heartbeat_interval=0.1, heartbeat_timeout=60.0)
        store = SQLiteStore(disk.path / "qrt.db")
        await store.open()
        bus = TracingBus()
        scheduler = Scheduler(settings, store, bus, orphan_grace=0)
        harness = Harness(store, bus, scheduler)
        await scheduler.start()
        try:
            await harness.executor("ex")
            await harness.submit("a")
            assignment = await harness.next_assignment("ex")
            await harness.report("ex", "a", EventKind.RUNNING, assignment.attempt)
            yield disk, store, bus, harness
        finally:
            await scheduler.close()
            await bus.close()
            await store.close()


async def test_events_the_store_cannot_write_for_a_full_disk_are_kept_until_it_can(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    async with job_running_on_a_small_disk(tmp_path) as (disk, store, bus, harness):
        disk.fill()
        logs = [JobEvent("a", EventKind.LOG, 1, "ex", seq=n, data=f"line {n}\n" * 200)
                for n in range(40)]  # fmt: skip
        end = JobEvent("a", EventKind.FINISHED, 1, "ex", status=JobStatus.COMPLETED)
        await bus.send(EVENTS_QUEUE, encode(JobEvents("a", [*logs, end])))
        await eventually(
            lambda: "the disk is full" in caplog.text,
            "the ledger finds the disk full and waits to try again",
        )
        assert not await store.is_ready()
        assert (await harness.job("a")).status is JobStatus.RUNNING
        disk.free()
        # Retried in place, not dead-lettered: every line is kept and the job ends.
        await harness.job_once("a", JobStatus.COMPLETED, timeout=60)
        assert await store.read_log("a") == "".join(f"line {n}\n" * 200 for n in range(40))
        assert await store.is_ready()
        assert DEAD_LETTERS not in bus.sent


async def test_a_job_ends_only_once_the_log_it_wrote_before_a_full_disk_is_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    async with job_running_on_a_small_disk(tmp_path) as (disk, store, bus, harness):
        disk.fill()
        # As an executor sends them: the log in one message, the end in a later one.
        log = JobEvent("a", EventKind.LOG, 1, "ex", seq=0, data="tick 0\n")
        await bus.send(EVENTS_QUEUE, encode(JobEvents("a", [log])))

        def full_disk_retries() -> int:
            return sum("the disk is full" in record.getMessage()
                       for record in caplog.records if record.name == "qrt_common.retry")  # fmt: skip

        # After its third failed try the log waits 2 s for its next, longer than the end
        # would if it did not wait behind the log.
        await eventually(full_disk_retries, "the log's write fails three times",
                         until=lambda tries: tries >= 3)  # fmt: skip
        end = JobEvent("a", EventKind.FINISHED, 1, "ex", status=JobStatus.COMPLETED)
        await bus.send(EVENTS_QUEUE, encode(JobEvents("a", [end])))
        disk.free()

        async def status_then_log() -> tuple[JobStatus, str]:
            status = (await harness.job("a")).status
            return status, await store.read_log("a")

        _, log_when_ended = await eventually(
            status_then_log, "job a is Completed",
            until=lambda seen: seen[0] is JobStatus.COMPLETED, timeout=60,
        )  # fmt: skip
        assert log_when_ended == "tick 0\n"
