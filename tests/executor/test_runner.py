"""The executor's runner against real job processes from the warm pool (a real zygote)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder

from qrt_common.jobs import JobStatus
from qrt_common.messages import EventKind, JobEvent
from qrt_common.programs import ProgramKind
from qrt_common.results import DEFAULT_MAX_INTERIMS_BYTES
from qrt_executor.job_protocol import Launch
from qrt_executor.pool import WarmPool
from qrt_executor.runner import MAX_LINE_BYTES, JobOutput, LineSplitter, Outcome, Pace, run_job
from tests.support.executors import Run
from tests.support.programs import write_program
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def run(
    pool: WarmPool,
    programs_dir: Path,
    program: str,
    params: Any = None,
    *,
    time_limit: float = 30,
    stop: asyncio.Future[JobStatus] | None = None,
    max_log_bytes: int = 1 << 20,
    max_interims_bytes: int = DEFAULT_MAX_INTERIMS_BYTES,
    backend: str = "aer_simulator",
    workdir: Path | None = None,
) -> Run:
    events: list[JobEvent] = []

    async def send(batch: list[JobEvent]) -> None:
        events.extend(batch)

    output = JobOutput(
        "job-1", 1, "ex", send, max_log_bytes=max_log_bytes, max_interims_bytes=max_interims_bytes
    )
    launch = Launch(
        job_id="job-1",
        kind=ProgramKind.QISKIT_RUNTIME,
        module=f"{program}.{program}",
        search_path=str(programs_dir),
        project_dir=str(programs_dir),
        backend=backend,
        params=json.dumps(params or {}, cls=RuntimeEncoder),
        workdir=str(workdir or programs_dir),
    )
    proc = await pool.acquire()
    stop = stop or asyncio.get_running_loop().create_future()
    try:
        outcome = await run_job(proc, launch, output, time_limit=time_limit, stop=stop)
    finally:
        proc.close()
    await output.close()
    return Run(outcome, events)


async def test_return_value_is_the_final_result(pool, programs_dir):
    result = await run(pool, programs_dir, "noop")
    assert result.outcome == Outcome(JobStatus.COMPLETED)
    assert [e.data for e in result.of(EventKind.RESULT)] == ['"ok"']


async def test_inputs_and_outputs_go_through_the_runtime_codec(pool, programs_dir):
    circuit = QuantumCircuit(3, name="ghz")
    params = {"circuit": circuit, "z": 1 + 2j, "array": np.arange(4), "n": 3}
    result = await run(pool, programs_dir, "echo", params, backend="aer_simulator_statevector")
    assert result.outcome.status is JobStatus.COMPLETED, result.log
    assert "circuit ghz 3" in result.log and "backend aer_simulator_statevector" in result.log
    interim = json.loads(result.of(EventKind.INTERIM)[0].data or "")
    assert interim == {"keys": ["array", "circuit", "n", "z"]}
    final = json.loads(result.of(EventKind.RESULT)[0].data or "", cls=RuntimeDecoder)
    assert final["z"] == 1 + 2j and final["n"] == 3
    assert list(final["array"]) == [0, 1, 2, 3]
    assert isinstance(final["circuit"], QuantumCircuit) and final["circuit"].name == "ghz"


async def test_stdout_and_stderr_become_the_log_in_numbered_chunks(pool, programs_dir):
    result = await run(pool, programs_dir, "chatty", {"lines": 2000, "width": 100})
    assert result.outcome.status is JobStatus.COMPLETED
    lines = result.log.splitlines()
    assert [line for line in lines if line.startswith("out ")] == [
        f"out {n} " + "x" * 100 for n in range(2000)
    ]
    assert sum(line.startswith("err ") for line in lines) == 2000
    seqs = [e.seq for e in result.of(EventKind.LOG)]
    assert seqs == list(range(len(seqs))) and 1 < len(seqs) < 2000


async def test_log_is_capped_and_a_job_over_it_fails_naming_the_limit(pool, programs_dir):
    result = await run(pool, programs_dir, "chatty", {"lines": 5000, "width": 100},
                       max_log_bytes=10_000)  # fmt: skip
    assert result.outcome == Outcome(
        JobStatus.FAILED, "log output limit reached: 10000 bytes (QRT_MAX_LOG_BYTES)"
    )
    assert len(result.log) < 11_000
    assert result.log.rstrip().endswith("[qrt] log truncated at 10000 bytes")


def padded(count: int) -> dict[str, Any]:
    """Params of `shaper` that publish `count` interim results of about 1 KB, printing nothing
    else."""
    return {"interims": [f'{{"i": {i}, "pad": "x" * 1000}}' for i in range(count)]}


def echo(i: int) -> str:
    return json.dumps({"i": i, "pad": "x" * 1000})


async def test_the_log_shows_published_interims_without_counting_them(pool, programs_dir):
    # 300 interims of about 1 KB: thirty times the log's limit, echoed in it all the same.
    result = await run(pool, programs_dir, "shaper", padded(300), max_log_bytes=10_000)
    assert result.outcome == Outcome(JobStatus.COMPLETED), result.log[-500:]
    assert [interim["i"] for interim in result.interims] == list(range(300))
    assert result.log.splitlines() == [echo(i) for i in range(300)]


async def test_interims_over_their_own_limit_are_dropped_and_the_log_stays_open(pool, programs_dir):
    result = await run(pool, programs_dir, "shaper", padded(300), max_log_bytes=10_000,
                       max_interims_bytes=100_000)  # fmt: skip
    assert result.outcome == Outcome(JobStatus.COMPLETED), result.log[-500:]
    kept = len(result.interims)
    assert 90 < kept < 100
    note = (
        "[qrt] later interim results dropped: this attempt's reached QRT_MAX_INTERIMS_BYTES "
        "(100000 bytes)"
    )
    lines = result.log.splitlines()
    # The note comes when the executor takes the first frame over the limit, which may be
    # before it read the echoes of the last kept ones; the dropped ones are not echoed.
    assert lines.count(note) == 1
    lines.remove(note)
    assert lines == [echo(i) for i in range(kept)]


async def test_a_line_printed_like_an_interim_counts_against_the_log(pool, programs_dir):
    # A program cannot print past the log's limit by printing what it did not publish.
    params = {"result": f"[print({echo(0)!r}) for _ in range(20)]"}
    result = await run(pool, programs_dir, "shaper", params, max_log_bytes=10_000)
    assert result.outcome == Outcome(
        JobStatus.FAILED, "log output limit reached: 10000 bytes (QRT_MAX_LOG_BYTES)"
    )


async def test_the_final_result_counts_against_the_result_limit_not_the_log(pool, programs_dir):
    # The return value is published as the final result, its text printed (as Qiskit Runtime
    # logs it) before its frame is sent: three times the log's limit.
    final = json.dumps({"pad": "x" * 30_000})
    params = {"interims": ["'after'"], "result": "print('before') or {'pad': 'x' * 30_000}"}
    result = await run(pool, programs_dir, "shaper", params, max_log_bytes=10_000)
    assert result.outcome == Outcome(JobStatus.COMPLETED), result.log[-300:]
    assert [e.data for e in result.of(EventKind.RESULT)] == [final]
    assert result.log.splitlines() == ['"after"', "before", final]
    # Published with `final=True` and followed by more output: that output has the whole log.
    params = {"result": "user_messenger.publish('x' * 6_000, final=True) or print('y' * 9_000)"}
    result = await run(pool, programs_dir, "shaper", params, max_log_bytes=10_000)
    assert result.outcome == Outcome(JobStatus.COMPLETED), result.log[-300:]
    assert result.log.splitlines() == [json.dumps("x" * 6_000), "y" * 9_000]


async def test_a_line_printed_like_the_final_result_counts_against_the_log(pool, programs_dir):
    text = json.dumps({"pad": "x" * 30_000})
    params = {"result": f"print({text!r}) or 'done'"}
    result = await run(pool, programs_dir, "shaper", params, max_log_bytes=10_000)
    assert result.outcome == Outcome(
        JobStatus.FAILED, "log output limit reached: 10000 bytes (QRT_MAX_LOG_BYTES)"
    )


async def test_exception_fails_the_job_with_the_traceback_in_the_log(pool, programs_dir):
    result = await run(pool, programs_dir, "failing")
    assert result.outcome == Outcome(JobStatus.FAILED, "ValueError: boom")
    assert "about to fail" in result.log
    assert "Traceback (most recent call last)" in result.log
    assert 'raise ValueError("boom")' in result.log
    assert not result.of(EventKind.RESULT)


async def test_bad_params_fail_inside_the_program_process(pool, programs_dir):
    result = await run(pool, programs_dir, "sleeper", {"unexpected": 1})
    assert result.outcome.status is JobStatus.FAILED
    assert "TypeError" in (result.outcome.reason or "")


@pytest.mark.parametrize(
    ("how", "reason"),
    [("exit", "program process exited with code 3"), ("kill", "program process killed by SIGKILL")],
)
async def test_process_death_without_exception(pool, programs_dir, how, reason):
    result = await run(pool, programs_dir, "crasher", {"how": how})
    assert result.outcome == Outcome(JobStatus.FAILED, reason)
    assert "going down" in result.log


async def test_running_past_the_limit_is_cancelled_ran_too_long(pool, programs_dir):
    started = time.monotonic()
    result = await run(pool, programs_dir, "overtime", time_limit=1)
    assert result.outcome == Outcome(JobStatus.CANCELLED_RAN_TOO_LONG, "ran longer than 1 s")
    assert time.monotonic() - started < 5
    assert [e.data for e in result.of(EventKind.INTERIM)] == ['"started"']


def stop_when_written(path: Path) -> tuple[asyncio.Future[JobStatus], asyncio.Task[None]]:
    """A stop request made as soon as the program has written `path`, and its watcher."""
    stop: asyncio.Future[JobStatus] = asyncio.get_running_loop().create_future()

    def written() -> bool:
        return path.exists() and bool(path.read_text())

    async def watch() -> None:
        await eventually(lambda: asyncio.to_thread(written), f"the program writes {path.name}")
        stop.set_result(JobStatus.CANCELLED)

    return stop, asyncio.create_task(watch())


def pids_running(argv: list[str]) -> list[int]:
    """The machine's processes whose command line is `argv` (pids as this process sees them: a
    job's own may differ, in a PID namespace of its own)."""
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/cmdline").read_bytes() == wanted:
                found.append(int(entry))
        except OSError:
            continue
    return found


async def test_stop_kills_the_program_and_what_it_started(pool, programs_dir, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    seconds = f"1000.{os.getpid()}{time.monotonic_ns() % 10**6}"  # this run's grandchild alone
    _, written = stop_when_written(pidfile)
    params = {"pidfile": str(pidfile), "seconds": seconds}
    grandchildren: list[int] = []

    async def seen() -> bool:
        grandchildren[:] = await asyncio.to_thread(pids_running, ["sleep", seconds])
        return bool(grandchildren)

    async def cancel_once_seen() -> JobStatus:
        await written
        await eventually(seen, "the program's own child process runs")
        return JobStatus.CANCELLED

    cancel = asyncio.ensure_future(cancel_once_seen())
    # The job writes only in its working directory (its Landlock domain).
    result = await run(pool, programs_dir, "spawner", params, stop=cancel, workdir=tmp_path)
    assert result.outcome == Outcome(JobStatus.CANCELLED, "cancelled on request")
    [grandchild] = grandchildren
    await eventually(lambda: gone(grandchild), "the program's own child process ends with it")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_publishes_are_logged_and_the_first_final_wins_downstream(pool, programs_dir):
    result = await run(pool, programs_dir, "twofinals")
    assert result.outcome.status is JobStatus.COMPLETED
    assert [e.data for e in result.of(EventKind.RESULT)] == ['"first"', '"second"']
    assert result.log.splitlines() == ['"first"', '"second"']


async def test_a_program_that_returns_nothing_completes_without_result(pool, programs_dir):
    result = await run(pool, programs_dir, "silent")
    assert result.outcome.status is JobStatus.COMPLETED
    assert not result.of(EventKind.RESULT)


async def test_missing_module_fails_clearly(pool, programs_dir):
    result = await run(pool, programs_dir, "does_not_exist")
    assert result.outcome.status is JobStatus.FAILED
    assert "ModuleNotFoundError" in (result.outcome.reason or "")


async def test_a_malformed_frame_from_the_program_is_ignored(pool, programs_dir, tmp_path):
    source = (
        "def main(backend, messenger):\n"
        "    messenger.send({'kind': 'interim'})\n"
        "    messenger.send({'kind': 'final', 'data': 5})\n"
        "    return 'fine'\n"
    )
    write_program(programs_dir, "badframe", {"name": "badframe"}, source)
    result = await run(pool, programs_dir, "badframe")
    assert result.outcome.status is JobStatus.COMPLETED
    assert result.log.count("ignored a malformed frame") == 2
    assert [e.data for e in result.of(EventKind.RESULT)] == ['"fine"']


async def test_a_job_process_sees_the_executors_environment(pool, programs_dir):
    # The zygote runs with settings of its own (its heap in huge pages): its job processes
    # and what they start must not inherit them.
    source = (
        "import os\n"
        "def main(backend, messenger):\n"
        "    return [os.environ.get('PYTHONMALLOC'), os.environ.get('GLIBC_TUNABLES'),\n"
        "            os.environ.get('QRT_ZYGOTE_RESTORE')]\n"
    )
    write_program(programs_dir, "environ", {"name": "environ"}, source)
    result = await run(pool, programs_dir, "environ")
    expected = [os.environ.get("PYTHONMALLOC"), os.environ.get("GLIBC_TUNABLES"), None]
    assert [json.loads(e.data or "") for e in result.of(EventKind.RESULT)] == [expected]


async def test_each_job_gets_a_simulator_of_its_own(pool, programs_dir):
    # Simulators are built ahead in the zygote, and each job process takes its own copy: what
    # a job does to its backend stays in that job.
    source = (
        "from qrt_executor import job_backends\n"
        "def main(backend, messenger):\n"
        "    shots = backend.options.shots\n"
        "    backend.set_options(shots=7)\n"
        "    return [backend.name, shots, sorted(job_backends._simulators)]\n"
    )
    write_program(programs_dir, "shots", {"name": "shots"}, source)
    for backend, other in [
        ("aer_simulator", "aer_simulator_statevector"),
        ("aer_simulator", "aer_simulator_statevector"),
        ("aer_simulator_statevector", "aer_simulator"),
    ]:
        result = await run(pool, programs_dir, "shots", backend=backend)
        assert [json.loads(e.data or "") for e in result.of(EventKind.RESULT)] == [
            [backend, 1024, [other]]
        ]


async def test_long_lines_come_in_pieces_and_a_large_result_whole(pool, programs_dir):
    source = (
        "import sys\n"
        "def main(backend, messenger):\n"
        "    print('x' * (3 * 1024 * 1024 + 5))\n"
        "    print('\u00e9 fin', file=sys.stderr)\n"
        "    return 'y' * (5 * 1024 * 1024)\n"
    )
    write_program(programs_dir, "longlines", {"name": "longlines"}, source)
    result = await run(pool, programs_dir, "longlines", max_log_bytes=9 << 20)
    assert result.outcome.status is JobStatus.COMPLETED
    lines = result.log.splitlines()
    pieces = [line for line in lines if line.startswith("x")]
    assert all(len(piece) <= MAX_LINE_BYTES + 65536 for piece in pieces) and len(pieces) >= 3
    assert sum(map(len, pieces)) == 3 * 1024 * 1024 + 5
    assert "\u00e9 fin" in lines  # stdout and stderr are UTF-8 whatever the executor's locale
    assert [json.loads(e.data or "") for e in result.of(EventKind.RESULT)] == ["y" * (5 << 20)]


async def test_lines_are_split_across_chunks_and_cut_when_endless():
    splitter = LineSplitter(max_line=10)
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"c\nde") == ["abc"]
    assert splitter.feed(b"f\n\ng\xc3") == ["def", ""]
    assert splitter.feed(b"\xa9") == []
    assert splitter.finish() == ["g\u00e9"]
    assert splitter.finish() == []
    assert splitter.feed(b"0123456") == []
    assert splitter.feed(b"789ab") == ["0123456789ab"]  # past max_line: given as it is
    assert splitter.feed(b"c\n") == ["c"]


async def test_job_output_is_prepared_in_a_zygote_started_without_stdout():
    # An executor started with its standard output closed hands its zygote none: the job
    # processes' streams must still reach the job's log.
    script = (
        "import sys\n"
        "from qrt_executor import child\n"
        "child.prepare_output()\n"
        "print('to fd 1')\n"
        "print('to fd 2', file=sys.stderr)\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, preexec_fn=lambda: os.close(1),
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 0, err
    assert err.decode() == "to fd 2\n"


async def test_a_short_jobs_events_share_one_message():
    sent: list[list[JobEvent]] = []

    async def send(batch: list[JobEvent]) -> None:
        sent.append(batch)

    output = JobOutput("job-1", 1, "ex", send, max_log_bytes=1 << 20)
    output.event(EventKind.RUNNING)
    output.log("hello")
    output.event(EventKind.RESULT, data='"r"')
    output.event(EventKind.FINISHED, status="Completed")
    await output.close()
    assert [[e.kind for e in batch] for batch in sent] == [
        [EventKind.RUNNING, EventKind.LOG, EventKind.RESULT, EventKind.FINISHED]
    ]


async def test_an_attempts_interim_results_are_capped_in_total():
    sent: list[JobEvent] = []

    async def send(batch: list[JobEvent]) -> None:
        sent.extend(batch)

    output = JobOutput("job-1", 1, "ex", send, max_log_bytes=1 << 20, max_interims_bytes=2500)
    for step in range(5):
        output.interim(json.dumps({"step": step, "data": "x" * 1000}))
    output.event(EventKind.FINISHED, status="Completed")
    await output.close()
    interims = [json.loads(e.data or "") for e in sent if e.kind is EventKind.INTERIM]
    assert [interim["step"] for interim in interims] == [0, 1]
    log = "".join(e.data or "" for e in sent if e.kind is EventKind.LOG)
    assert log == (
        "[qrt] later interim results dropped: this attempt's reached QRT_MAX_INTERIMS_BYTES "
        "(2500 bytes)\n"
    )


async def test_an_event_waits_for_company_only_briefly():
    from qrt_executor.runner import EVENT_LINGER_SECONDS

    sent: list[tuple[float, list[EventKind]]] = []

    async def send(batch: list[JobEvent]) -> None:
        sent.append((time.monotonic(), [e.kind for e in batch]))

    output = JobOutput("job-1", 1, "ex", send, max_log_bytes=1 << 20)
    started = time.monotonic()
    output.event(EventKind.RUNNING)
    await eventually(lambda: sent, "the first event is sent")
    assert len(sent) == 1 and sent[0][1] == [EventKind.RUNNING]
    assert sent[0][0] - started >= EVENT_LINGER_SECONDS * 0.9
    await output.close()


async def test_the_end_of_an_attempt_waits_for_no_company(monkeypatch):
    # With a linger far longer than the wait below, only an end that goes at once (taking
    # the lingering event along) can be seen.
    monkeypatch.setattr("qrt_executor.runner.EVENT_LINGER_SECONDS", 600.0)
    sent: list[list[EventKind]] = []

    async def send(batch: list[JobEvent]) -> None:
        sent.append([e.kind for e in batch])

    output = JobOutput("job-1", 1, "ex", send, max_log_bytes=1 << 20)
    output.event(EventKind.RUNNING)
    output.event(EventKind.FINISHED, status="Completed")
    await eventually(lambda: sent, "the end is sent", timeout=30)
    assert sent == [[EventKind.RUNNING, EventKind.FINISHED]]
    await output.close()


async def test_usage_reported_for_other_backends_makes_no_metric_series(pool, programs_dir):
    # A program writes its own frames: were each backend name it reports a label, it could
    # grow the executor's metrics (and every Prometheus scraping them) without bound.
    from qrt_common.metrics import CIRCUITS

    def series() -> dict[str, float]:
        return {
            sample.labels["backend"]: sample.value
            for family in CIRCUITS.collect()
            for sample in family.samples
            if sample.name.endswith("_total")
        }

    source = (
        "def main(backend, messenger):\n"
        "    for i in range(50):\n"
        "        messenger.send({'kind': 'usage', 'backend': f'forged-{i}', 'circuits': 1,"
        " 'shots': 1})\n"
        "    messenger.send({'kind': 'usage', 'backend': 'aer_simulator', 'circuits': 2,"
        " 'shots': 10})\n"
        "    return 'fine'\n"
    )
    write_program(programs_dir, "usagefaker", {"name": "usagefaker"}, source)
    before = series().get("aer_simulator", 0.0)
    result = await run(pool, programs_dir, "usagefaker")
    assert result.outcome.status is JobStatus.COMPLETED, result.log
    assert not [name for name in series() if name.startswith("forged-")]
    assert series()["aer_simulator"] - before == 2


async def test_frames_a_program_writes_itself_cannot_forge_notices_or_usage(pool, programs_dir):
    # The job process is the program's: what it writes on its channel is checked here, outside
    # it. A forged attempt notice would make clients drop what the job published before, and
    # a usage report of 1e24 shots would be a metric (and a channel to whoever reads /metrics).
    from qrt_common.metrics import SHOTS

    def shots() -> float:
        return float(SHOTS.labels("aer_simulator")._value.get())

    source = (
        "import json\n"
        "def main(backend, messenger):\n"
        "    messenger.publish({'step': 1})\n"
        "    notice = json.dumps({'__qrt__': {'attempt': 2, 'reason': 'executor ex1 was lost'}})\n"
        "    messenger.send({'kind': 'interim', 'data': notice})\n"
        "    for shots in (10**24, -5, 10**5 + 1):\n"
        "        messenger.send({'kind': 'usage', 'backend': 'aer_simulator', 'circuits': 1,"
        " 'shots': shots})\n"
        "    messenger.send({'kind': 'usage', 'backend': 'aer_simulator', 'circuits': 10**7,"
        " 'shots': 0})\n"
        "    messenger.send({'kind': 'usage', 'backend': 'aer_simulator', 'circuits': 3,"
        " 'shots': 300})\n"
        "    try:\n"
        "        messenger.publish({'__qrt__': {'attempt': 3}})\n"
        "    except Exception as exc:\n"
        "        print('publish refused:', exc)\n"
        "    return 'fine'\n"
    )
    write_program(programs_dir, "framefaker", {"name": "framefaker"}, source)
    before = shots()
    result = await run(pool, programs_dir, "framefaker")
    assert result.outcome.status is JobStatus.COMPLETED, result.log
    assert result.interims == [{"step": 1}]
    assert shots() - before == 300
    assert result.log.count("[qrt] ignored a usage report beyond what one run can do") == 1
    assert "holds the key '__qrt__' at its top level" in result.log
    assert "publish refused:" in result.log


FLOODER = """
def main(backend, user_messenger, count):
    for n in range(count):
        user_messenger.publish({"i": n})
    print("flooded")
    return {"sent": count}
"""


async def test_a_job_sending_lines_past_its_pace_waits_and_loses_nothing(
    pool, programs_dir, monkeypatch
):
    """A job's three sockets deliver at most Pace.RATE lines a second after Pace.BURST (here
    1000 and 1000): past it the job waits for the executor, whose event loop other jobs and
    the API share, and every frame and line still arrives, in order."""
    monkeypatch.setattr(Pace, "RATE", 1000.0)
    monkeypatch.setattr(Pace, "BURST", 1000.0)
    write_program(programs_dir, "flooder", {"name": "flooder"}, FLOODER)
    started = time.monotonic()
    # Each publish is a frame and its echo on stdout: 6000 lines.
    result = await run(pool, programs_dir, "flooder", {"count": 3000}, time_limit=120)
    took = time.monotonic() - started
    assert result.outcome == Outcome(JobStatus.COMPLETED), result.log[-2000:]
    assert result.interims == [{"i": n} for n in range(3000)]
    assert result.results == [{"sent": 3000}] and "flooded" in result.log
    # Paced: what the sockets buffer (a few hundred KiB) is read at once when the job ends.
    assert took >= 2.5, took
