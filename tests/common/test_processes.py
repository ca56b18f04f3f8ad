"""qrt_common.processes against real processes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

COMMON = Path(__file__).resolve().parents[2] / "libs" / "common"
READER = """
import os, subprocess, sys
import qrt_common.processes as processes
if sys.argv[1] == "private":
    assert processes.keep_proc_entry_private()
reader = f"open('/proc/{os.getpid()}/environ').read()"
done = subprocess.run([sys.executable, "-c", reader], capture_output=True, text=True)
print("refused" if "PermissionError" in done.stderr else "read" if done.returncode == 0 else done.stderr)
"""


def as_another_user(mode: str) -> str:
    """What a process of the same (non-root) user finds reading the `/proc/<pid>/environ` of a
    process that made itself private (`mode` "private") or not."""
    python, setpriv = shutil.which("python3", path="/usr/bin"), shutil.which("setpriv")
    if os.geteuid() != 0 or python is None or setpriv is None:
        pytest.skip("needs root, setpriv and /usr/bin/python3 to run two processes as nobody")
    command = [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups",
               python, "-c", READER, mode]  # fmt: skip
    env = {"PYTHONPATH": str(COMMON), "PATH": "/usr/bin:/bin", "QRT_SECRET": "s3cret"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_private_process_keeps_its_environment_from_processes_of_its_own_user():
    assert as_another_user("open") == "read"
    assert as_another_user("private") == "refused"
