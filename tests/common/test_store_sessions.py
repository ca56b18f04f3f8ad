"""The store contract for sessions and job timelines, on every store (test_store's fixtures)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from qrt_common.jobs import Job, JobStatus, transition
from qrt_common.sessions import Session, SessionMode
from qrt_common.store.base import JobStore
from qrt_common.timeline import Stage, StageRecord
from tests.common import test_store as contract

stores = contract.stores
store = contract.store

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_session(**fields) -> Session:
    values = dict(id="s1", mode=SessionMode.DEDICATED, backend="aer_simulator",
                  instance="ibm-q/open/main", max_ttl=600, interactive_ttl=30, created=T0)  # fmt: skip
    values.update(fields)
    return Session(**values)  # type: ignore[arg-type]


async def test_sessions_are_stored_read_and_replaced(store: JobStore):
    session = make_session(owner="ada")
    await store.add_session(session)
    assert await store.get_session("s1") == session
    assert await store.get_session("nope") is None
    closed = dataclasses.replace(session, accepting_jobs=False, closed_at=T0 + timedelta(seconds=5))
    assert await store.replace_session(closed)
    assert await store.get_session("s1") == closed
    assert not await store.replace_session(make_session(id="nope"))


async def test_a_sessions_job_times_come_without_the_jobs(store: JobStore):
    await store.add_session(make_session())
    for n in range(3):
        job = Job(id=f"j{n}", program_id="p", backend="aer_simulator", params="{}",
                  max_execution_time=60, session_id="s1" if n < 2 else None,
                  created=T0 + timedelta(seconds=n))  # fmt: skip
        await store.add_job(job)
    stored = await store.get_job("j0")
    assert stored is not None
    running = transition(stored, JobStatus.RUNNING, at=T0 + timedelta(seconds=10))
    assert await store.replace_job(running, expected=JobStatus.QUEUED)
    done = transition(running, JobStatus.COMPLETED, at=T0 + timedelta(seconds=12.5))
    assert await store.replace_job(done, expected=JobStatus.RUNNING)
    times = sorted(await store.session_job_times("s1"), key=lambda t: t.status.value)
    assert [(t.status, t.started, t.ended) for t in times] == [
        (JobStatus.COMPLETED, T0 + timedelta(seconds=10), T0 + timedelta(seconds=12.5)),
        (JobStatus.QUEUED, None, None),
    ]
    assert await store.session_job_times("nope") == []


async def test_timeline_entries_are_kept_once_in_order_and_go_with_their_job(store: JobStore):
    job = Job(id="j1", program_id="p", backend="dev", params="{}", max_execution_time=60)
    await store.add_job(job)
    at = T0 + timedelta(microseconds=1)
    records = [
        StageRecord(1, Stage.EXECUTING, at + timedelta(milliseconds=3), "ex", '{"x": 1}'),
        StageRecord(1, Stage.ASSIGNED, at, "ex"),
        StageRecord(1, Stage.RUNNING, at + timedelta(milliseconds=1), "ex"),
        StageRecord(1, Stage.WAITING_FOR_DEVICE, at + timedelta(milliseconds=2), "ex"),
    ]
    for record in records:
        assert await store.add_stage("j1", record)
    assert not await store.add_stage("j1", records[0])  # a repeat
    stored = await store.job_stages("j1")
    assert stored == sorted(records, key=lambda r: r.at)
    assert stored[0].at == at  # microseconds kept
    assert await store.job_stages("other") == []
    assert await store.delete_job("j1")
    assert await store.job_stages("j1") == []
