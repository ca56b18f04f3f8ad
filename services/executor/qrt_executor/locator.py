"""Where an assignment's program lives on this executor: the registry's programs directory for a
bundled program; for an uploaded one, the archive the assignment carries, unpacked once per
digest into a cache directory under the temp directory."""

from __future__ import annotations

import asyncio
import base64
import binascii
import compileall
import contextlib
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from qrt_common.archives import archive_digest, unpack_archive
from qrt_common.errors import InvalidArchive, InvalidProgram, ProgramNotRunnable
from qrt_common.messages import Assignment
from qrt_common.programs import Program, archive_program
from qrt_common.registry import ProgramRegistry

CACHED_ARCHIVES = 32
"""Unpacked archives kept; the least recently used beyond these go, unless a job runs them."""


@dataclass(frozen=True, slots=True)
class LocatedProgram:
    """A program and where its files are on this machine."""

    program: Program
    search_path: str
    """What the job process puts on `sys.path` to import the program's module."""
    project_dir: str
    """A PlanQK project's directory (what its job runs in)."""
    compile_now: bool = False
    """An uploaded program located for the second time (once): worth compiling (see
    `qrt_executor.precompile`)."""


def _real(*paths: str) -> tuple[str, ...]:
    """`paths` made real, as the job's sandbox takes the directories it puts back
    (`sandbox.isolate_job`); found for each job, since a deployment may swap a symlink to a new
    release. A few `lstat`s of cached entries: less than a thread hop."""
    return tuple(os.path.realpath(path) for path in paths)


class ProgramLocator:
    """Finds the program of each assignment, unpacking uploaded ones as they come."""

    def __init__(self, registry: ProgramRegistry, max_program_bytes: int) -> None:
        self._registry = registry
        self._max_program_bytes = max_program_bytes
        self._cache: OrderedDict[str, Path] = OrderedDict()
        self._root: Path | None = None
        self._lock = asyncio.Lock()
        self._located: set[str] = set()
        """Digests of the cached archives located more than once."""

    def compile_registered(self) -> None:
        """Compile the registered programs' Python files into their `__pycache__` directories,
        where this process may write (blocking: run it in a thread). A job process may not
        write there, so without it every job compiles its program's source again (about
        0.5 ms for circuit-runner's 50 lines, 3 ms per 1000 lines); files that do not compile
        are left to the job, which reports the error. These are the operator's files: an
        uploaded program's are never compiled in the executor's process."""
        for directory in self._registry.directories:
            with contextlib.suppress(OSError):
                compileall.compile_dir(directory.directory, quiet=2, workers=1)

    async def locate(self, assignment: Assignment, in_use: Collection[str]) -> LocatedProgram:
        """The assignment's program; `in_use` names the digests running jobs use."""
        if assignment.program_archive is None or assignment.program_digest is None:
            program = self._registry.get(assignment.program_id)
            if program is None:
                raise ProgramNotRunnable(
                    f"program {assignment.program_id!r} is no longer registered"
                )
            search_path, project_dir = _real(
                self._registry.search_path_of(program), self._registry.project_dir(program)
            )
            return LocatedProgram(program, search_path, project_dir)
        digest = assignment.program_digest
        directory, again = await self._unpacked(digest, assignment.program_archive, in_use)
        compile_now = again and digest not in self._located
        if again:
            self._located.add(digest)
        try:
            program = await asyncio.to_thread(archive_program, assignment.program_id, directory)
        except InvalidProgram as exc:
            raise ProgramNotRunnable(f"the uploaded program cannot run: {exc}") from None
        return LocatedProgram(program, os.fspath(directory), os.fspath(directory), compile_now)

    async def _unpacked(
        self, digest: str, encoded: str, in_use: Collection[str]
    ) -> tuple[Path, bool]:
        """The directory of the archive, and whether it was unpacked before."""
        async with self._lock:
            directory = self._cache.get(digest)
            if directory is not None:
                self._cache.move_to_end(digest)
                return directory, True
            directory = await asyncio.to_thread(self._unpack, digest, encoded)
            self._cache[digest] = directory
            for old in [d for d in self._cache if d not in in_use and d != digest]:
                if len(self._cache) <= CACHED_ARCHIVES:
                    break
                self._located.discard(old)
                await asyncio.to_thread(shutil.rmtree, self._cache.pop(old).parent, True)
            return directory, False

    def _unpack(self, digest: str, encoded: str) -> Path:
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ProgramNotRunnable(f"the program archive is not base64: {exc}") from None
        if archive_digest(data) != digest:
            raise ProgramNotRunnable(f"the program archive does not match its digest {digest}")
        if self._root is None:
            self._root = Path(os.path.realpath(tempfile.mkdtemp(prefix="qrt-programs-")))
        # A directory of its own, in the cache only once complete.
        staging = Path(tempfile.mkdtemp(dir=self._root))
        try:
            unpack_archive(data, staging / "program", limit=max(len(data), self._max_program_bytes))
        except InvalidArchive as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ProgramNotRunnable(f"the program archive cannot be unpacked: {exc}") from None
        return staging / "program"

    def close(self) -> None:
        """Remove every unpacked archive."""
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        self._cache.clear()
