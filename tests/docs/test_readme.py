"""The README's map of the code stays true: every module it names exists, and every module is
named."""

from __future__ import annotations

import re

from tests.support.programs import ROOT

README = (ROOT / "README.md").read_text()
PACKAGES = {
    "cli/qrt_cli": ROOT / "cli" / "qrt_cli",
    "libs/common/qrt_common": ROOT / "libs" / "common" / "qrt_common",
    "libs/client/qrt_client": ROOT / "libs" / "client" / "qrt_client",
    "services/api-gateway/qrt_gateway": ROOT / "services" / "api-gateway" / "qrt_gateway",
    "services/scheduler/qrt_scheduler": ROOT / "services" / "scheduler" / "qrt_scheduler",
    "services/executor/qrt_executor": ROOT / "services" / "executor" / "qrt_executor",
    "services/device-2300/qrt_device": ROOT / "services" / "device-2300" / "qrt_device",
}


def layout() -> str:
    """The code block after "The layout" in "How it fits together"."""
    section = README.split("## How it fits together", 1)[1].split("\n## ", 1)[0]
    return section.split("The layout", 1)[1].split("```", 2)[1]


def test_the_layout_names_every_module_of_every_package():
    named = set(re.findall(r"\b([a-z_0-9]+\.py)\b", layout()))
    missing = [
        f"{name}/{path.relative_to(directory)}"
        for name, directory in PACKAGES.items()
        for path in directory.rglob("*.py")
        if path.name != "__init__.py" and path.name != "__main__.py" and path.name not in named
    ]
    assert missing == []


def test_every_module_the_layout_names_exists():
    existing = {p.name for d in PACKAGES.values() for p in d.rglob("*.py")}
    named = set(re.findall(r"\b([a-z_0-9]+\.py)\b", layout()))
    assert named - existing == set()
