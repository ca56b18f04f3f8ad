import dataclasses
import json
from datetime import UTC, datetime

import pytest

from qrt_common.errors import IllegalTransition
from qrt_common.jobs import Job, JobStatus, job_from_dict, job_to_dict, plain, transition
from qrt_common.messages import EventKind, Heartbeat, JobEvent, JobEvents
from qrt_common.wire import encode

S = JobStatus
LEGAL = {
    (S.QUEUED, S.RUNNING),
    (S.QUEUED, S.CANCELLED),
    (S.QUEUED, S.FAILED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.CANCELLED_RAN_TOO_LONG),
    (S.RUNNING, S.QUEUED),
}


def job(status: JobStatus = S.QUEUED) -> Job:
    return Job(id="j", program_id="p", backend="aer_simulator", params="{}",
               max_execution_time=10, status=status)  # fmt: skip


def test_status_words_are_ibms():
    assert [s.value for s in S] == [
        "Queued", "Running", "Completed", "Failed", "Cancelled", "Cancelled - Ran too long",
    ]  # fmt: skip


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("wanted", list(S))
def test_transition_table(current: JobStatus, wanted: JobStatus):
    if (current, wanted) in LEGAL:
        assert transition(job(current), wanted).status is wanted
    else:
        with pytest.raises(IllegalTransition):
            transition(job(current), wanted)


def test_final_statuses():
    assert {s for s in S if s.is_final} == {
        S.COMPLETED, S.FAILED, S.CANCELLED, S.CANCELLED_RAN_TOO_LONG,
    }  # fmt: skip


def test_transition_records_times_attempts_and_reason():
    at = datetime(2026, 1, 1, tzinfo=UTC)
    running = transition(job(), S.RUNNING, at=at, executor_id="ex1")
    assert (running.started, running.attempt, running.executor_id) == (at, 1, "ex1")
    failed = transition(running, S.FAILED, at=at, reason="boom")
    assert (failed.ended, failed.reason, failed.attempt) == (at, "boom", 1)
    requeued = transition(running, S.QUEUED, reason="executor lost")
    assert (requeued.started, requeued.executor_id, requeued.attempt) == (None, None, 1)
    assert transition(requeued, S.RUNNING).attempt == 2


def test_dict_round_trip_ignores_unknown_keys():
    original = transition(Job(id="j", program_id="p", backend="b", params='{"a": 1}',
                              max_execution_time=5, tags=("x", "y")), S.RUNNING)  # fmt: skip
    doc = job_to_dict(original)
    doc["added_by_a_later_version"] = True
    assert job_from_dict(doc) == original


def test_plain_is_asdict_without_the_copies():
    a_job = Job(id="j", program_id="p", backend="b", params="{}", max_execution_time=5, tags=("t",))
    # The same JSON as asdict's dicts (tuples become lists).
    mine, theirs = (json.dumps(d, default=str) for d in (plain(a_job), dataclasses.asdict(a_job)))
    assert json.loads(mine) == json.loads(theirs)


def test_an_encoded_message_shares_nothing_with_the_message():
    events = JobEvents(
        "j", [JobEvent("j", EventKind.LOG, 1, data="x"), JobEvent("j", EventKind.FINISHED, 1)]
    )
    beat = Heartbeat("ex", 2, ["aer_simulator"], {"j": 1})
    assert encode(beat)["running"] == {"j": 1} and encode(beat)["running"] is not beat.running
    assert encode(events)["events"][0]["kind"] == "log"
    assert encode(events)["events"] is not events.events
