"""The README's recipe for the stock qiskit-ibm-runtime client runs as written against a real
`qrt dev` (only its address changed), in a process whose every name lookup and connection off
the loopback interface is refused and fails it."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.dev import DevServer
from tests.support.programs import ROOT

README = (ROOT / "README.md").read_text()
SECTION = README.split("## Use qrt from qiskit-ibm-runtime\n", 1)[1].split("\n## ", 1)[0]
RECIPE = re.findall(r"^```python\n(.*?)^```", SECTION, re.S | re.M)
ADDRESS = "http://127.0.0.1:8000"
GUARDED = "from tests.ibm.loopback import guard_this_process\nguard_this_process()\n"


def test_the_section_has_one_recipe_naming_every_setting_it_needs():
    assert len(RECIPE) == 1
    for needed in ("IAM_URL", "QISKIT_FUNCTIONS_EXPERIMENTAL", "url_resolver", "instance=",
                   "channel=", "token=", "url=", "Not supported"):  # fmt: skip
        assert needed in SECTION, needed


def test_the_recipe_runs_sampler_on_aer_without_leaving_the_loopback(
    dev: DevServer, service, tmp_path: Path
):
    """(`service`: the device has been described by then.)"""
    code = GUARDED + RECIPE[0].replace(ADDRESS, dev.url)
    env = {
        k: v for k, v in os.environ.items() if k not in ("IAM_URL", "QISKIT_FUNCTIONS_EXPERIMENTAL")
    }
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**env, "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    assert "LOOPBACK GUARD" not in done.stderr
    names, result = done.stdout.strip().splitlines()[-2:]
    assert "aer_simulator" in names and "Starmon-5" in names
    counts = ast.literal_eval(result.split(" ", 1)[1])  # the printed dict of counts
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == 1000


def test_the_guard_fails_a_process_that_reaches_off_the_loopback(tmp_path: Path):
    """What a recipe without IAM_URL does first (IBM Cloud's IAM), caught and reported."""
    code = GUARDED + (
        "import urllib.request\n"
        "try:\n"
        "    urllib.request.urlopen('https://iam.cloud.ibm.com/identity/token', timeout=5)\n"
        "except OSError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert "the loopback guard refused a name lookup of 'iam.cloud.ibm.com'" in done.stdout
    assert done.returncode == 3
    assert "LOOPBACK GUARD: refused a name lookup of 'iam.cloud.ibm.com'" in done.stderr
