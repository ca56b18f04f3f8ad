"""One-shot programs: a command run once per execution, its input in `/var/input`.

Where the command runs is a `OneShotRunner`'s business: `BubblewrapRunner` runs it on this
machine in a bubblewrap sandbox; a Kubernetes runner would run it as a Job. `run_one_shot`
follows any of them the same way: stdout through PlanQK's markers, stderr to the log, the
time limit and a stop request by killing it, the exit code and the result into an outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import os
import shutil
import signal
import sys
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qrt_common.errors import SandboxUnavailable
from qrt_common.jobs import JobStatus
from qrt_common.messages import EventKind
from qrt_common.results import ResultLimits

from . import confine, landlock, seccomp
from .job_protocol import JobLimits
from .markers import PlanQKStdout
from .runner import DRAIN_SECONDS, MAX_LINE_BYTES, JobOutput, Outcome, exit_reason, output_lines
from .sandbox import (
    DEFAULT_HIDDEN,
    JOB_SHM,
    SHM_BYTES,
    etc_secrets,
    homes,
    memory_reason,
    one_shot_rules,
    python_installation,
    signal_reason,
    within,
)

INPUT_DIR = "/var/input"
"""Where a one-shot program finds `data.json` and `params.json`."""

NO_RESULT = (
    "the program exited with code 0 without a result "
    "(print 'PlanQK:Job:Result: {json}' or a PlanQK:Job:MultilineResult block)"
)


@dataclass(frozen=True, slots=True)
class OneShotInput:
    """What one execution of a one-shot program gets."""

    job_id: str
    backend: str
    data: str
    """The text of `data.json`."""
    params: str
    """The text of `params.json`."""
    limits: JobLimits | None = None
    """The sandbox limits of this job when its program declares its own (a runner's own
    otherwise)."""


class OneShotProcess(ABC):
    """A started one-shot program: its output streams, its exit, a way to stop it."""

    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader | None
    """None where the runner delivers both streams as one (a pod's log)."""

    @abstractmethod
    async def wait(self) -> int:
        """The exit code once the program ended (negative: killed by that signal)."""

    @abstractmethod
    def kill(self) -> None:
        """Stop the program and everything it started, now."""

    @abstractmethod
    async def close(self) -> None:
        """Release what the execution used (its input directory, its sandbox)."""


class OneShotRunner(ABC):
    """Starts one-shot programs somewhere."""

    @abstractmethod
    async def start(
        self, command: Sequence[str], project_dir: str, inputs: OneShotInput
    ) -> OneShotProcess:
        """Start `command` in `project_dir` with `inputs` under `/var/input`.

        Raises SandboxUnavailable when this runner cannot run programs at all.
        """


async def run_one_shot(
    runner: OneShotRunner,
    command: Sequence[str],
    project_dir: str,
    inputs: OneShotInput,
    output: JobOutput,
    *,
    time_limit: float,
    stop: asyncio.Future[JobStatus],
    limits: ResultLimits | None = None,
) -> Outcome:
    """Run one execution of a one-shot program to its outcome; its result becomes an event.

    `limits` bound its result and interim results (see `qrt_common.results`).
    """
    limits = limits or ResultLimits()
    try:
        process = await runner.start(command, project_dir, inputs)
    except SandboxUnavailable as exc:
        return Outcome(JobStatus.FAILED, str(exc))
    stdout = PlanQKStdout(output, takes_result=True, limits=limits)
    stderr: list[str] = [""]

    def on_stderr(line: str) -> None:
        stderr[0] = line  # the last one: a Python traceback's says what was raised
        output.log(line)

    # Result lines may be long: cut only what no result can be.
    longest = max(limits.result_bytes, limits.interim_bytes, MAX_LINE_BYTES) + 64
    try:
        code, ended_by = await _follow(
            process, stdout.line, on_stderr, time_limit, stop, longest, output.overflowed
        )
    finally:
        await process.close()
    stdout.finish()
    if output.overflowed.done():
        return Outcome(JobStatus.FAILED, output.overflow_reason)
    if ended_by is not None:
        return ended_by
    if code != 0:
        job_limits = inputs.limits or getattr(runner, "limits", None)
        # bwrap, the sandbox's init, reports its program's death by signal N as 128 + N.
        signalled = -(code - 128) if code > 128 else code
        reason = None
        if isinstance(job_limits, JobLimits):
            reason = signal_reason(signalled, job_limits)
            if job_limits.memory_bytes and stderr[0].startswith("MemoryError"):
                reason = memory_reason(job_limits)
        return Outcome(JobStatus.FAILED, reason or exit_reason(code))
    if stdout.error is not None:
        return Outcome(JobStatus.FAILED, stdout.error)
    if stdout.result is None:
        return Outcome(JobStatus.FAILED, NO_RESULT)
    output.event(EventKind.RESULT, data=stdout.result)
    return Outcome(JobStatus.COMPLETED)


async def _follow(
    process: OneShotProcess,
    on_stdout: Callable[[str], None],
    on_stderr: Callable[[str], None],
    time_limit: float,
    stop: asyncio.Future[JobStatus],
    longest: int,
    overflowed: asyncio.Future[None],
) -> tuple[int, Outcome | None]:
    """Read the process's output until it exits or must stop (lines longer than `longest`
    come in pieces); its exit code, and the outcome when a stop or the time limit ended it."""

    async def follow(reader: asyncio.StreamReader | None, take: Callable[[str], None]) -> None:
        if reader is not None:
            async for line in output_lines(reader, longest):
                take(line)

    followers = asyncio.gather(follow(process.stdout, on_stdout), follow(process.stderr, on_stderr))
    exited = asyncio.ensure_future(process.wait())
    waiting: set[asyncio.Future[Any]] = {exited, stop, overflowed}
    try:
        done, _ = await asyncio.wait(
            waiting, timeout=time_limit, return_when=asyncio.FIRST_COMPLETED
        )
        ended_by = None
        if exited not in done:
            process.kill()
            if stop in done:
                ended_by = Outcome(stop.result(), "cancelled on request")
            elif overflowed in done:
                ended_by = None  # the caller names the limit
            else:
                ended_by = Outcome(
                    JobStatus.CANCELLED_RAN_TOO_LONG, f"ran longer than {time_limit:g} s"
                )
        try:
            await asyncio.wait_for(asyncio.shield(followers), DRAIN_SECONDS)
        except TimeoutError:
            process.kill()
        return await exited, ended_by
    finally:
        if not exited.done():
            process.kill()
        followers.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await followers
        with contextlib.suppress(asyncio.CancelledError):
            await exited


class _SandboxedProcess(OneShotProcess):
    def __init__(self, process: asyncio.subprocess.Process, input_dir: str) -> None:
        assert process.stdout is not None and process.stderr is not None
        self.stdout, self.stderr = process.stdout, process.stderr
        self._process = process
        self._input_dir = input_dir

    async def wait(self) -> int:
        return await self._process.wait()

    def kill(self) -> None:
        # bwrap leads a session of its own; the sandbox dies with it (--die-with-parent).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)

    async def close(self) -> None:
        if self._process.returncode is None:
            self.kill()
            await self._process.wait()
        await asyncio.to_thread(shutil.rmtree, self._input_dir, True)


class BubblewrapRunner(OneShotRunner):
    """Runs one-shot programs on this machine in a bubblewrap (`bwrap`) sandbox.

    The sandbox sees the machine's file system read-only, has no network, its own user,
    process, IPC and host name namespaces, an empty `/tmp` of `limits.temp_bytes`, no
    capabilities, only the environment given here, and dies with the executor. `hidden`
    directories (the platform's data, `/run`) and the home directories (`/root`, `/home`, the
    executor user's: a `qrt login` profile holds an API key) appear empty inside, but for the
    executor's Python installation where it lies there; /etc's secrets (`sandbox.etc_secrets`:
    `/etc/shadow`, what is not world-readable) appear empty too. `limits` become the
    resource limits of the sandbox and everything in it (`prlimit`; memory counts from zero).
    """

    def __init__(
        self,
        hidden: Sequence[Path] = (),
        bwrap: str = "bwrap",
        limits: JobLimits | None = None,
        writable: Sequence[Path] = (),
    ) -> None:
        hidden = [*hidden, *map(Path, DEFAULT_HIDDEN), *map(Path, homes())]
        self._hidden = [path.resolve() for path in hidden]
        self._bwrap = bwrap
        self.limits = limits or JobLimits()
        self._writable = [path.resolve() for path in writable]

    @property
    def available(self) -> bool:
        """True when bubblewrap is installed."""
        return shutil.which(self._bwrap) is not None

    def writing(self, directory: str, limits: JobLimits) -> BubblewrapRunner:
        """A runner like this one whose sandboxes may write `directory` and nowhere else
        outside their own temporary directories (not this one's writable paths), within
        `limits`."""
        runner = copy.copy(self)
        runner._writable = [Path(directory).resolve()]
        runner.limits = limits
        return runner

    def _arguments(self, project_dir: str, input_dir: str, inputs: OneShotInput) -> list[str]:
        # Every place the program may write is a tmpfs of a size: tmpfs pages are memory that
        # no limit of the program's counts (its /dev, unsized, is read-only; /dev/shm takes
        # what a job process's does; /var/tmp is /tmp).
        args = ["--ro-bind", "/", "/", "--dev", "/dev", "--remount-ro", "/dev"]
        args += ["--perms", "1777", "--size", str(SHM_BYTES), "--tmpfs", JOB_SHM]
        args += ["--proc", "/proc"]
        limits = inputs.limits or self.limits
        if limits.temp_bytes:
            args += ["--size", str(limits.temp_bytes)]
        args += ["--tmpfs", "/tmp"]
        # /var/input needs a mount point, and the read-only /var has none: /var becomes a
        # tmpfs holding the real /var's entries, the input, and is then made read-only.
        args += ["--tmpfs", "/var"]
        for entry in sorted(os.scandir("/var"), key=lambda e: e.name):
            target = f"/var/{entry.name}"
            if entry.name in ("input", "tmp"):
                continue
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry.path), target]
            else:
                args += ["--ro-bind", entry.path, target]
        args += ["--ro-bind", input_dir, INPUT_DIR, "--symlink", "../tmp", "/var/tmp"]
        args += ["--remount-ro", "/var"]
        emptied = []
        for path in self._hidden:
            # bubblewrap's /var and /dev are made anew: nothing of the machine's is there.
            made_anew = path.is_relative_to("/var") or path.is_relative_to("/dev")
            if path.is_dir() and not made_anew and not path.is_symlink():
                emptied.append(os.fspath(path))
                args += ["--tmpfs", os.fspath(path)]
        for secret in etc_secrets():
            if os.path.isdir(secret):
                args += ["--tmpfs", secret, "--remount-ro", secret]
            else:
                args += ["--ro-bind", os.devnull, secret]
        kept: list[str] = []
        for installed in python_installation([os.fspath(path) for path in self._hidden]):
            # Outermost first; /var's entries are bound already.
            if not installed.startswith("/var/") and not any(within(installed, k) for k in kept):
                kept.append(installed)
                args += ["--ro-bind", installed, installed]
        # The project may live under a directory the sandbox gets empty (/tmp): bind it back.
        args += ["--ro-bind", project_dir, project_dir]
        for path in self._writable:
            if path.is_dir():
                args += ["--bind", os.fspath(path), os.fspath(path)]
        for emptied_path in emptied:  # after what was bound back into them
            args += ["--remount-ro", emptied_path]
        args.append("--clearenv")
        for name, value in self._environment(inputs).items():
            args += ["--setenv", name, value]
        args += ["--chdir", project_dir, "--unshare-net", "--unshare-pid", "--unshare-ipc"]
        args += ["--unshare-uts", "--unshare-user", "--cap-drop", "ALL", "--die-with-parent"]
        args += ["--new-session"]
        return args

    @staticmethod
    def _environment(inputs: OneShotInput) -> dict[str, str]:
        """The whole environment of the sandbox, and of bubblewrap itself: bubblewrap is pid 1
        in the sandbox, and its `/proc/1/environ` would show the executor's environment (the
        broker's and the store's passwords) had it been started with it."""
        return {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": "/tmp",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
            "QRT_JOB_ID": inputs.job_id,
            "QRT_BACKEND": inputs.backend,
        }

    def _walled(self, command: Sequence[str], project_dir: str) -> list[str]:
        """`command` run inside its Landlock domain (`confine`), where the kernel has
        Landlock's file rules: bubblewrap's read-only view of the machine still shows every
        file its owner bits allow, which to a root executor is all of them (other checkouts,
        /srv, root's 0600 files). Where there is no Landlock, `command` as it is."""
        if not landlock.fs_access():
            return list(command)
        writable = [os.fspath(path) for path in self._writable]
        rules = one_shot_rules(project_dir, INPUT_DIR, writable)
        return confine.command_line(sys.executable, rules, command)

    def _prlimit(self, limits: JobLimits) -> list[str]:
        """The `prlimit` command line that sets `limits` (empty: none to set or no prlimit)."""
        options = []
        if limits.memory_bytes:
            options.append(f"--as={limits.memory_bytes}")
        if limits.cpu_seconds:
            options.append(f"--cpu={limits.cpu_seconds}:{limits.cpu_seconds + 1}")
        if limits.processes:
            options.append(f"--nproc={limits.processes}")
        if limits.open_files:
            options.append(f"--nofile={limits.open_files}")
        prlimit = shutil.which("prlimit")
        return [prlimit, *options, "--"] if options and prlimit else []

    async def start(
        self, command: Sequence[str], project_dir: str, inputs: OneShotInput
    ) -> OneShotProcess:
        bwrap = shutil.which(self._bwrap)
        if bwrap is None:
            raise SandboxUnavailable(
                "one-shot programs run in a bubblewrap sandbox, and bubblewrap (bwrap) is not "
                "installed on this executor's machine (Debian/Ubuntu: apt-get install bubblewrap)"
            )
        try:
            program = seccomp.bpf_program()
        except OSError as exc:
            raise SandboxUnavailable(
                f"one-shot programs run under a seccomp filter, and it cannot be built here: {exc}"
                " (Debian/Ubuntu: apt-get install libseccomp2)"
            ) from exc
        input_dir = await asyncio.to_thread(_write_input, inputs)
        # bwrap reads the filter from a pipe (a few hundred bytes: within its buffer).
        filter_read, filter_write = os.pipe()
        try:
            try:
                os.write(filter_write, program)
            finally:
                os.close(filter_write)
            limits = inputs.limits or self.limits
            process = await asyncio.create_subprocess_exec(
                *self._prlimit(limits), bwrap, "--seccomp", str(filter_read),
                *self._arguments(project_dir, input_dir, inputs), "--",
                *self._walled(command, project_dir),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                pass_fds=(filter_read,),
                env=self._environment(inputs),
            )  # fmt: skip
        except OSError as exc:
            await asyncio.to_thread(shutil.rmtree, input_dir, True)
            raise SandboxUnavailable(f"could not start bubblewrap: {exc}") from exc
        finally:
            os.close(filter_read)
        return _SandboxedProcess(process, input_dir)


def _write_input(inputs: OneShotInput) -> str:
    directory = tempfile.mkdtemp(prefix="qrt-input-")
    os.chmod(directory, 0o755)
    for name, text in (("data.json", inputs.data), ("params.json", inputs.params)):
        path = Path(directory, name)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o644)
    return directory
