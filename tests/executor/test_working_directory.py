"""An executor started in /tmp, as the images start it (WORKDIR /tmp): its jobs still get a /tmp
of their own. (The zygote once put its working directory on sys.path, which the sandbox keeps
readable: the executor's /tmp, read-only, replaced the job's, so a job could neither write its
temporary files nor be kept from the other jobs' directories.)"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from qrt_common.jobs import JobStatus
from tests.support.executors import LoneExecutor
from tests.support.platform import make_settings
from tests.support.programs import merge_programs


@pytest.fixture
def elsewhere() -> Iterator[Path]:
    """A directory in the machine's /tmp that no job may see."""
    path = Path(f"/tmp/qrt-not-for-jobs-{os.getpid()}")
    path.mkdir()
    yield path
    path.rmdir()


async def test_jobs_of_an_executor_started_in_tmp_write_their_own_tmp(
    tmp_path: Path, elsewhere: Path
):
    was = os.getcwd()
    os.chdir("/tmp")
    try:
        lone = await LoneExecutor.started(tmp_path)
    finally:
        os.chdir(was)
    try:
        run = await lone.run("intruder", json.dumps({"attack": "write", "path": "/tmp/mine"}))
        assert run.outcome.status is JobStatus.COMPLETED, run.log[-2000:]
        assert run.results[0] == "wrote"
        run = await lone.run("intruder", json.dumps({"attack": "list", "path": "/tmp"}))
        assert elsewhere.name not in run.results[0]
    finally:
        await lone.close()


async def test_an_executor_compiles_the_registered_programs_its_jobs_may_not(tmp_path: Path):
    """Job processes cannot write `__pycache__` beside their program: the executor compiles the
    registered programs at its start, so jobs load bytecode; a file that does not compile is
    left for its job to report."""
    programs = merge_programs(tmp_path / "programs")
    for cache in list(programs.rglob("__pycache__")):
        shutil.rmtree(cache)
    broken = programs / "hello_quantum" / "broken_helper.py"
    broken.write_text("def f(:\n")
    lone = LoneExecutor(make_settings(tmp_path, programs, warm_pool_size=1))
    await lone.start()
    try:
        compiled = {path.name.split(".")[0] for path in programs.rglob("__pycache__/*.pyc")}
        assert {"circuit_runner", "sampler", "hello_quantum"} <= compiled, compiled
        assert "broken_helper" not in compiled
        run = await lone.run("hello-quantum", json.dumps({"greeting": "hi"}))
        assert run.outcome.status is JobStatus.COMPLETED, run.log[-2000:]
    finally:
        await lone.close()
