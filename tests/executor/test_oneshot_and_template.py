"""PlanQK programs in the executor: Python templates in real warm job processes, one-shot
programs in a real bubblewrap sandbox, and PlanQK's stdout markers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from qrt_common.jobs import JobStatus
from qrt_common.messages import EventKind, JobEvent
from qrt_common.programs import ProgramKind, planqk_input
from qrt_executor import landlock
from qrt_executor.job_protocol import JobLimits, Launch
from qrt_executor.markers import PlanQKStdout
from qrt_executor.oneshot import NO_RESULT, BubblewrapRunner, OneShotInput, run_one_shot
from qrt_executor.pool import WarmPool
from qrt_executor.runner import JobOutput, Outcome, run_job
from tests.executor.test_runner import stop_when_written
from tests.support.executors import Run
from tests.support.programs import TEST_PROGRAMS
from tests.support.sandbox import PLANTED_SECRET, planted_token
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

TEMPLATE_DIR = TEST_PROGRAMS / "planqk_modes"
ONE_SHOT_DIR = TEST_PROGRAMS / "oneshot_modes"
ONE_SHOT_COMMAND = ("python3", "main.py")


def collector(events: list[JobEvent] | None = None) -> tuple[list[JobEvent], JobOutput]:
    events = [] if events is None else events

    async def send(batch: list[JobEvent]) -> None:
        events.extend(batch)

    return events, JobOutput("job-1", 1, "ex", send, max_log_bytes=1 << 20)


def result_of(run: Run) -> Any:
    results = run.of(EventKind.RESULT)
    assert len(results) <= 1
    return json.loads(results[0].data or "") if results else None


def interims_of(run: Run) -> list[Any]:
    return [json.loads(e.data or "") for e in run.of(EventKind.INTERIM)]


async def template(
    pool: WarmPool,
    params: dict[str, Any],
    data: Any = None,
    *,
    stop: asyncio.Future[JobStatus] | None = None,
    time_limit: float = 30,
    workdir: Path,
) -> Run:
    events, output = collector()
    launch = Launch(
        job_id="job-1",
        kind=ProgramKind.PYTHON_TEMPLATE,
        module="planqk_modes",
        search_path=str(TEST_PROGRAMS),
        project_dir=str(TEMPLATE_DIR),
        backend="aer_simulator",
        params=planqk_input(data or {"values": [1]}, params),
        workdir=str(workdir),
    )
    proc = await pool.acquire()
    stop = stop or asyncio.get_running_loop().create_future()
    markers = PlanQKStdout(output, takes_result=False)
    try:
        outcome = await run_job(proc, launch, output, time_limit=time_limit, stop=stop,
                                on_stdout=markers.line)  # fmt: skip
    finally:
        proc.close()
    await output.close()
    return Run(outcome, events)


async def one_shot(
    params: dict[str, Any],
    data: Any = None,
    *,
    runner: BubblewrapRunner | None = None,
    time_limit: float = 30,
    stop: asyncio.Future[JobStatus] | None = None,
    events: list[JobEvent] | None = None,
    limits: JobLimits | None = None,
) -> Run:
    """A one-shot run (with a program's own `limits`, if given); `events`, if given, collects
    its events as they are sent."""
    events, output = collector(events)
    inputs = OneShotInput("job-1", "aer_simulator", json.dumps(data or {"values": [1]}),
                          json.dumps(params), limits)  # fmt: skip
    stop = stop or asyncio.get_running_loop().create_future()
    outcome = await run_one_shot(runner or BubblewrapRunner(), ONE_SHOT_COMMAND, str(ONE_SHOT_DIR),
                                 inputs, output, time_limit=time_limit, stop=stop)  # fmt: skip
    await output.close()
    return Run(outcome, events)


@pytest.mark.parametrize(
    ("respond", "body"),
    [
        ("result", {"result": {"echo": {"values": [1]}}, "metadata": {"respond": "result"}}),
        ("dict", {"plain": {"values": [1]}}),
        ("pydantic", {"answer": 42, "nested": {"data": {"values": [1]}}}),
    ],
)
async def test_template_results(pool, tmp_path, respond, body):
    run = await template(pool, {"respond": respond}, workdir=tmp_path)
    assert run.outcome == Outcome(JobStatus.COMPLETED), run.log
    assert result_of(run) == body
    assert sorted(run.log.splitlines()) == ["stderr line", "stdout line"]


async def test_template_error_response_fails_and_keeps_its_body(pool, tmp_path):
    run = await template(pool, {"respond": "error"}, workdir=tmp_path)
    assert run.outcome == Outcome(JobStatus.FAILED, "values must be numbers (code 400)")
    assert result_of(run) == {"code": "400", "detail": "values must be numbers"}


@pytest.mark.parametrize(
    ("respond", "reason"),
    [
        ("raise", "ValueError: boom"),
        ("exit", "run() exited with 3"),
        ("unserializable", "TypeError: a set is not JSON serializable"),
    ],
)
async def test_template_failures_log_the_traceback(pool, tmp_path, respond, reason):
    run = await template(pool, {"respond": respond}, workdir=tmp_path)
    assert run.outcome == Outcome(JobStatus.FAILED, reason)
    assert "Traceback (most recent call last)" in run.log
    assert result_of(run) is None


async def test_template_interim_markers(pool, tmp_path):
    run = await template(pool, {"respond": "interims"}, workdir=tmp_path)
    assert run.outcome.status is JobStatus.COMPLETED
    assert interims_of(run) == [{"step": 0}, {"step": 1}, {"step": 2}, {"nospace": True}]
    log = run.log
    assert "PlanQK:Job:InterimResult: {not json" in log and "is not JSON" in log
    # A template's result is what run() returns; a result marker is just a line.
    assert 'PlanQK:Job:Result: {"ignored": true}' in log
    assert result_of(run)["metadata"] == {"respond": "interims"}


async def test_template_cancel_kills_the_running_process(pool, tmp_path):
    pidfile = tmp_path / "pid"
    _, written = stop_when_written(pidfile)
    running: list[int] = []  # the job's processes as this process sees them

    async def cancel_once_written() -> JobStatus:
        await written
        pid, namespace = pidfile.read_text().split()
        if namespace == os.readlink("/proc/self/ns/pid"):  # the job process shared this one
            running.append(int(pid))
        else:  # its own PID namespace (whose number may be used again once it is gone)
            running.extend(p for p, theirs in _pid_namespaces() if theirs == namespace)
        return JobStatus.CANCELLED

    stop = asyncio.ensure_future(cancel_once_written())
    run = await template(pool, {"respond": "sleep", "pidfile": str(pidfile)}, stop=stop,
                         workdir=tmp_path)  # fmt: skip
    assert run.outcome == Outcome(JobStatus.CANCELLED, "cancelled on request")
    assert running
    # Its namespace's `cat` ends just after the job process.
    await eventually(lambda: not [pid for pid in running if _alive(pid)], "the job's processes end")


def _alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (ended, not yet collected)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _pid_namespaces() -> list[tuple[int, str]]:
    """Each process of the machine with the PID namespace it is in."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                found.append((int(entry), os.readlink(f"/proc/{entry}/ns/pid")))
    return found


@pytest.mark.parametrize(
    ("mode", "result"),
    [
        ("single", {"data": {"values": [1]}}),
        ("nospace", {"compact": True}),
        ("multiline", {"sum": 42, "list": [1, 2]}),
        ("twice", {"first": 1}),
        ("multiline-first", {"first": "block"}),
    ],
)
async def test_one_shot_result_markers(mode, result):
    run = await one_shot({"print": mode})
    assert run.outcome == Outcome(JobStatus.COMPLETED), run.log
    assert result_of(run) == result
    assert "hello from the sandbox" in run.log and "a line on stderr" in run.log


async def test_one_shot_later_results_are_log_and_interims_count():
    run = await one_shot({"print": "twice"})
    assert '{"second": 2}' in run.log and 'PlanQK:Job:Result: {"third": 3}' in run.log
    assert '{"first": 1}' not in run.log
    single = await one_shot({"print": "single"})
    assert interims_of(single) == [{"progress": 0.5}]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("exit", "program process exited with code 4"),
        ("none", NO_RESULT),
        ("badjson", "the result after PlanQK:Job:Result: is not valid JSON: Expecting property "
                    "name enclosed in double quotes: line 1 column 3 (char 2)"),
        ("badmultiline", "the result after the PlanQK:Job:MultilineResult block is not valid "
                         "JSON: Expecting property name enclosed in double quotes: line 1 "
                         "column 3 (char 2)"),
        ("unclosed", "the PlanQK:Job:MultilineResult block was never closed"),
    ],
)  # fmt: skip
async def test_one_shot_failures(mode, reason):
    run = await one_shot({"print": mode})
    assert run.outcome == Outcome(JobStatus.FAILED, reason), run.log
    assert result_of(run) is None


async def test_one_shot_sandbox(tmp_path):
    hidden = tmp_path / "platform-data"
    hidden.mkdir()
    (hidden / "qrt.db").write_text("other jobs")
    os.environ["QRT_SECRET_FOR_TEST"] = "must not leak"
    try:
        run = await one_shot({"print": "sandbox", "hidden": str(hidden)},
                             runner=BubblewrapRunner(hidden=[hidden]))  # fmt: skip
    finally:
        del os.environ["QRT_SECRET_FOR_TEST"]
    assert run.outcome.status is JobStatus.COMPLETED, run.log
    checks = result_of(run)
    assert checks["input"] == ["data.json", "params.json"]
    assert checks["cwd"] == str(ONE_SHOT_DIR)
    assert checks["network"] != "reachable"
    assert "writable" not in checks
    assert checks["secret_env"] == [] and checks["tmp_writable"] is True
    # Nor through /proc: bubblewrap itself (pid 1 there) started without the executor's, and
    # is outside the program's Landlock domain (where there is one), which keeps it unread.
    seen = len(checks["environments"])
    assert seen == 1 if landlock.fs_access() else seen >= 2, checks["environments"]
    assert not [e for e in checks["environments"] if "must not leak" in e]
    assert checks["pid"] < 10  # a process namespace of its own
    assert checks["hidden"] == []


@pytest.mark.parametrize("ending", ["cancel", "time limit"])
async def test_one_shot_cancel_and_time_limit_kill_the_sandbox(ending):
    stop: asyncio.Future[JobStatus] = asyncio.get_running_loop().create_future()
    events: list[JobEvent] = []
    started = time.monotonic()
    limit = 1 if ending != "cancel" else 30
    running = asyncio.create_task(
        one_shot({"print": "sleep"}, stop=stop, time_limit=limit, events=events)
    )
    if ending == "cancel":
        # Its interim result says the program runs (and sleeps): cancel it then, timed from then.
        await eventually(
            lambda: [e for e in events if e.kind is EventKind.INTERIM],
            "the program's interim result is streamed",
            give_up=lambda: "the run ended" if running.done() else None,
        )
        started = time.monotonic()
        stop.set_result(JobStatus.CANCELLED)
    run = await running
    assert time.monotonic() - started < 5
    if ending == "cancel":
        assert run.outcome == Outcome(JobStatus.CANCELLED, "cancelled on request")
    else:
        assert run.outcome == Outcome(JobStatus.CANCELLED_RAN_TOO_LONG, "ran longer than 1 s")
    # The output written before the end was streamed.
    assert interims_of(run) == [{"sleeping": True}]
    assert "hello from the sandbox" in run.log


async def test_one_shot_without_bubblewrap_fails_clearly():
    run = await one_shot({"print": "single"}, runner=BubblewrapRunner(bwrap="no-such-bwrap"))
    assert run.outcome.status is JobStatus.FAILED
    assert "bubblewrap (bwrap) is not installed" in (run.outcome.reason or "")


@pytest.mark.xdist_group("token-path")  # plants a token, as tests/executor/test_sandbox.py does
@pytest.mark.parametrize("then", ["allocate", "spin"])
async def test_one_shot_sandbox_hides_the_token_and_the_broker_and_applies_the_limits(then):
    limits = JobLimits(memory_bytes=1 << 30, cpu_seconds=1, processes=64, open_files=64)
    with planted_token() as token:
        run = await one_shot({"print": "attack", "then": then},
                             runner=BubblewrapRunner(limits=limits))  # fmt: skip
        assert token.read_text() == PLANTED_SECRET  # there, outside the sandbox
    (found,) = interims_of(run)
    # bubblewrap's network namespace has its own loopback up, with nothing listening.
    assert found["token"] == "FileNotFoundError" and found["broker"] == "ConnectionRefusedError"
    assert found["capabilities"] == ["0000000000000000"]
    assert run.outcome.status is JobStatus.FAILED
    if then == "allocate":
        assert run.outcome.reason == (
            "memory limit reached: the job may use 1073741824 bytes more than it started with "
            "(QRT_JOB_MAX_MEMORY_BYTES)"
        )
    else:
        assert run.outcome.reason == "CPU time limit reached: 1 s (QRT_JOB_MAX_CPU_SECONDS)"


async def test_one_shot_system_calls_an_attacker_wants_are_denied():
    run = await one_shot({"print": "syscalls"})
    assert run.outcome.status is JobStatus.COMPLETED, run.log
    assert result_of(run) == {"ptrace": "EPERM", "unshare": "EPERM", "keyctl": "EPERM",
                              "process": 0}  # fmt: skip


async def test_a_one_shot_programs_own_limits_replace_the_runners():
    runner = BubblewrapRunner(limits=JobLimits(memory_bytes=4 << 30))
    own = JobLimits(
        memory_bytes=1 << 30, set_by={"memory_bytes": "the program's limits.memory_bytes"}
    )
    run = await one_shot({"print": "attack", "then": "allocate"}, runner=runner, limits=own)
    assert run.outcome.reason == (
        "memory limit reached: the job may use 1073741824 bytes more than it started with "
        "(the program's limits.memory_bytes)"
    )
