"""An uploaded program is compiled once it runs a second time, in the one-shot sandbox, and
its later jobs load bytecode; the sandbox writes nowhere else."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qrt_common.jobs import JobStatus
from tests.support.executors import LoneExecutor, Run
from tests.support.programs import zip_of
from tests.support.waiting import eventually

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

PROGRAM = """
import os

import helper


def main(backend, user_messenger):
    return {"answer": helper.answer(), "compiled": os.path.exists(helper.__cached__)}
"""

HELPER = "def answer():\n    return 42\n" + "".join(f"X{n} = {n}\n" for n in range(2000))


async def run_uploaded(lone: LoneExecutor, archive: bytes) -> Run:
    run = await lone.run("uploaded", "{}", archive=archive)
    assert run.outcome.status is JobStatus.COMPLETED, run.log
    return run


async def test_a_program_run_twice_is_compiled_and_its_next_jobs_load_bytecode(tmp_path: Path):
    archive = zip_of({"program.py": PROGRAM, "helper.py": HELPER, "broken.py": "def f(:\n"})
    lone = await LoneExecutor.started(tmp_path)
    try:
        first = await run_uploaded(lone, archive)
        [directory] = [Path(p) for p in lone.executor.programs._cache.values()]
        assert first.results == [{"answer": 42, "compiled": False}]
        await run_uploaded(lone, archive)  # the second job: its compilation starts
        cached = await eventually(
            lambda: sorted(p.name.split(".")[0] for p in directory.glob("__pycache__/*.pyc")),
            "the program is compiled",
            until=lambda names: {"helper", "program"} <= set(names),
        )
        assert "broken" not in cached
        third = await run_uploaded(lone, archive)
        assert third.results == [{"answer": 42, "compiled": True}]
        # Nothing but its __pycache__ was written.
        assert {p.name for p in directory.iterdir()} == {
            "program.py",
            "helper.py",
            "broken.py",
            "__pycache__",
        }
    finally:
        await lone.close()
