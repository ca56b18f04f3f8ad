"""`qrt_executor.confine`: a command run inside a Landlock domain of the given rules (what a
one-shot program gets inside bubblewrap), and a clear refusal when it cannot be."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qrt_executor import confine, landlock
from qrt_executor.sandbox import one_shot_rules


def test_rules_survive_their_encoding_and_anything_else_is_refused():
    rules = [landlock.Rule("/usr", landlock.RUN), landlock.Rule("/dev/null", 3, directory=False)]
    assert confine.decode(confine.encode(rules)) == rules
    for text in ('{"path": "/"}', '[["/usr", "7", true]]', '[["/usr", 7]]', "[1]"):
        with pytest.raises(ValueError):
            confine.decode(text)


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_bad_rules_end_it_with_126_and_the_reason_not_a_traceback():
    ran = run([sys.executable, "-I", "-m", "qrt_executor.confine", "[1]", "--", "true"])
    assert ran.returncode == confine.REFUSED
    assert ran.stderr.startswith("[qrt] the program's file wall cannot be built: not a rule")
    assert "Traceback" not in ran.stderr
    usage = run([sys.executable, "-I", "-m", "qrt_executor.confine", "[]"])
    assert usage.returncode == 2 and usage.stderr.startswith("usage:")


@pytest.mark.skipif(not landlock.fs_access(), reason="needs Landlock's file rules (Linux 5.13)")
def test_the_command_reads_its_project_and_input_and_nothing_beside_them(tmp_path: Path):
    project, given, elsewhere = (tmp_path / name for name in ("project", "input", "elsewhere"))
    for directory in (project, given, elsewhere):
        directory.mkdir()
        (directory / "file.txt").write_text(f"in {directory.name}\n")
    # The machine's /tmp, where tmp_path lies, is the sandbox's own inside bubblewrap.
    rules = [
        rule
        for rule in one_shot_rules(str(project), str(given))
        if rule.path not in ("/tmp", "/var/tmp")
    ]
    files = [f"{tmp_path}/{name}/file.txt" for name in ("project", "input", "elsewhere")]
    shell = f"cat {files[0]} {files[1]}; cat {files[2]}"
    ran = run(confine.command_line(sys.executable, rules, ["/bin/sh", "-c", shell]))
    assert ran.stdout == "in project\nin input\n", ran.stderr
    assert "Permission denied" in ran.stderr and ran.returncode != 0
    missing = run(confine.command_line(sys.executable, rules, ["no-such-program"]))
    assert missing.returncode == confine.REFUSED
    assert missing.stderr.strip() == "[qrt] cannot run no-such-program: No such file or directory"
