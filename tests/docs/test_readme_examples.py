"""The README's Python examples run as written, against a real `qrt dev` (only its address
changed), so they cannot drift from what the client and the platform do."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dev import DevServer
from tests.support.programs import ROOT

README = (ROOT / "README.md").read_text()
# Blocks at the margin: an indented one (in a list, with placeholders such as "<API key>")
# illustrates a third-party client and is tested against the real SDK (tests/gateway/test_tokens.py).
IBM_SECTION = "## Use qrt from qiskit-ibm-runtime"
"""Its recipe uses IBM's client, not qrt_client: tests/ibm/test_readme_recipe.py runs it."""
_HEAD, _IBM = README.split(IBM_SECTION, 1)
EXAMPLES = re.findall(
    r"^```python\n(.*?)^```", _HEAD + "\n## " + _IBM.split("\n## ", 1)[1], re.S | re.M
)
COMMAND_LINE = README.split("### From the command line", 1)[1].split("\n### ", 1)[0]
SHELL_EXAMPLES = re.findall(r"```sh\n(.*?)```", COMMAND_LINE, re.S)
ADDRESS = "http://127.0.0.1:8000"


@pytest.fixture
def dev(qrt_dev: DevServer) -> DevServer:
    """The session's `qrt dev`."""
    return qrt_dev


def test_the_readme_has_python_examples_that_use_the_client():
    assert len(EXAMPLES) >= 4
    assert all("qrt_client" in example and ADDRESS in example for example in EXAMPLES)
    assert not any("requests" in example for example in EXAMPLES)


@pytest.mark.parametrize("number", range(len(EXAMPLES)))
def test_a_python_example_runs(number: int, dev: DevServer, tmp_path: Path):
    code = EXAMPLES[number].replace(ADDRESS, dev.url)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0, f"example {number}:\n{EXAMPLES[number]}\n{done.stderr}"
    assert done.stdout.strip(), "an example shows what it did"
    print(done.stdout)


def test_the_command_line_section_has_shell_examples_of_every_client_command():
    commands = " ".join(SHELL_EXAMPLES)
    for verb in ("login", "backends list", "backends show", "programs list", "programs show", "jobs submit",
                 "jobs watch", "jobs result", "jobs logs", "jobs show", "jobs list",
                 "jobs delete", "jobs cancel", "services start", "services result",
                 "services interim-results", "services log", "services show", "services list",
                 "services cancel"):  # fmt: skip
        assert f"qrt {verb}" in commands


@pytest.mark.parametrize("number", range(len(SHELL_EXAMPLES)))
def test_a_shell_example_runs(number: int, dev: DevServer, tmp_path: Path):
    """Each block runs with `bash -e` (a command failing fails it), `qrt` on PATH, and an empty
    config directory: `qrt login` in the block is what points the rest at the platform."""
    script = SHELL_EXAMPLES[number].replace(ADDRESS, dev.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QRT_")}
    env |= {"XDG_CONFIG_HOME": str(tmp_path / "config"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}  # fmt: skip
    done = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, f"example {number}:\n{script}\n{done.stdout}\n{done.stderr}"
    print(done.stdout)
    assert "Completed" in done.stdout and "exit code 3" in done.stdout
