"""Compiling an uploaded program's Python files once the program runs a second time, in the
one-shot programs' bubblewrap sandbox.

A job process may not write beside its program (its Landlock domain reads and runs it only),
so every job of an uploaded program compiled its source again: about 3 ms per 1000 lines. The
executor's own process never compiles a user's source (a crafted file is a way into the
compiler), so a sandbox does: bubblewrap (no capabilities, no network, its own namespaces,
the seccomp filter), a Landlock domain that writes the program's directory alone, and limits
of its own. Its jobs go on meanwhile: a `.pyc` appears whole or not at all (py_compile
renames it into place), and Python takes a `.pyc` only while it matches its source. A program
run once is not compiled: most uploads in a session are run once.
"""

from __future__ import annotations

import asyncio
import sys

from qrt_common.errors import SandboxUnavailable

from .job_protocol import JobLimits
from .oneshot import BubblewrapRunner, OneShotInput, OneShotProcess

COMPILE = "import compileall, sys; compileall.compile_dir(sys.argv[1], quiet=2, workers=1)"
"""The command that compiles the directory its first argument names, quietly."""

LIMITS = JobLimits(
    memory_bytes=1 << 30, cpu_seconds=30, processes=16, open_files=256, temp_bytes=16 << 20
)
"""The sandbox limits of a compilation."""

SECONDS = 60.0
"""How long a compilation may take before it is killed (the jobs then compile the program
themselves, as they did)."""

WAITING = 8
"""Compilations that may wait for the one running; more are not made (their programs' jobs
compile them, as before)."""


class Precompiler:
    """Compiles uploaded programs in the background, in `runner`'s sandbox."""

    def __init__(self, runner: BubblewrapRunner) -> None:
        self._runner = runner
        self._tasks: dict[asyncio.Task[None], str] = {}
        self._one_at_a_time = asyncio.Semaphore(1)

    @property
    def compiling(self) -> set[str]:
        """The digests of the programs being compiled or waiting to be: their directories must
        stay (`ProgramLocator.locate`'s `in_use`)."""
        return set(self._tasks.values())

    def later(self, directory: str, digest: str) -> None:
        """Compile the program in `directory` (the unpacked upload of `digest`) in the
        background, one at a time; nothing where bubblewrap is not installed or WAITING
        compilations wait already."""
        if not self._runner.available or len(self._tasks) > WAITING:
            return
        task = asyncio.create_task(self._compile_in_turn(directory))
        self._tasks[task] = digest
        task.add_done_callback(self._tasks.pop)

    async def _compile_in_turn(self, directory: str) -> None:
        async with self._one_at_a_time:
            await self._compile(directory)

    async def _compile(self, directory: str) -> None:
        runner = self._runner.writing(directory, LIMITS)
        inputs = OneShotInput("compile", "", "{}", "{}", LIMITS)
        try:
            process = await runner.start(
                [sys.executable, "-I", "-c", COMPILE, directory], directory, inputs
            )
        except SandboxUnavailable:
            return
        try:
            await asyncio.wait_for(_finished(process), SECONDS)
        except TimeoutError:
            process.kill()
        except asyncio.CancelledError:
            process.kill()
            raise
        finally:
            await process.close()

    async def close(self) -> None:
        """End every compilation still running."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _finished(process: OneShotProcess) -> None:
    """Wait for `process` to end, reading (and dropping) what it writes."""
    for stream in (process.stdout, process.stderr):
        while stream is not None and await stream.read(65536):
            pass
    await process.wait()
