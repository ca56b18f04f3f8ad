"""Landlock scoping against real processes: a process that restricted itself, as every job
process does, reaches no process outside its domain and all of its own; what lies outside still
reaches it. (tests/executor/test_sandbox.py runs the same through a real executor.)"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from qrt_executor import landlock

scoped = pytest.mark.skipif(
    not landlock.scopes(), reason="needs Landlock scopes (ABI 6, Linux 6.12)"
)

RESTRICTED = """
import errno, json, multiprocessing, os, signal, socket, subprocess, sys
from qrt_executor import landlock

def outcome(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return errno.errorcode[exc.errno]

outside, name = int(sys.argv[1]), sys.argv[2]
assert landlock.restrict()
found = {
    "outside": outcome(lambda: os.kill(outside, signal.SIGKILL)),
    "parent": outcome(lambda: os.kill(os.getppid(), 0)),
    "socket": outcome(lambda: socket.socket(socket.AF_UNIX).connect("\\0" + name)),
}
child = subprocess.Popen(["sleep", "60"])
child.send_signal(signal.SIGSTOP)
child.kill()
found["child"] = child.wait()
# A pool's workers are forked here, and ended with SIGTERM when it closes.
with multiprocessing.get_context("fork").Pool(2) as pool:
    found["pool"] = pool.map(abs, [-1, -2])
found["itself"] = outcome(lambda: os.kill(os.getpid(), 0))
print(json.dumps(found))
"""


def python(script: str, *args: str) -> list[str]:
    return [sys.executable, "-c", script, *args]


@scoped
def test_a_restricted_process_reaches_only_its_own():
    outside = subprocess.Popen(["sleep", "60"])
    name = f"qrt-landlock-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX)
    server.bind("\0" + name)
    server.listen(1)
    try:
        done = subprocess.run(
            python(RESTRICTED, str(outside.pid), name), capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        found = json.loads(done.stdout)
        assert found == {
            "outside": "EPERM",
            "parent": "EPERM",
            "socket": "EPERM",
            "child": -signal.SIGKILL,
            "pool": [1, 2],
            "itself": "ok",
        }
        assert outside.poll() is None
    finally:
        server.close()
        outside.kill()
        outside.wait()


RESTRICTED_SLEEPER = """
import sys, time
from qrt_executor import landlock
assert landlock.restrict()
print("restricted", flush=True)
time.sleep(60)
"""


@scoped
def test_processes_outside_still_signal_a_restricted_one():
    # The executor and the zygote stop, kill and reap job processes from outside.
    sleeper = subprocess.Popen(python(RESTRICTED_SLEEPER), stdout=subprocess.PIPE, text=True)
    try:
        assert sleeper.stdout is not None
        assert sleeper.stdout.readline() == "restricted\n"
        os.kill(sleeper.pid, signal.SIGSTOP)
        os.kill(sleeper.pid, signal.SIGCONT)
        sleeper.kill()
        assert sleeper.wait(timeout=60) == -signal.SIGKILL
    finally:
        sleeper.kill()
        sleeper.wait()


SPINNER = """
import resource
from qrt_executor import landlock
assert landlock.restrict()
resource.setrlimit(resource.RLIMIT_CPU, (1, 2))
while True:
    pass
"""


@scoped
def test_the_kernel_s_sigxcpu_still_ends_a_restricted_process_at_its_cpu_limit():
    done = subprocess.run(python(SPINNER), capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGXCPU, done.stderr


WITHOUT_LANDLOCK = """
import ctypes, ctypes.util, errno, json, sys
# As on a kernel without Landlock: its first system call answers ENOSYS.
lib = ctypes.CDLL(ctypes.util.find_library("seccomp"))
lib.seccomp_init.restype = ctypes.c_void_p
context = ctypes.c_void_p(lib.seccomp_init(0x7FFF0000))  # SCMP_ACT_ALLOW
number = lib.seccomp_syscall_resolve_name(b"landlock_create_ruleset")
assert lib.seccomp_rule_add(context, 0x00050000 | errno.ENOSYS, number, 0) == 0
assert lib.seccomp_load(context) == 0
exec(sys.argv[1])
"""
"""Runs the Python code of its first argument where Landlock's system calls answer ENOSYS."""

REPORT = """
from qrt_executor import landlock
print(json.dumps([landlock.abi(), landlock.scopes(), landlock.restrict(),
                  landlock.unavailable_reason()]))
"""


def test_without_landlock_nothing_is_restricted_and_the_reason_says_so():
    done = subprocess.run(
        python(WITHOUT_LANDLOCK, REPORT), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    abi, scopes, restricted, reason = json.loads(done.stdout)
    assert (abi, scopes, restricted) == (0, 0, False)
    assert reason.startswith("job processes are not Landlock-scoped: the kernel has no Landlock")
    assert "ABI 6 (Linux 6.12)" in reason


file_walled = pytest.mark.skipif(not landlock.fs_access(), reason="needs Landlock (Linux 5.13)")

WALLED = """
import errno, json, os, sys
from qrt_executor import landlock

def outcome(action):
    try:
        result = action()
        return "ok" if result is None or isinstance(result, int) else result
    except OSError as exc:
        return errno.errorcode[exc.errno]

def read(path):
    with open(path) as file:
        return file.read()

def write(path):
    with open(path, "w") as file:
        file.write("mine")

readable, writable, outside, single, how = sys.argv[1:6]
rules = [
    landlock.Rule(readable, landlock.READ),
    landlock.Rule(writable, landlock.WRITE),
    landlock.Rule(single, landlock.READ, directory=False),
    landlock.Rule(readable + "/not-there", landlock.WRITE),  # adds nothing
]
if how == "filled ahead":  # as a job process does while it waits for its job
    ahead = landlock.FilledRuleset(landlock.OpenedRules([rules[0], rules[2]]))
    assert landlock.restrict([rules[1], rules[3]], filled=ahead)
    try:
        ahead.take()
    except ValueError:
        pass
    else:
        raise AssertionError("a filled ruleset was taken twice")
else:
    assert landlock.restrict(rules)
found = {
    "read": outcome(lambda: read(readable + "/file")),
    "list": outcome(lambda: len(os.listdir(readable))),
    "write_readable": outcome(lambda: write(readable + "/new")),
    "read_outside": outcome(lambda: read(outside + "/file")),
    "list_outside": outcome(lambda: os.listdir(outside)),
    "single": outcome(lambda: read(single)),
    "beside_single": outcome(lambda: read(single + "-beside")),
    "write": outcome(lambda: write(writable + "/new")),
    "rename": outcome(lambda: (os.mkdir(writable + "/d"),
                               os.rename(writable + "/new", writable + "/d/moved"))[0]),
    "truncate": outcome(lambda: os.truncate(writable + "/d/moved", 0)),
    "run_outside": outcome(lambda: os.execv(outside + "/file", ["x"])),
}
print(json.dumps(found))
"""


@file_walled
@pytest.mark.parametrize("how", ["all at once", "filled ahead"])
def test_file_rules_allow_what_they_name_and_nothing_else_even_to_root(tmp_path, how):
    readable, writable, outside = tmp_path / "readable", tmp_path / "writable", tmp_path / "out"
    for directory in (readable, writable, outside):
        directory.mkdir()
        (directory / "file").write_text("secret")
    single = tmp_path / "single"
    single.write_text("single")
    (tmp_path / "single-beside").write_text("secret")
    (outside / "file").chmod(0o755)
    for path in (outside / "file", tmp_path / "single-beside"):
        path.chmod(0o600 if path.name != "file" else 0o700)
    done = subprocess.run(
        python(WALLED, str(readable), str(writable), str(outside), str(single), how),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "read": "secret",
        "list": "ok",
        "write_readable": "EACCES",
        "read_outside": "EACCES",
        "list_outside": "EACCES",
        "single": "single",
        "beside_single": "EACCES",
        "write": "ok",
        "rename": "ok",
        "truncate": "ok",
        "run_outside": "EACCES",
    }
    assert not (readable / "new").exists()


@file_walled
def test_the_ruleset_handles_every_file_access_right_the_kernel_knows():
    handled = landlock.fs_access()
    abi = landlock.abi()
    assert handled & landlock.ACCESS_FS_READ_FILE
    assert bool(handled & landlock.ACCESS_FS_REFER) == (abi >= 2)
    assert bool(handled & landlock.ACCESS_FS_TRUNCATE) == (abi >= 3)
    assert bool(handled & landlock.ACCESS_FS_IOCTL_DEV) == (abi >= 5)


@file_walled
def test_without_rules_the_domain_handles_no_file_access(tmp_path):
    # The scopes alone, as before file rules: everything readable stays readable.
    (tmp_path / "file").write_text("readable")
    script = "from qrt_executor import landlock\nlandlock.restrict()\n"
    script += f"print(open({str(tmp_path / 'file')!r}).read())"
    done = subprocess.run(python(script), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "readable\n"
