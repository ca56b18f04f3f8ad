"""The job sandbox against the real thing: a program that tries what an attacker would, run by
a real executor (warm pool, zygote, job processes) with planted secrets around it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from qrt_common.jobs import JobStatus
from qrt_common.programs import planqk_input
from qrt_executor import landlock
from qrt_executor.oneshot import BubblewrapRunner, OneShotInput, run_one_shot
from qrt_executor.runner import DRAIN_SECONDS, Outcome
from qrt_executor.sandbox import PidNamespaces, etc_rules, etc_secrets, python_installation, within
from tests.executor.test_landlock import WITHOUT_LANDLOCK
from tests.executor.test_oneshot_and_template import collector, result_of
from tests.support.executors import LoneExecutor, Run
from tests.support.platform import make_settings
from tests.support.programs import merge_programs, zip_of
from tests.support.sandbox import PLANTED_SECRET, TOKEN_PATH
from tests.support.sandbox import planted_token as planted_token_at_kubernetes_path
from tests.support.waiting import eventually

# Plants a token at the one path Kubernetes mounts it (tests/support/sandbox.py): never at
# the same time as another test that does.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("token-path")]

SECRET = PLANTED_SECRET
MEMORY, CPU, PROCESSES, OPEN_FILES = 1 << 30, 2, 64, 128
LOG_BYTES = 1 << 20
OPEN_FILES_CEILING = 200
"""The most open files a program may declare here; `limited` declares more."""


@pytest.fixture(scope="module")
def planted_token() -> Iterator[Path]:
    with planted_token_at_kubernetes_path() as token:
        yield token


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory, planted_token: Path) -> Iterator[Path]:
    """A root directory whose `data` holds a planted SQLite store, and another job's working
    directory in /tmp with a result in it."""
    root = tmp_path_factory.mktemp("sandboxed")
    data = root / "data"
    data.mkdir()
    (data / "qrt.db").write_text(SECRET)  # where the embedded store keeps its SQLite file
    other = Path(f"/tmp/qrt-job-other-{os.getpid()}")
    other.mkdir(exist_ok=True)
    (other / "result.json").write_text(SECRET)  # another job's working directory
    yield root
    (other / "result.json").unlink()
    other.rmdir()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def executor(planted: Path) -> AsyncIterator[LoneExecutor]:
    root, data = planted, planted / "data"
    os.environ["QRT_TEST_PLATFORM_SECRET"] = SECRET
    try:
        lone = await LoneExecutor.started(
            root,
            data_dir=data,
            store_url=f"sqlite:///{data / 'qrt.db'}",
            bus_url=f"amqp://qrt:{SECRET}@127.0.0.1:5672/",
            job_max_memory_bytes=MEMORY,
            job_max_cpu_seconds=CPU,
            job_max_processes=PROCESSES,
            job_max_open_files=OPEN_FILES,
            max_log_bytes=LOG_BYTES,
            program_max_open_files=OPEN_FILES_CEILING,
        )
    finally:
        del os.environ["QRT_TEST_PLATFORM_SECRET"]
    yield lone
    await lone.close()


def text(path: str) -> str | None:
    """What the file at `path` holds, read from outside the sandbox (None: no such file)."""
    return Path(path).read_text() if Path(path).exists() else None


async def attack(executor: LoneExecutor, kind: str, **params: Any) -> Run:
    return await executor.run("intruder", json.dumps({"attack": kind, **params}))


def found(run: Run) -> Any:
    assert run.outcome.status is JobStatus.COMPLETED, (run.outcome, run.log[-2000:])
    return run.results[0]


async def test_the_environment_holds_no_platform_secret(executor):
    seen = found(await attack(executor, "environment", pid=os.getpid()))
    assert SECRET not in json.dumps(seen)
    assert not [name for name in seen["environ"] if name.startswith("QRT_")
                and name != "QRT_JOB_ID"]  # fmt: skip
    assert "QRT_TEST_PLATFORM_SECRET" not in seen["initial"]  # the environment it started with
    # The executor's, through /proc: not there in a PID namespace of the job's own, else refused.
    assert seen["executor"].startswith(("FileNotFoundError", "PermissionError"))
    assert seen["home"] == "/tmp"


@pytest.mark.parametrize(
    "path",
    [
        str(TOKEN_PATH),
        "{data}/qrt.db",
        "/tmp/qrt-job-other-{pid}/result.json",
    ],
    ids=["service-account-token", "sqlite-store", "other-jobs-files"],
)
async def test_planted_secrets_are_out_of_sight(executor, path):
    path = path.format(data=executor.executor._settings.data_dir, pid=os.getpid())
    assert text(path) == SECRET  # planted, readable outside
    seen = found(await attack(executor, "read", path=path))
    assert seen.startswith("FileNotFoundError"), seen


async def test_no_network_not_even_the_broker_on_loopback(executor):
    with socket.create_connection(("127.0.0.1", 5672), timeout=5):
        pass  # the broker is there
    seen = found(await attack(executor, "connect", count=5672))
    assert seen == "OSError: Network is unreachable"


@pytest.mark.parametrize(
    ("path", "error"),
    [
        (str(Path(__file__)), "Read-only file system"),
        ("/etc/qrt-was-here", "Read-only file system"),
        ("{data}/qrt.db", "No such file or directory"),  # hidden: /tmp is the job's own
    ],
    ids=["the-repository", "etc", "the-store"],
)
async def test_writes_outside_the_temporary_directory_fail(executor, path, error):
    path = path.format(data=executor.executor._settings.data_dir)
    if Path(path).is_relative_to("/tmp"):  # a checkout under /tmp: the job's /tmp is its own
        error = "No such file or directory"
    seen = found(await attack(executor, "write", path=path))
    assert seen.endswith(error), seen
    assert text(path) != "owned"


async def test_the_temporary_directory_is_the_jobs_own_and_goes_with_it(executor):
    assert found(await attack(executor, "write", path="/tmp/left-behind")) == "wrote"
    assert text("/tmp/left-behind") is None
    seen = found(await attack(executor, "list", path="/tmp"))
    # Only the way to its program and its working directory, none of the machine's /tmp.
    assert "left-behind" not in seen and f"qrt-job-other-{os.getpid()}" not in seen
    programs = executor.executor._settings.programs_dir.resolve().relative_to("/tmp")
    # Python's own installation, when it lies under /tmp (a checkout there), stays readable.
    installed = [Path(path) for path in python_installation()]
    python = {p.relative_to("/tmp").parts[0] for p in installed if p.is_relative_to("/tmp")}
    allowed = {programs.parts[0], *python, *[n for n in seen if n.startswith("qrt-job-")]}
    assert set(seen) <= allowed
    assert len([name for name in seen if name.startswith("qrt-job-")]) == 1


async def test_a_thousand_processes(executor):
    run = await attack(executor, "fork", count=1000)
    if os.geteuid() == 0:
        # The kernel does not apply RLIMIT_NPROC to root (README: what the sandbox does not
        # stop): as root the forks succeed until the CPU time they cost runs out.
        assert run.outcome in (
            Outcome(JobStatus.COMPLETED),
            Outcome(JobStatus.FAILED, f"CPU time limit reached: {CPU} s (QRT_JOB_MAX_CPU_SECONDS)"),
        )
    else:
        assert run.outcome.status is JobStatus.FAILED
        assert run.outcome.reason == (
            f"process limit reached: the job may have {PROCESSES} processes and threads "
            "(QRT_JOB_MAX_PROCESSES)"
        )


async def test_allocating_4_gib_fails_naming_the_memory_limit(executor):
    run = await attack(executor, "allocate", size=4 << 30)
    assert run.outcome.status is JobStatus.FAILED
    assert run.outcome.reason == (
        f"memory limit reached: the job may use {MEMORY} bytes more than it started with "
        "(QRT_JOB_MAX_MEMORY_BYTES)"
    )
    assert "MemoryError" in run.log


async def test_spinning_fails_naming_the_cpu_limit(executor):
    run = await attack(executor, "spin")
    assert run.outcome.status is JobStatus.FAILED
    assert run.outcome.reason == f"CPU time limit reached: {CPU} s (QRT_JOB_MAX_CPU_SECONDS)"


async def test_opening_too_many_files_fails_naming_the_limit(executor):
    run = await attack(executor, "open", count=OPEN_FILES * 2)
    assert run.outcome.status is JobStatus.FAILED
    assert run.outcome.reason == (
        f"open files limit reached: {OPEN_FILES} per process (QRT_JOB_MAX_OPEN_FILES)"
    )


async def test_printing_200_mb_fails_naming_the_log_limit(executor):
    run = await attack(executor, "print", size=200 << 20)
    assert run.outcome.status is JobStatus.FAILED
    assert run.outcome.reason == f"log output limit reached: {LOG_BYTES} bytes (QRT_MAX_LOG_BYTES)"
    assert len(run.log) < LOG_BYTES + 4096


async def test_a_python_template_program_is_walled_in_alike(executor):
    store = executor.executor._settings.data_dir / "qrt.db"
    params = {"respond": "probe", "secret": str(store)}
    seen = found(await executor.run("planqk-modes", planqk_input({}, params)))
    assert SECRET not in json.dumps(seen)
    assert seen["broker"] == "Network is unreachable"
    assert seen["secret"] == "No such file or directory"
    own = {"QRT_JOB_ID", "QRT_BACKEND"}
    assert [name for name in seen["environ"] if name.startswith("QRT_")] != []
    assert {name for name in seen["environ"] if name.startswith("QRT_")} <= own
    assert seen["environ"]["HOME"] == "/tmp"


async def test_other_jobs_run_while_one_attacks(executor):
    attacking = asyncio.create_task(attack(executor, "print", size=200 << 20))
    quiet = [await executor.run("noop", "{}") for _ in range(3)]
    assert [run.outcome.status for run in quiet] == [JobStatus.COMPLETED] * 3
    assert (await attacking).outcome.status is JobStatus.FAILED


async def limited(executor: LoneExecutor, kind: str, **params: Any) -> Run:
    """An attack by `limited`, the intruder with its own limits (tests/programs/limited)."""
    return await executor.run("limited", json.dumps({"attack": kind, **params}))


async def test_a_programs_own_memory_limit_holds_and_is_named(executor):
    run = await limited(executor, "allocate", size=512 << 20)  # within the platform's 1 GiB
    assert run.outcome == Outcome(
        JobStatus.FAILED,
        f"memory limit reached: the job may use {256 << 20} bytes more than it started with "
        "(the program's limits.memory_bytes)",
    )
    assert found(await attack(executor, "allocate", size=512 << 20)) == 512 << 20


async def test_a_programs_own_log_limit_holds_and_is_named(executor):
    run = await limited(executor, "print", size=1 << 20)  # within the platform's 1 MiB log
    assert run.outcome == Outcome(
        JobStatus.FAILED, "log output limit reached: 65536 bytes (the program's limits.log_bytes)"
    )
    assert len(run.log) < 65536 + 4096


async def test_a_programs_own_temporary_directory_size_holds_and_is_named(executor):
    run = await limited(executor, "fill", path="/tmp/filler", size=4 << 20)
    assert run.outcome == Outcome(
        JobStatus.FAILED,
        "temporary directory full: 1048576 bytes in /tmp (the program's limits.temp_bytes)",
    )


async def test_the_working_directory_counts_in_the_temporary_directory_size(executor):
    # The working directory used to be a directory of the machine's /tmp bound in writable:
    # a job could fill the machine's disk there, whatever its /tmp size.
    run = await limited(executor, "fill", path="filler", size=4 << 20)
    assert run.outcome == Outcome(
        JobStatus.FAILED,
        "temporary directory full: 1048576 bytes in /tmp (the program's limits.temp_bytes)",
    )


async def test_memory_no_mapping_holds_is_out_of_reach(executor):
    # limited may map 256 MiB: a memfd or a shared memory segment would hold more, unmapped,
    # for as long as the job runs (the machine's memory, with no limit but its size).
    seen = found(await limited(executor, "memory-outside-mappings", size=320 << 20))
    assert seen == {"memfd": "EPERM", "shmget": "EPERM"}


async def test_a_limit_declared_above_the_ceiling_gets_the_ceiling(executor):
    # limited declares 100000 open files; this executor lets programs have 200, more than the
    # 128 every other job gets.
    assert found(await limited(executor, "open", count=150)) == 150
    run = await limited(executor, "open", count=OPEN_FILES_CEILING + 10)
    assert run.outcome == Outcome(
        JobStatus.FAILED,
        f"open files limit reached: {OPEN_FILES_CEILING} per process "
        "(QRT_PROGRAM_MAX_OPEN_FILES, the most a program may declare)",
    )


async def test_system_calls_an_attacker_wants_are_denied_by_the_seccomp_filter(executor):
    seen = found(await attack(executor, "syscalls"))
    denied = ("ptrace", "unshare", "mount", "keyctl", "bpf", "perf_event_open")
    assert seen == {**dict.fromkeys(denied, "EPERM"), "thread": "ok", "process": "ok"}


def _pid_namespaces_here() -> bool:
    namespaces = PidNamespaces.open()
    return namespaces is not None


@pytest.mark.skipif(not _pid_namespaces_here(), reason="PID namespaces need CAP_SYS_ADMIN")
async def test_a_job_can_signal_no_process_but_its_own(executor):
    # The job runs as the executor's user, which kill(2) alone would let signal every process
    # of that user: the zygote, the other jobs, the executor, and here (root) the machine.
    outside = await asyncio.create_subprocess_exec("sleep", "120")
    try:
        seen = found(await attack(executor, "signal", pid=outside.pid, count=os.getpid()))
        assert seen["kill"] == "ESRCH" and seen["probe"] == "ESRCH", seen
        assert outside.returncode is None  # still running
        # Process 2 of a PID namespace of its own (1 is the zygote's `cat` that holds it), with a
        # /proc of it: no other job in sight.
        assert seen["pid"] == 2 and seen["seen"] == [1, 2], seen
        # SIGKILL to its namespace's process 1 does not reach it (else the job would die with
        # its namespace); jobs run on, each in its own.
        again = found(await attack(executor, "signal", pid=1, count=1))
        assert again["pid"] == 2 and again["seen"] == [1, 2], again
        # Process 1 (the `cat`) lies outside the job's Landlock domain, where there is one.
        assert again["probe"] == ("EPERM" if landlock.scopes() else "ok"), again
    finally:
        outside.kill()
        await outside.wait()


UNPRIVILEGED_EXECUTOR = """
import asyncio, json, sys
from pathlib import Path
from tests.support.executors import LoneExecutor

async def main(root, mode, pid, name):
    lone = await LoneExecutor.started(Path(root), job_sandbox=mode)
    try:
        params = {"attack": "neighbour", "pid": int(pid), "path": name}
        run = await lone.run("intruder", json.dumps(params))
    finally:
        await lone.close()
    outcome = {"status": run.outcome.status.value, "reason": run.outcome.reason}
    print(json.dumps({**outcome, "results": run.results, "log": run.log[-2000:]}))

asyncio.run(main(*sys.argv[1:]))
"""
"""Runs one `neighbour` attack in a LoneExecutor of its own; prints the run as JSON."""

NEIGHBOUR = """
import os, socket, sys, time
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind("\\0" + sys.argv[1])
server.listen(8)
print("ready", flush=True)
time.sleep(300)
"""
"""A process of the executor's user, outside every job: a secret in its environment, listening
on an abstract unix socket."""


def _without_capabilities() -> list[str]:
    """What runs a command without CAP_SYS_ADMIN, as the chart's executor (hence no PID
    namespaces for its jobs), keeping root's uid to read this checkout. It keeps CAP_SETFCAP
    alone, which a process of uid 0 needs to map uid 0 into its user namespace
    (user_namespaces(7)); the chart's uid 10001 needs none."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv (util-linux) to run an executor without CAP_SYS_ADMIN")
    return [setpriv, "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all,+setfcap"]


def _state(pid: int) -> str:
    """The state letter of process `pid` (proc(5)): "T" when stopped."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(not landlock.scopes(), reason="needs Landlock scopes (ABI 6, Linux 6.12)")
@pytest.mark.parametrize("mode", ["namespaces", "off"])
async def test_without_a_pid_namespace_a_job_reaches_no_process_but_its_own(tmp_path, mode):
    # An executor without CAP_SYS_ADMIN forks its jobs into its own PID namespace, where kill(2)
    # alone would let a job signal every process of the executor's user; with
    # QRT_JOB_SANDBOX=off the job also shares /proc and the abstract unix sockets with them.
    drop = _without_capabilities()
    name = f"qrt-neighbour-{os.getpid()}-{mode}"
    neighbour = await asyncio.create_subprocess_exec(
        *drop, sys.executable, "-c", NEIGHBOUR, name,
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "QRT_NEIGHBOUR_SECRET": SECRET},
    )  # fmt: skip
    try:
        assert neighbour.stdout is not None
        assert await neighbour.stdout.readline() == b"ready\n"
        executor = await asyncio.create_subprocess_exec(
            *drop, sys.executable, "-c", UNPRIVILEGED_EXECUTOR,
            str(tmp_path), mode, str(neighbour.pid), name,
            stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )  # fmt: skip
        out, _ = await executor.communicate()
        assert executor.returncode == 0, out
        run = json.loads(out.splitlines()[-1])
        assert run["status"] == JobStatus.COMPLETED.value, run
        seen = run["results"][0]
        # The path without a PID namespace of its own.
        assert seen["pid_namespace"] == os.readlink("/proc/self/ns/pid"), seen
        assert seen["SIGSTOP"] == seen["SIGKILL"] == "EPERM", seen
        assert neighbour.returncode is None
        assert _state(neighbour.pid) != "T"  # not stopped
        assert seen["environ"] == "PermissionError: Permission denied", seen
        assert SECRET not in json.dumps(seen)
        assert seen["abstract"] in ("EPERM", "ECONNREFUSED"), seen  # its own network: nothing
        if mode == "off":
            assert seen["abstract"] == "EPERM", seen
        # What the job started itself it still stops and kills.
        assert seen["own_child"] == -9 and seen["itself"] == "ok", seen
    finally:
        with contextlib.suppress(ProcessLookupError):
            neighbour.kill()
        await neighbour.wait()


async def run_without_landlock(
    script: str, *args: str, drop: list[str] | None = None
) -> tuple[str, str]:
    """The stdout and stderr of Python `script` (`args` its sys.argv[2:]) run where Landlock's
    system calls answer ENOSYS (`WITHOUT_LANDLOCK`), behind the command `drop` if any; it must
    exit 0."""
    executor = await asyncio.create_subprocess_exec(
        *(drop or []), sys.executable, "-c", WITHOUT_LANDLOCK, script, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    out, err = await executor.communicate()
    assert executor.returncode == 0, err[-2000:]
    return out.decode(), err.decode()


NOOP_JOB = """
import asyncio
from pathlib import Path
from tests.support.executors import LoneExecutor

async def main(root):
    lone = await LoneExecutor.started(Path(root))
    try:
        run = await lone.run("noop", "{}")
    finally:
        await lone.close()
    print(run.outcome.status.value, run.results)

asyncio.run(main(sys.argv[2]))
"""


async def test_where_the_kernel_has_no_landlock_jobs_run_as_before_and_the_executor_says_so(
    tmp_path,
):
    out, err = await run_without_landlock(NOOP_JOB, str(tmp_path))
    assert out.splitlines()[-1] == "Completed ['ok']"
    assert err.count("job processes are not Landlock-scoped") == 1, err[-2000:]


async def test_without_namespaces_jobs_are_still_filtered_and_not_dumpable(tmp_path):
    # QRT_JOB_SANDBOX=off (Kubernetes): jobs of every user run as the executor's user, so
    # none may trace another or read its memory through /proc.
    lone = await LoneExecutor.started(tmp_path, job_sandbox="off")
    try:
        seen = found(await attack(lone, "syscalls"))
        denied = ("ptrace", "unshare", "mount", "keyctl", "bpf", "perf_event_open")
        assert seen == {**dict.fromkeys(denied, "EPERM"), "thread": "ok", "process": "ok"}
        assert found(await attack(lone, "dumpable")) == 0
    finally:
        await lone.close()


async def test_the_platform_goes_on_serving_after_every_attack(executor):
    # Runs last in this module: the executor that saw all of the above runs jobs as before.
    run = await executor.run("noop", "{}")
    assert run.outcome.status is JobStatus.COMPLETED
    assert run.results == ["ok"]


async def test_a_data_directory_inside_the_programs_directory_stays_hidden(tmp_path):
    # The bundled programs stay readable; the data directory qrt dev was pointed into them not.
    programs = merge_programs(tmp_path / "programs")
    data = programs / ".qrt"
    data.mkdir()
    (data / "qrt.db").write_text(SECRET)
    lone = LoneExecutor(make_settings(tmp_path, programs, data_dir=data, warm_pool_size=1))
    await lone.start()
    try:
        seen = found(await attack(lone, "read", path=str(data / "qrt.db")))
        assert seen.startswith("FileNotFoundError"), seen
        assert found(await attack(lone, "list", path=str(programs))) == sorted(
            entry.name for entry in programs.iterdir()
        )
    finally:
        await lone.close()


ISOLATED_IMPORT = """
import os, sys
sys.path.insert(0, {installed!r})
from qrt_executor import sandbox
from qrt_executor.job_protocol import SandboxPolicy
pid = os.fork()
if pid == 0:
    sandbox.isolate(SandboxPolicy(), sandbox.python_installation(), [])
    import lazily_read  # first read inside the sandbox, as entry points' metadata is
    print(lazily_read.VALUE, os.path.exists({elsewhere!r}), flush=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_python_installed_under_tmp_stays_readable_and_the_rest_of_tmp_does_not(tmp_path):
    # pytest's tmp_path lies under /tmp, which every job gets a fresh tmpfs over: a qrt
    # installed there (a CI clone) must still read its modules and metadata lazily.
    installed, elsewhere = tmp_path / "site-packages", tmp_path / "other-users-file"
    installed.mkdir()
    (installed / "lazily_read.py").write_text("VALUE = 'found'\n")
    elsewhere.write_text("secret")
    script = ISOLATED_IMPORT.format(installed=str(installed), elsewhere=str(elsewhere))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["found", "False"]


def _secret_in(directory: Path, *parts: str) -> Path:
    """A root-only (0600) file holding SECRET at `directory`/`parts`, in a new directory of
    `directory` (removed by the caller); skips where none can be made."""
    try:
        made = Path(tempfile.mkdtemp(prefix=".qrt-fswall-test-", dir=directory))
    except OSError as exc:
        pytest.skip(f"cannot make a directory in {directory}: {exc}")
    path = made.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SECRET)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def executor_home_profile() -> Iterator[Path]:
    """A `qrt login` profile (cli/qrt_cli/profiles.py) under the executor user's home, as
    `qrt dev` run by an operator who logged in as admin leaves it."""
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    path = _secret_in(home, ".config", "qrt", "config.toml")
    yield path
    shutil.rmtree(path.parents[2])


@pytest.fixture(scope="module")
def other_checkout_secret() -> Iterator[Path]:
    """A 0600 file beside this checkout (another checkout, another user's work), in none of the
    directories a job may read."""
    path = _secret_in(Path(__file__).resolve().parents[3], "other-checkout", ".env")
    yield path
    shutil.rmtree(path.parents[1])


@pytest.fixture(scope="module")
def srv_secret() -> Iterator[Path]:
    """A 0600 file under /srv, which bubblewrap's read-only view of the machine shows."""
    path = _secret_in(Path("/srv"), "site", ".env")
    yield path
    shutil.rmtree(path.parents[1])


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["namespaces", "off"])
async def walled(request, tmp_path_factory) -> AsyncIterator[LoneExecutor]:
    """An executor of each sandbox mode (run by root here: the `qrt dev` case)."""
    lone = await LoneExecutor.started(tmp_path_factory.mktemp(request.param),
                                      job_sandbox=request.param)  # fmt: skip
    yield lone
    await lone.close()


def _refused(seen: Any) -> bool:
    return isinstance(seen, str) and seen.startswith(("PermissionError", "FileNotFoundError"))


async def test_a_job_reads_no_file_of_the_executor_user_s_home(walled, executor_home_profile):
    assert text(str(executor_home_profile)) == SECRET  # there, readable outside
    seen = found(await attack(walled, "read", path=str(executor_home_profile)))
    assert _refused(seen), seen
    home = executor_home_profile.parents[2]
    listed = found(await attack(walled, "list", path=str(home.parent)))
    assert _refused(listed) or home.name not in listed, listed


async def test_a_job_reads_no_root_only_file_outside_what_it_may_read(
    walled, other_checkout_secret
):
    assert text(str(other_checkout_secret)) == SECRET
    seen = found(await attack(walled, "read", path=str(other_checkout_secret)))
    assert _refused(seen), seen
    listed = found(await attack(walled, "list", path=str(other_checkout_secret.parents[1])))
    assert _refused(listed), listed


@pytest.mark.skipif(os.geteuid() != 0, reason="only root reads /etc/shadow")
async def test_a_job_run_by_root_reads_no_shadow_file_nor_lists_root_s_home(walled):
    assert text("/etc/shadow")  # root reads it outside
    assert _refused(found(await attack(walled, "read", path="/etc/shadow")))
    listed = found(await attack(walled, "list", path="/root"))
    assert _refused(listed) or listed == [], listed
    # What jobs read of /etc stays readable.
    assert "root:" in found(await attack(walled, "read", path="/etc/passwd"))
    # Nor kernel memory, through /proc which the rules grant whole: with no namespaces
    # (QRT_JOB_SANDBOX=off) the job gives up root's capabilities; in them, it holds them in
    # its own user namespace only.
    assert _refused(found(await attack(walled, "read", path="/proc/kcore")))
    status = found(await attack(walled, "read", path="/proc/self/status"))
    effective = next(line for line in status.splitlines() if line.startswith("CapEff:"))
    if not walled.executor.sandbox.isolate:
        assert int(effective.split()[1], 16) == 0, effective


async def test_what_programs_do_still_works_behind_the_file_walls(walled):
    seen = found(await attack(walled, "legitimate"))
    assert seen == {
        "lazy_import": "qiskit.qasm3",
        "simulate": ["00", "11"],
        "fork_pool": [1, 2],
        "spawn_pool": [1, 2],
        "workdir": "mine",
        "tmp": "mine",
        "home": "mine",
        "subprocess": 0,
    }, seen


HOME_READ_WITHOUT_LANDLOCK = """
import asyncio, json
from pathlib import Path
from tests.support.executors import LoneExecutor

async def main(root, path):
    lone = await LoneExecutor.started(Path(root))
    try:
        run = await lone.run("intruder", json.dumps({"attack": "read", "path": path}))
    finally:
        await lone.close()
    print(json.dumps([run.outcome.status.value, run.results]))

asyncio.run(main(sys.argv[2], sys.argv[3]))
"""


async def test_without_landlock_the_home_directories_are_still_hidden(
    tmp_path, executor_home_profile
):
    out, err = await run_without_landlock(
        HOME_READ_WITHOUT_LANDLOCK, str(tmp_path), str(executor_home_profile)
    )
    status, results = json.loads(out.splitlines()[-1])
    assert status == JobStatus.COMPLETED.value, err[-2000:]
    assert results[0].startswith("FileNotFoundError"), results


ONE_SHOT_WRITER = """
import json, os
def fill(path, mib):
    try:
        with open(path, "wb") as file:
            for _ in range(mib):
                file.write(b"x" * (1 << 20))
                file.flush()
        return "written"
    except OSError as exc:
        return type(exc).__name__ + ": " + str(exc.strerror)
found = {"shm": fill("/dev/shm/big", 4), "run": fill("/run/big", 1), "dev": fill("/dev/big", 1),
         "var_tmp": os.path.realpath("/var/tmp")}
print("PlanQK:Job:Result:", json.dumps(found))
"""


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="one-shot programs need bubblewrap")
async def test_a_one_shot_program_writes_memory_only_within_its_limits(tmp_path):
    # tmpfs pages are memory no limit of the program counts: each place it may write is sized.
    events, output = collector()
    inputs = OneShotInput("job-1", "aer_simulator", "{}", "{}")
    stop = asyncio.get_running_loop().create_future()
    outcome = await run_one_shot(BubblewrapRunner(), ("python3", "-c", ONE_SHOT_WRITER),
                                 str(tmp_path), inputs, output, time_limit=60, stop=stop)  # fmt: skip
    await output.close()
    run = Run(outcome, events)
    assert run.outcome.status is JobStatus.COMPLETED, run.log[-2000:]
    seen = result_of(run)
    assert seen["shm"] == "OSError: No space left on device", seen  # 1 MiB, as a job's
    assert seen["run"] != "written" and seen["dev"] != "written", seen
    assert seen["var_tmp"] == "/tmp", seen  # counted in /tmp's QRT_JOB_TEMP_BYTES


PARENT_READ_WITHOUT_LANDLOCK = """
import asyncio, json
from pathlib import Path
from tests.support.executors import LoneExecutor

async def main(root, mode, profile):
    lone = await LoneExecutor.started(Path(root), job_sandbox=mode)
    try:
        found = []
        for path in ("/proc/{parent}/environ", "/proc/{parent}/root" + profile):
            run = await lone.run("intruder", json.dumps({"attack": "read", "path": path}))
            found += run.results
    finally:
        await lone.close()
    print(json.dumps(found))

asyncio.run(main(sys.argv[2], sys.argv[3], sys.argv[4]))
"""


@pytest.mark.parametrize("mode", ["namespaces", "off"])
async def test_without_landlock_nor_a_pid_namespace_a_job_cannot_reach_into_the_zygote(
    tmp_path, executor_home_profile, mode
):
    # The zygote is not dumpable: its /proc entries are not the job's to read, though both
    # run as the executor's user, so nothing there reaches past the job's own mounts.
    out, _ = await run_without_landlock(
        PARENT_READ_WITHOUT_LANDLOCK,
        str(tmp_path),
        mode,
        str(executor_home_profile),
        drop=_without_capabilities(),
    )
    environ, profile = json.loads(out.splitlines()[-1])
    assert environ.startswith("PermissionError") and profile.startswith("PermissionError"), (
        environ,
        profile,
    )
    assert SECRET not in environ + profile


def test_etc_rules_leave_out_what_is_not_world_readable_and_the_named_secrets():
    readable = [rule.path for rule in etc_rules() if rule.access & landlock.ACCESS_FS_READ_FILE]
    assert any(within("/etc/passwd", path) for path in readable)
    for path in readable:
        assert os.stat(path).st_mode & stat.S_IROTH, path
    for secret in etc_secrets():
        assert not any(within(secret, path) for path in readable), secret
    for name in ("shadow", "gshadow", "ssl/private", "sudoers"):
        if os.path.exists(f"/etc/{name}"):
            assert f"/etc/{name}" in etc_secrets()


ONE_SHOT_READER = """
import json, os, sys
def read(path):
    try:
        with open(path) as file:
            return file.read()
    except OSError as exc:
        return type(exc).__name__
def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return type(exc).__name__
found = {name: read(path) for name, path in json.loads(sys.argv[1]).items()}
found["root"] = listing("/root")
found["python"] = sys.version_info[0]
print("PlanQK:Job:Result:", json.dumps(found))
"""


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="one-shot programs need bubblewrap")
async def test_a_one_shot_program_reads_no_home_directory_nor_shadow_file(
    tmp_path, executor_home_profile, other_checkout_secret, srv_secret
):
    paths = {"profile": str(executor_home_profile), "shadow": "/etc/shadow",
             "passwd": "/etc/passwd", "other": str(other_checkout_secret),
             "srv": str(srv_secret)}  # fmt: skip
    events, output = collector()
    inputs = OneShotInput("job-1", "aer_simulator", "{}", "{}")
    command = ("python3", "-c", ONE_SHOT_READER, json.dumps(paths))
    stop = asyncio.get_running_loop().create_future()
    outcome = await run_one_shot(BubblewrapRunner(), command, str(tmp_path), inputs, output,
                                 time_limit=60, stop=stop)  # fmt: skip
    await output.close()
    run = Run(outcome, events)
    assert run.outcome.status is JobStatus.COMPLETED, run.log[-2000:]
    seen = result_of(run)
    assert seen["profile"] in ("FileNotFoundError", "PermissionError"), seen
    assert SECRET not in json.dumps(seen)
    if os.geteuid() == 0 and text("/etc/shadow") is not None:
        assert seen["shadow"] in ("", "PermissionError"), seen  # an empty file there
    assert "root:" in seen["passwd"]
    assert executor_home_profile.parents[2].name not in seen["root"], seen
    assert seen["python"] == 3  # `python3` still found (pyenv's lies under /root here)
    if landlock.fs_access():
        # bubblewrap's view of the machine is read-only, but all of it, and a root executor's
        # program owns root's 0600 files: Landlock's rules leave it what a job process reads.
        assert seen["srv"] == "PermissionError", seen
        # (Beside a checkout under /tmp it is not there at all: bubblewrap's /tmp is empty.)
        outside_tmp = not within(str(other_checkout_secret), "/tmp")
        assert seen["other"] == "PermissionError" if outside_tmp else _refused(seen["other"])


async def test_a_program_that_says_it_exited_and_runs_on_is_killed(executor):
    # A job process says its exit code and closes its sockets right before it exits, so its
    # end is reported without waiting for the kernel to tear it down (child._exit). A program
    # can say the same and run on: the job ends as it said, and the process goes with it.
    name = f"qrt-liar-{os.getpid() % 10000}"
    run = await attack(executor, "lie-about-exit", path=name)
    assert run.outcome.status is JobStatus.COMPLETED, run.outcome

    def running() -> list[str]:
        found = []
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if entry.name.isdigit() and (entry / "comm").read_text().strip() == name:
                    found.append(entry.name)
        return found

    await eventually(running, "the lying program's process is gone", until=lambda pids: not pids)


UPLOADED = """
import os


def main(backend, user_messenger, other=""):
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))  # the executor's unpacked programs
    try:
        other_text = open(other).read()
    except OSError as exc:
        other_text = type(exc).__name__
    return {
        "own": open(os.path.join(here, "data.txt")).read(),
        "other": other_text,
        "unpacked": sorted(os.listdir(root)),
    }
"""


async def test_an_uploaded_program_reads_its_own_files_and_no_other_uploaded_program(executor):
    # The executor unpacks uploaded programs under /tmp, which a job sees as a tmpfs of its
    # own: its program's directory is put back, no other.
    other = zip_of({"program.py": UPLOADED, "data.txt": SECRET})
    mine = zip_of({"program.py": UPLOADED, "data.txt": "mine"})
    first = await executor.run("uploaded-other", "{}", archive=other)
    assert first.outcome.status is JobStatus.COMPLETED, first.log
    [other_dir] = [
        path for path in executor.executor.programs._cache.values()
        if (path / "data.txt").read_text() == SECRET
    ]  # fmt: skip
    params = json.dumps({"other": str(other_dir / "data.txt")})
    run = await executor.run("uploaded-mine", params, archive=mine)
    assert run.outcome.status is JobStatus.COMPLETED, run.log
    seen = run.results[0]
    assert seen["own"] == "mine"
    assert seen["other"] == "FileNotFoundError"
    assert len(seen["unpacked"]) == 1  # its own archive's directory alone
    assert str(other_dir.parent.name) not in seen["unpacked"]


LAUNCH_FOR_OTHER_WALLS = """
import os, sys
from qrt_executor import sandbox
from qrt_executor.job_protocol import Launch, SandboxPolicy
from qrt_common.programs import ProgramKind
ahead = sandbox.build_ahead(SandboxPolicy(hidden=("/srv",)))
launch = Launch(job_id="j", kind=ProgramKind.QISKIT_RUNTIME, module="m", search_path="/",
                project_dir="/", backend="b", params="{}", workdir="/tmp/w",
                sandbox=SandboxPolicy())
try:
    sandbox.enter(launch, None, ahead)
except OSError as exc:
    print(exc, flush=True)
    sys.exit(0)
sys.exit(1)
"""


def test_a_job_process_runs_no_launch_for_other_walls_than_it_built():
    # The executor sends its own policy (the pool's); a launch with other walls than the
    # process built ahead fails the job rather than run it in the wrong ones.
    done = subprocess.run([sys.executable, "-c", LAUNCH_FOR_OTHER_WALLS], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "prepared for another sandbox policy" in done.stdout


def plant(path: Path) -> None:
    """A secret at `path`, its directories made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SECRET)


async def test_a_directory_to_hide_made_after_the_job_process_started_is_hidden(tmp_path):
    # A job process lays its tmpfs while it waits for its job; a directory to hide that is
    # made meanwhile (outside /tmp, which every job gets a tmpfs over) is hidden all the same.
    later = Path(f"/srv/qrt-hidden-later-{os.getpid()}")
    shutil.rmtree(later, ignore_errors=True)
    programs = merge_programs(tmp_path / "programs")
    settings = make_settings(tmp_path, programs, job_hidden_paths=str(later), warm_pool_size=1)
    lone = LoneExecutor(settings)
    await lone.start()
    try:
        await eventually(lambda: lone.executor.pool.idle, "a job process waits", until=bool)
        plant(later / "secret")
        seen = found(await attack(lone, "read", path=str(later / "secret")))
        assert seen.startswith("FileNotFoundError"), seen
    finally:
        await lone.close()
        shutil.rmtree(later, ignore_errors=True)


@pytest.mark.parametrize("parent", ["/srv", "/var/tmp"], ids=["elsewhere", "in-a-hidden-dir"])
async def test_a_working_directory_outside_tmp_is_writable(tmp_path, parent):
    # TMPDIR elsewhere than /tmp: the job's working directory is put back writable, wherever
    # it lies (/var/tmp is one of the directories a job sees empty).
    workdirs = Path(parent) / f"qrt-workdirs-{os.getpid()}"
    workdirs.mkdir(parents=True, exist_ok=True)
    was, tempfile.tempdir = tempfile.tempdir, str(workdirs)
    try:
        lone = LoneExecutor(make_settings(tmp_path, merge_programs(tmp_path / "programs")))
    finally:
        tempfile.tempdir = was
    await lone.start()
    try:
        assert found(await attack(lone, "write", path="mine")) == "wrote"
    finally:
        await lone.close()
        shutil.rmtree(workdirs, ignore_errors=True)


async def test_a_forked_child_returning_from_main_does_not_end_the_job(executor):
    # The job process goes on for longer than an ended job's output may take to drain.
    run = await attack(executor, "fork-and-return", count=DRAIN_SECONDS + 0.5)
    assert found(run) == "parent done"


async def test_a_program_that_says_it_exited_and_keeps_writing_is_killed_and_fails(executor):
    # Its output stays paced, and its real exit (killed) decides, not what it said.
    run = await attack(executor, "lie-and-stay")
    assert run.outcome.status is JobStatus.FAILED, run.outcome
    assert "SIGKILL" in (run.outcome.reason or ""), run.outcome


async def test_a_link_planted_in_a_shared_directory_leads_no_later_job_to_the_store(tmp_path):
    # QRT_JOB_WRITABLE_PATHS within one another: a job makes a part of the inner one a link
    # (`team` -> `..`), which would take the inner one to the data directory beside them. A
    # later job's walls follow no link: the inner one is left out, the store stays hidden.
    shared, data = tmp_path / "shared", tmp_path / "data"
    shared.mkdir()
    inner = shared / "team" / "data"
    settings = make_settings(
        tmp_path, merge_programs(tmp_path / "programs"), data_dir=data,
        job_writable_paths=f"{shared},{inner}", warm_pool_size=1,
    )  # fmt: skip
    lone = LoneExecutor(settings)
    await lone.start()
    try:
        plant(data / "secret.txt")
        assert found(await attack(lone, "link", path=str(shared / "team"), target="..")) == "linked"
        seen = found(await attack(lone, "read", path=str(inner / "secret.txt")))
        assert SECRET not in seen, seen
        assert found(await attack(lone, "write", path=str(inner / "owned"))).startswith(
            ("FileNotFoundError", "PermissionError", "OSError")
        )
        assert not (data / "owned").exists()
    finally:
        await lone.close()
