"""Programs for tests: the bundled and the test programs in one directory, program packages
written on the fly, and zip archives to upload."""

from __future__ import annotations

import base64
import io
import json
import shutil
import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
"""The repository."""
BUNDLED_PROGRAMS = ROOT / "programs"
TEST_PROGRAMS = ROOT / "tests" / "programs"


def merge_programs(target: Path) -> Path:
    """A programs directory holding the bundled programs and the test programs."""
    target.mkdir(parents=True, exist_ok=True)
    lines = ["[programs]"]
    for source in (BUNDLED_PROGRAMS, TEST_PROGRAMS):
        for package in source.iterdir():
            if (package / "__init__.py").exists() or (package / "planqk.json").exists():
                shutil.copytree(package, target / package.name, dirs_exist_ok=True)
        body = (source / "programs.ini").read_text().split("[programs]", 1)[1]
        lines += [line for line in body.splitlines() if "=" in line and not line.startswith("#")]
    (target / "programs.ini").write_text("\n".join(lines) + "\n")
    return target


DEFAULT_SOURCE = "def main(backend, messenger):\n    pass\n"


def write_program(
    root: Path, package: str, meta: dict[str, Any] | str, source: str = DEFAULT_SOURCE
) -> None:
    """A program package `<root>/<package>/{__init__.py, <package>.py, <package>.json}`."""
    (root / package).mkdir(parents=True, exist_ok=True)
    (root / package / "__init__.py").write_text("")
    (root / package / f"{package}.py").write_text(source)
    text = meta if isinstance(meta, str) else json.dumps(meta)
    (root / package / f"{package}.json").write_text(text)


def zip_of(files: Mapping[str, str | bytes], *, modes: dict[str, int] | None = None) -> bytes:
    """A zip holding `files` (path to content); `modes` sets an entry's Unix mode bits."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (modes or {}).get(name, stat.S_IFREG | 0o644) << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def b64_zip_of(files: Mapping[str, str | bytes], **options: Any) -> str:
    """`zip_of(files)` base64-encoded, as `POST /programs` takes it."""
    return base64.b64encode(zip_of(files, **options)).decode()
