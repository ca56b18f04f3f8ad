"""The scheduler's session rules and the ledger's timeline entries, against a scripted executor
on the in-process bus and a real SQLite store (the harness of test_service)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from qrt_common.jobs import Job, JobStatus, utcnow
from qrt_common.messages import (
    EVENTS_QUEUE,
    SUBMITTED_QUEUE,
    EventKind,
    JobEvent,
    JobEvents,
    JobSubmitted,
)
from qrt_common.sessions import Session, SessionMode
from qrt_common.timeline import Stage
from qrt_common.wire import encode
from tests.scheduler import test_service
from tests.scheduler.test_service import Harness
from tests.support.waiting import eventually

harness = test_service.harness


DETAIL = '{"backend": "dev", "calibration": {"t1": {"q0": 1}}}'


async def make_session(h: Harness, mode: SessionMode, backend: str = "aer_simulator",
                       interactive_ttl: int = 60) -> Session:  # fmt: skip
    session = Session(
        id=f"s-{mode.value}", mode=mode, backend=backend, instance="ibm-q/open/main",
        max_ttl=3600, interactive_ttl=interactive_ttl,
    )  # fmt: skip
    await h.store.add_session(session)
    return session


async def submit(h: Harness, job_id: str, session_id: str | None, n: int,
                 backend: str = "aer_simulator") -> None:  # fmt: skip
    created = utcnow() + timedelta(milliseconds=n)
    job = Job(id=job_id, program_id="p", backend=backend, params="{}",
              max_execution_time=60, session_id=session_id, created=created)  # fmt: skip
    await h.store.add_job(job)
    await h.bus.send(SUBMITTED_QUEUE, encode(JobSubmitted.of(job)))


def placed(h: Harness, job_ids: list[str]) -> list[str]:
    return [j for j in job_ids if j in h.scheduler.placed]


async def placed_alone(h: Harness, jobs: list[str], job_id: str) -> None:
    def now() -> list[str]:
        return placed(h, jobs)

    await eventually(now, f"{job_id} placed", until=lambda p: p == [job_id])


async def run_to_end(h: Harness, job_id: str) -> None:
    where = h.scheduler.placed[job_id].executor_id
    await h.report(where, job_id, EventKind.RUNNING, 1)
    await h.report(where, job_id, EventKind.FINISHED, 1, status=JobStatus.COMPLETED)


async def test_a_dedicated_sessions_jobs_run_one_at_a_time_in_submission_order(harness):
    h = harness
    await h.executor("ex", capacity=8)
    session = await make_session(h, SessionMode.DEDICATED)
    jobs = [f"d{n}" for n in range(4)]
    # Announced in reverse: the order is the submission (creation) order, not the arrival.
    for n in reversed(range(4)):
        await submit(h, jobs[n], session.id, n)
    await submit(h, "outsider", None, 10)
    await eventually(lambda: placed(h, [*jobs, "outsider"]), "jobs placed",
                     until=lambda p: "d0" in p and "outsider" in p)  # fmt: skip
    for job_id, following in zip(jobs, [*jobs[1:], None], strict=True):
        await h.settled()  # a second job of the session would have been placed by now
        assert placed(h, jobs) == [job_id], f"only {job_id} of the session is placed"
        await run_to_end(h, job_id)
        if following is not None:
            await placed_alone(h, jobs, following)
    assert "outsider" in h.scheduler.placed  # a job outside the session was never held back


async def test_a_batchs_jobs_may_run_at_once(harness):
    h = harness
    await h.executor("ex", capacity=8)
    session = await make_session(h, SessionMode.BATCH)
    jobs = [f"b{n}" for n in range(4)]
    for n, job_id in enumerate(jobs):
        await submit(h, job_id, session.id, n)
    await eventually(lambda: placed(h, jobs), "the whole batch placed",
                     until=lambda p: p == jobs)  # fmt: skip


async def test_an_unknown_session_id_has_no_rules(harness):
    h = harness
    await h.executor("ex", capacity=8)
    for n in range(3):
        await submit(h, f"o{n}", "first-job-id-of-an-old-session", n)
    await eventually(lambda: placed(h, ["o0", "o1", "o2"]), "all placed",
                     until=lambda p: len(p) == 3)  # fmt: skip


async def test_the_ledger_records_each_stage_once_and_only_from_the_assigned_executor(harness):
    h = harness
    await h.executor("ex", capacity=2)
    await submit(h, "t1", None, 0)
    await eventually(lambda: placed(h, ["t1"]), "t1 placed")
    await h.next_assignment("ex")
    await h.report("ex", "t1", EventKind.RUNNING, 1)
    events = [
        JobEvent("t1", EventKind.STAGE, 1, "ex", stage=Stage.WAITING_FOR_DEVICE, at=1e9 + 1),
        JobEvent(
            "t1",
            EventKind.STAGE,
            1,
            "ex",
            stage=Stage.EXECUTING,
            at=1e9 + 2,
            data=DETAIL,
        ),
        JobEvent("t1", EventKind.STAGE, 1, "other", stage=Stage.EXECUTING, at=1e9 + 3),
        JobEvent("t1", EventKind.STAGE, 1, "ex", stage=Stage.FINISHED, at=1e9 + 4),
    ]
    for _ in range(2):  # a message delivered twice changes nothing the second time
        await h.bus.send(EVENTS_QUEUE, encode(JobEvents("t1", events)))
    await h.report("ex", "t1", EventKind.FINISHED, 1, status=JobStatus.COMPLETED)
    await h.settled()
    stages = await h.store.job_stages("t1")
    kinds = sorted((s.stage, s.executor_id) for s in stages)
    assert kinds == sorted([
        (Stage.ASSIGNED, "ex"), (Stage.RUNNING, "ex"), (Stage.WAITING_FOR_DEVICE, "ex"),
        (Stage.EXECUTING, "ex"), (Stage.FINISHED, "ex"),
    ])  # fmt: skip
    finished = next(s for s in stages if s.stage is Stage.FINISHED)
    assert finished.detail == "Completed"
    executing = next(s for s in stages if s.stage is Stage.EXECUTING)
    assert executing.detail is not None and "calibration" in executing.detail


async def device_session(h: Harness, interactive_ttl: int) -> Session:
    await h.executor("ex", backends=["device"], exclusive=["device"], capacity=4)
    session = await make_session(h, SessionMode.DEDICATED, "device", interactive_ttl)
    await submit(h, "s0", session.id, 0, "device")
    await eventually(lambda: placed(h, ["s0"]), "s0 placed")
    await submit(h, "other", None, 1, "device")
    await h.next_assignment("ex")
    await run_to_end(h, "s0")
    return session


async def test_a_dedicated_session_keeps_its_device_between_its_jobs_until_closed(harness):
    h = harness
    session = await device_session(h, interactive_ttl=3600)
    await h.settled()
    assert placed(h, ["other"]) == [], "the device waits for the session's next job"
    await submit(h, "s1", session.id, 2, "device")
    await eventually(lambda: placed(h, ["s1", "other"]), "s1 placed", until=lambda p: p == ["s1"])
    await run_to_end(h, "s1")
    await h.settled()
    assert placed(h, ["other"]) == []
    closed = dataclasses.replace(session, accepting_jobs=False, closed_at=utcnow())
    assert await h.store.replace_session(closed)
    await eventually(lambda: placed(h, ["other"]), "the closed session lets the device go",
                     until=lambda p: p == ["other"])  # fmt: skip


async def test_a_device_hold_runs_out_after_the_interactive_ttl(harness):
    h = harness
    await device_session(h, interactive_ttl=1)
    await eventually(lambda: placed(h, ["other"]), "the device goes to another job",
                     until=lambda p: p == ["other"])  # fmt: skip


@pytest.mark.parametrize("harness", [{"session_max_interactive_ttl": 1}], indirect=True)
async def test_a_device_hold_never_outlasts_the_operators_bound(harness):
    h = harness
    await device_session(h, interactive_ttl=3600)  # stored before the bound was lowered
    await eventually(lambda: placed(h, ["other"]), "the device goes to another job",
                     until=lambda p: p == ["other"])  # fmt: skip


async def test_a_session_past_its_max_ttl_cancels_its_waiting_jobs(harness):
    h = harness
    await h.executor("ex", capacity=1)
    session = dataclasses.replace(await make_session(h, SessionMode.BATCH), max_ttl=1)
    assert await h.store.replace_session(session)
    await submit(h, "first", session.id, 0)
    await eventually(lambda: placed(h, ["first"]), "first placed")
    await h.report("ex", "first", EventKind.RUNNING, 1)  # the session's time starts
    await submit(h, "waiting", session.id, 1)  # no room: it waits
    await submit(h, "unrelated", None, 2)
    job = await h.job_once("waiting", JobStatus.CANCELLED)
    assert job.reason is not None and "max_ttl of 1 s" in job.reason
    assert (await h.job("first")).status is JobStatus.RUNNING  # running jobs run to their end
    assert (await h.job("unrelated")).status is JobStatus.QUEUED
