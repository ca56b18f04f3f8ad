"""Why executors run with the chart's seccomp profile: under a runtime's default profile (what
Kubernetes calls RuntimeDefault) a container without CAP_SYS_ADMIN may not unshare or mount, so
the job sandbox cannot be built; under the chart's profile it can, as uid 10001 on a read-only
root with no capabilities."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import why_not_usable
from .pods import SECCOMP_PROFILES, local_image, podman

pytestmark = [pytest.mark.containers, pytest.mark.timeout(600)]

NAMESPACE_CALLS = {"unshare", "mount", "umount2", "mount_setattr", "open_tree", "move_mount",
                   "setns", "pivot_root", "clone3"}  # fmt: skip
PODMAN_DEFAULT = Path("/usr/share/containers/seccomp.json")

BUILD_A_SANDBOX = """
import os
from qrt_executor import sandbox
from qrt_executor.job_protocol import SandboxPolicy
os.makedirs("/tmp/work", exist_ok=True)
try:
    sandbox.isolate(SandboxPolicy(), [], ["/tmp/work"])
except OSError as exc:
    print("refused:", exc)
else:
    open("/tmp/mine", "w").write("x")
    print("walled in:", os.path.exists("/var/run/secrets"), os.listdir("/run"))
"""


def runtime_default(path: Path) -> Path:
    """podman's default profile made as strict as containerd's and Docker's for namespaces:
    the calls above only with CAP_SYS_ADMIN (podman's own allows them to everyone)."""
    profile = json.loads(PODMAN_DEFAULT.read_text())
    for rule in profile["syscalls"]:
        if rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("includes", {}).get("caps"):
            rule["names"] = [n for n in rule["names"] if n not in NAMESPACE_CALLS]
    profile["syscalls"].append(
        {
            "names": sorted(NAMESPACE_CALLS),
            "action": "SCMP_ACT_ALLOW",
            "includes": {"caps": ["CAP_SYS_ADMIN"]},
        }
    )
    path.write_text(json.dumps(profile))
    return path


def build_a_sandbox(profile: Path, tmp: Path) -> str:
    tmp.mkdir()
    os.chmod(tmp, 0o777)
    done = podman(
        "run", "--rm", "--user", "10001:10001", "--read-only", "--read-only-tmpfs=false",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
        "--security-opt", f"seccomp={profile}", "-v", f"{tmp}:/tmp",
        "--entrypoint", "python3", local_image("qrt-executor:latest"), "-c", BUILD_A_SANDBOX,
    )  # fmt: skip
    return done.stdout.strip()


def test_the_job_sandbox_needs_the_chart_s_profile(tmp_path: Path):
    why = why_not_usable()
    if why is not None:
        pytest.skip(f"podman cannot run the platform's containers here: {why}")
    if not PODMAN_DEFAULT.exists():
        pytest.skip(f"no {PODMAN_DEFAULT} to make a runtime default profile from")
    refused = build_a_sandbox(runtime_default(tmp_path / "runtime-default.json"), tmp_path / "a")
    assert refused.startswith("refused:") and "unshare" in refused, refused
    walled = build_a_sandbox(SECCOMP_PROFILES / "qrt-executor.json", tmp_path / "b")
    assert walled == "walled in: False []", walled
