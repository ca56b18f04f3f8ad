"""Nothing a job starts outlives it: processes that leave the job's session and double-fork
end with the job, for every kind of program and every way a job ends. Real job processes from
a real zygote, a real bubblewrap sandbox, a real executor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from qrt_common.jobs import JobStatus
from qrt_common.messages import EventKind
from qrt_common.programs import planqk_input
from qrt_executor.pool import WarmPool
from qrt_executor.process_tree import (
    _children_by_parent,
    children,
    kill_tree,
    live_descendants,
)
from tests.executor.test_oneshot_and_template import one_shot, template
from tests.executor.test_runner import run
from tests.support.escaper import ESCAPER, survivors
from tests.support.executors import LoneExecutor, Run
from tests.support.waiting import TIME_SCALE, eventually, eventually_sync

on_the_modules_loop = pytest.mark.asyncio(loop_scope="module")

KINDS = ["qiskit-runtime", "python-template", "one-shot"]
ENDINGS = {
    # ending: (how the program ends, the outcome)
    "completion": ("return", JobStatus.COMPLETED),
    "failure": ("raise", JobStatus.FAILED),
    "cancel": ("hang", JobStatus.CANCELLED),
    "time-out": ("hang", JobStatus.CANCELLED_RAN_TOO_LONG),
}
TIME_LIMIT = 8.0 * TIME_SCALE
"""Of the time-out runs: ample for the program to start its escapers first (checked)."""


@pytest.fixture
def token() -> Iterator[str]:
    """A word the escapers of one test carry in their command line; they are killed after it."""
    word = f"qrt-escaper-{secrets.token_hex(6)}"
    yield word
    for pid in survivors(word):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def escaper_params(kind: str, token: str, end: str) -> dict[str, Any]:
    common = {"escaper": str(ESCAPER), "escaper_source": ESCAPER.read_text(), "token": token,
              "end": end}  # fmt: skip
    if kind == "qiskit-runtime":
        return common
    if kind == "python-template":
        return {"respond": "escape", **common}
    return {"print": "escape", **common}


async def escaped(token: str) -> list[int]:
    return await eventually(
        lambda: survivors(token), "the escapers run", until=lambda found: len(found) == 2
    )


async def all_gone(token: str) -> None:
    await eventually(lambda: survivors(token), "nothing the job started outlives it",
                     until=lambda found: found == [], timeout=20)  # fmt: skip


@on_the_modules_loop
@pytest.mark.parametrize("ending", ENDINGS)
@pytest.mark.parametrize("kind", KINDS)
async def test_nothing_a_job_starts_outlives_it(pool, programs_dir, tmp_path, token, kind, ending):
    end, status = ENDINGS[ending]
    stop: asyncio.Future[JobStatus] = asyncio.get_running_loop().create_future()

    async def cancel_once_escaped() -> None:
        await escaped(token)
        stop.set_result(JobStatus.CANCELLED)

    canceller = asyncio.create_task(cancel_once_escaped()) if ending == "cancel" else None
    time_limit = TIME_LIMIT if ending == "time-out" else 60
    params = escaper_params(kind, token, end)
    result: Run
    if kind == "qiskit-runtime":
        result = await run(pool, programs_dir, "escaper", params, stop=stop,
                           time_limit=time_limit, workdir=tmp_path)  # fmt: skip
    elif kind == "python-template":
        result = await template(pool, params, stop=stop, time_limit=time_limit, workdir=tmp_path)
    else:
        result = await one_shot(params, stop=stop, time_limit=time_limit)
    if canceller is not None:
        await canceller
    assert result.outcome.status is status, (result.outcome, result.log)
    if ending != "cancel":  # (a cancel comes once both escapers run, perhaps before the publish)
        # The escapers ran, and the program published their pids, before the job ended.
        interims = [json.loads(e.data or "") for e in result.of(EventKind.INTERIM)]
        assert [len(i["escaped"]) for i in interims] == [2], result.log
    await all_gone(token)


@on_the_modules_loop
@pytest.mark.parametrize("how", ["drain", "close"])
async def test_an_executor_shutdown_ends_what_its_jobs_started(tmp_path, how):
    lone = await LoneExecutor.started(tmp_path, drain_seconds=0)
    programs = {"qiskit-runtime": "escaper", "python-template": "planqk-modes",
                "one-shot": "oneshot-modes"}  # fmt: skip
    tokens = {kind: f"qrt-escaper-{secrets.token_hex(6)}" for kind in KINDS}
    try:
        for kind, program in programs.items():
            params = escaper_params(kind, tokens[kind], "hang")
            text = json.dumps(params) if kind == "qiskit-runtime" else planqk_input({}, params)
            await lone.assign(program, text, time_limit=600)
        for token in tokens.values():
            await escaped(token)
        if how == "drain":
            await lone.executor.drain(0)
    finally:
        await lone.close()
    try:
        for token in tokens.values():
            await all_gone(token)
    finally:
        for token in tokens.values():
            for pid in survivors(token):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@on_the_modules_loop
async def test_a_job_lost_with_its_zygote_takes_what_it_started_along(
    programs_dir, tmp_path, token
):
    # The zygote killed outright: the executor ends each of its job processes' whole tree.
    pool = WarmPool(size=0)
    await pool.start()
    try:
        params = escaper_params("qiskit-runtime", token, "hang")
        running = asyncio.create_task(run(pool, programs_dir, "escaper", params, workdir=tmp_path))
        await escaped(token)
        zygote = pool._zygote._process
        assert zygote is not None
        os.kill(zygote.pid, signal.SIGKILL)
        result = await running
        assert result.outcome.reason == "the job process was lost with the executor's zygote"
        await all_gone(token)
    finally:
        await pool.close()


EXECUTOR = """
import asyncio, sys
sys.path[:0] = {paths!r}
from qrt_common.programs import ProgramKind
from qrt_executor.job_protocol import Launch
from qrt_executor.pool import WarmPool
from qrt_executor.runner import JobOutput, run_job

async def main():
    pool = WarmPool(size=0)
    await pool.start()
    proc = await pool.acquire()

    async def send(batch):
        pass

    output = JobOutput("job-1", 1, "ex", send, max_log_bytes=1 << 20)
    launch = Launch(job_id="job-1", kind=ProgramKind.QISKIT_RUNTIME, module="escaper.escaper",
                    search_path={programs!r}, project_dir={programs!r}, backend="aer_simulator",
                    params={params!r}, workdir={workdir!r})
    await run_job(proc, launch, output, time_limit=3600,
                  stop=asyncio.get_running_loop().create_future())

asyncio.run(main())
"""


def test_an_executor_killed_outright_takes_what_its_jobs_started_along(
    programs_dir, tmp_path, token
):
    # Its zygote learns of it from the kernel and ends the job process's whole tree.
    params = json.dumps(escaper_params("qiskit-runtime", token, "hang"))
    script = EXECUTOR.format(paths=sys.path, programs=str(programs_dir), params=params,
                             workdir=str(tmp_path))  # fmt: skip
    executor = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    try:
        eventually_sync(lambda: survivors(token), "the escapers run",
                        until=lambda found: len(found) == 2, timeout=60,
                        give_up=lambda: "the executor ended" if executor.poll() is not None
                        else None)  # fmt: skip
    finally:
        executor.kill()
        executor.communicate()
    eventually_sync(lambda: survivors(token), "nothing the job started outlives it",
                    until=lambda found: found == [], timeout=20)  # fmt: skip


def test_a_subreaper_keeps_what_leaves_its_session_and_kill_tree_ends_it(tmp_path, token):
    # A stand-in job process: a subreaper, whose child leaves its session and double-forks.
    script = (
        "import subprocess, sys, time\n"
        "from qrt_common.processes import become_subreaper\n"
        "assert become_subreaper()\n"
        f"subprocess.Popen([sys.executable, {str(ESCAPER)!r}, {token!r}, {str(tmp_path)!r}],\n"
        "                 start_new_session=True)\n"
        "time.sleep(3600)\n"
    )
    root = subprocess.Popen([sys.executable, "-c", script])
    try:
        # Until the double fork's middle process has exited, the daemon is not orphaned yet.
        running = eventually_sync(
            lambda: survivors(token),
            "the escapers run and the daemon was handed to the subreaper",
            until=lambda found: len(found) == 2 and sorted(children(root.pid)) == sorted(found),
        )
        escapers = sorted(running)
        # The orphaned daemon came to the subreaper, as the children files and every
        # process's parent (what a kernel without those files gives) both say.
        assert sorted(children(root.pid)) == sorted(_children_by_parent(root.pid)) == escapers
        assert sorted(live_descendants(root.pid)) == escapers
        kill_tree(root.pid)
        assert root.wait(timeout=30) == -signal.SIGKILL
        eventually_sync(lambda: survivors(token), "nothing the tree held outlives it",
                        until=lambda found: found == [], timeout=20)  # fmt: skip
    finally:
        root.kill()
        root.wait()


def test_kill_tree_by_pidfd_spares_a_process_that_took_the_ended_ones_pid():
    # A job's end may be reported before its process exits (runner): the kill that follows
    # must not reach whatever process has its pid by then.
    ended = subprocess.Popen(["true"])
    pidfd = os.pidfd_open(ended.pid)
    ended.wait()
    other = subprocess.Popen(["sleep", "30"])
    try:
        kill_tree(other.pid, pidfd)  # as though `other` had taken the ended process's pid
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
        os.close(pidfd)
