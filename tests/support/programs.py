"""Programs for tests: the bundled and the test programs in one directory, program packages
written on the fly, and zip archives to upload."""

from __future__ import annotations

import base64
import io
import json
import shutil
import stat
import struct
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


# Archives Python's zipfile rejects, each in its own way (not only BadZipFile).

_PROGRAM = b"def main(backend, user_messenger):\n    pass\n" * 20


def _zip_bytes(method: int = zipfile.ZIP_DEFLATED) -> bytearray:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.writestr("program.py", _PROGRAM)
    return bytearray(buffer.getvalue())


def _payload_start(data: bytearray) -> int:
    """Where the first entry's compressed bytes begin (after its local header)."""
    name_length, extra_length = struct.unpack("<HH", data[26:30])
    return 30 + int(name_length) + int(extra_length)


def _central_directory(data: bytearray) -> int:
    return data.rfind(b"PK\x01\x02")


def _corrupt(method: int, offset: int) -> bytes:
    data = _zip_bytes(method)
    data[_payload_start(data) + offset] ^= 0xFF
    return bytes(data)


def _central_field(offset: int, value: int) -> bytes:
    data = _zip_bytes()
    at = _central_directory(data) + offset
    data[at : at + 2] = struct.pack("<H", value)
    return bytes(data)


def _not_utf8_name(where: str) -> bytes:
    """An entry flagged as having a UTF-8 name that is not UTF-8, in the central directory or
    in the entry's own (local) header."""
    data = _zip_bytes()
    flags_at, name_at = _central_directory(data) + 8, _central_directory(data) + 46
    if where == "local":
        flags_at, name_at = 6, 30
    (flags,) = struct.unpack("<H", data[flags_at : flags_at + 2])
    data[flags_at : flags_at + 2] = struct.pack("<H", flags | 0x800)
    data[name_at + 2] = 0xFF
    return bytes(data)


DAMAGED_ZIPS: dict[str, bytes] = {
    "lzma": _corrupt(zipfile.ZIP_LZMA, 9),  # inside the LZMA stream: "Corrupt input data"
    "bzip2": _corrupt(zipfile.ZIP_BZIP2, 1),  # the stream's magic
    "version-needed": _central_field(6, 99),  # "version needed to extract" 9.9
    "method": _central_field(10, 99),  # an unknown compression method
    "name-central": _not_utf8_name("central"),
    "name-local": _not_utf8_name("local"),
    "truncated": b"PK\x03\x04" + b"\0" * 100,
}
"""Zip archives that zipfile refuses with LZMAError, OSError, NotImplementedError,
UnicodeDecodeError and BadZipFile, by name."""
