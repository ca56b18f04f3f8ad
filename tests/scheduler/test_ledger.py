"""The ledger applies job events at most once, in the job's order, and only for the live attempt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qrt_common.bus.memory import InMemoryBus
from qrt_common.jobs import Job, JobStatus
from qrt_common.messages import EventKind, JobEvent
from qrt_common.store.sqlite import SQLiteStore
from qrt_common.timeline import Stage
from qrt_common.wire import decode, encode
from qrt_scheduler.ledger import Ledger


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[tuple[Ledger, SQLiteStore]]:
    store = SQLiteStore(tmp_path / "qrt.db")
    await store.open()
    # Placed on executor "ex", as the scheduler would have done before assigning it.
    await store.add_job(Job(id="j", program_id="p", backend="aer_simulator", params="{}",
                            max_execution_time=60, executor_id="ex"))  # fmt: skip
    bus = InMemoryBus()
    yield Ledger(store, bus), store
    await bus.close()
    await store.close()


def event(kind: EventKind, attempt: int = 1, **fields) -> JobEvent:
    """An event as the ledger gets it: decoded from the bus (statuses as JobStatus)."""
    sent = JobEvent(job_id="j", kind=kind, attempt=attempt, executor_id="ex", **fields)
    return decode(JobEvent, encode(sent))


def short_run(log: str) -> list[JobEvent]:
    """A short job's start, one log line `log`, result and end, in one message."""
    return [
        event(EventKind.RUNNING),
        event(EventKind.LOG, seq=0, data=log),
        event(EventKind.RESULT, data='"r"'),
        event(EventKind.FINISHED, status="Completed"),
    ]


async def status(store: SQLiteStore) -> JobStatus:
    job = await store.get_job("j")
    assert job is not None
    return job.status


async def test_a_normal_run(ledger):
    ledger, store = ledger
    assert await ledger.apply(event(EventKind.RUNNING))
    assert await ledger.apply(event(EventKind.LOG, seq=0, data="hi\n"))
    assert await ledger.apply(event(EventKind.INTERIM, seq=0, data="1"))
    assert await ledger.apply(event(EventKind.RESULT, data='"r"'))
    assert await ledger.apply(event(EventKind.FINISHED, status="Completed"))
    job = await store.get_job("j")
    assert job is not None and (job.status, job.attempt, job.executor_id) == (
        JobStatus.COMPLETED, 1, "ex",
    )  # fmt: skip
    assert await store.read_log("j") == "hi\n" and await store.get_result("j") == '"r"'


async def test_duplicates_change_nothing(ledger):
    ledger, store = ledger
    for kind, fields in ((EventKind.RUNNING, {}), (EventKind.LOG, {"seq": 0, "data": "a\n"}),
                         (EventKind.INTERIM, {"seq": 0, "data": "1"}),
                         (EventKind.RESULT, {"data": "1"}),
                         (EventKind.FINISHED, {"status": "Failed", "reason": "x"})):  # fmt: skip
        assert await ledger.apply(event(kind, **fields))
        assert not await ledger.apply(event(kind, **fields))
    assert await store.read_log("j") == "a\n"
    assert len(await store.list_interims("j")) == 1
    assert await status(store) is JobStatus.FAILED


async def test_late_events_of_an_ended_or_older_attempt_are_ignored(ledger):
    ledger, store = ledger
    await ledger.apply(event(EventKind.RUNNING))
    job = await store.get_job("j")
    assert job is not None
    await ledger.change_status(job, JobStatus.QUEUED, "executor lost")
    assert not await ledger.apply(event(EventKind.FINISHED, attempt=1, status="Completed"))
    assert await status(store) is JobStatus.QUEUED
    assert not await ledger.apply(event(EventKind.RUNNING, attempt=1))
    # Not placed again yet: nobody may start it.
    assert not await ledger.apply(event(EventKind.RUNNING, attempt=2))
    requeued = await store.get_job("j")
    assert requeued is not None and await ledger.assign(requeued, "ex")
    assert await ledger.apply(event(EventKind.RUNNING, attempt=2))
    assert await ledger.apply(event(EventKind.FINISHED, attempt=2, status="Completed"))
    assert not await ledger.apply(event(EventKind.FINISHED, attempt=2, status="Cancelled"))
    assert await status(store) is JobStatus.COMPLETED


async def test_a_cancelled_job_is_not_started_by_a_late_running_event(ledger):
    ledger, store = ledger
    job = await store.get_job("j")
    assert job is not None
    assert await ledger.change_status(job, JobStatus.CANCELLED, "cancelled on request")
    assert not await ledger.apply(event(EventKind.RUNNING))
    assert not await ledger.apply(event(EventKind.FINISHED, status="Completed"))
    assert await status(store) is JobStatus.CANCELLED


async def test_a_job_can_fail_before_it_ever_ran(ledger):
    ledger, store = ledger
    assert await ledger.apply(event(EventKind.FINISHED, status="Failed", reason="gone"))
    assert await status(store) is JobStatus.FAILED


async def test_events_of_unknown_jobs_are_ignored(ledger):
    ledger, _ = ledger
    ghost = JobEvent(job_id="ghost", kind=EventKind.RUNNING, attempt=1)
    assert not await ledger.apply(ghost)


async def test_a_repeated_running_event_is_not_applied_twice(ledger):
    ledger, store = ledger
    assert await ledger.apply(event(EventKind.RUNNING))
    assert not await ledger.apply(event(EventKind.RUNNING))
    job = await store.get_job("j")
    assert job is not None and (job.status, job.attempt) == (JobStatus.RUNNING, 1)


async def test_only_the_placed_executor_and_live_attempt_give_the_result(ledger):
    ledger, store = ledger
    other = JobEvent(job_id="j", kind=EventKind.RUNNING, attempt=1, executor_id="intruder")
    assert not await ledger.apply(other)
    assert await ledger.apply(event(EventKind.RUNNING))
    stale = JobEvent(job_id="j", kind=EventKind.RESULT, attempt=1, executor_id="intruder", data="1")
    assert not await ledger.apply(stale)
    assert await store.get_result("j") is None
    assert await ledger.apply(event(EventKind.RESULT, data='"mine"'))
    assert await store.get_result("j") == '"mine"'


async def test_one_message_of_a_job_is_one_commit(ledger):
    ledger, store = ledger
    statements: list[str] = []
    store._inline.set_trace_callback(statements.append)
    try:
        applied = await ledger.apply_all(short_run("hi\n"))
    finally:
        store._inline.set_trace_callback(None)
    assert applied == [True, True, True, True]
    # A short job's start, log, result and end, as its executor sends them: one write.
    assert statements.count("COMMIT") == 1
    assert await status(store) is JobStatus.COMPLETED
    assert await store.read_log("j") == "hi\n" and await store.get_result("j") == '"r"'
    stages = [record.stage for record in await store.job_stages("j")]
    assert stages == [Stage.RUNNING, Stage.FINISHED]


async def test_each_event_of_a_message_is_judged_on_what_the_ones_before_it_left(ledger):
    ledger, store = ledger
    job = await store.get_job("j")
    assert job is not None
    assert await ledger.change_status(job, JobStatus.CANCELLED, "cancelled on request")
    # Cancelled before it started: its start, result and end change nothing, its log is kept.
    applied = await ledger.apply_all(short_run("late\n"))
    assert applied == [False, True, False, False]
    assert await status(store) is JobStatus.CANCELLED and await store.get_result("j") is None
    # A repeat of a whole message changes nothing at all.
    messages = [event(EventKind.RUNNING, attempt=2), event(EventKind.FINISHED, attempt=2,
                status="Failed", reason="x")]  # fmt: skip
    assert await ledger.apply_all(messages) == [False, False]
