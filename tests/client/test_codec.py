"""A program directory's archive: what goes in (not `.git`, `.env` or other dot names unless
asked for), symbolic links that lead out of it refused, and its size bounded before any upload."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from qrt_client import ArchiveError, Client, ResultUndecodable, TooLarge
from qrt_client.codec import MOST_ARCHIVE_BYTES, archive_of, decode
from qrt_common.settings import Settings


def names(archive: bytes) -> list[str]:
    return sorted(zipfile.ZipFile(io.BytesIO(archive)).namelist())


def program_dir(root: Path) -> Path:
    """A program with what a working copy holds besides: git, an .env, an editor's files."""
    source = root / "prog"
    (source / "lib" / "__pycache__").mkdir(parents=True)
    (source / "program.py").write_text("def main(backend, user_messenger):\n    return 1\n")
    (source / "lib" / "helpers.py").write_text("X = 1\n")
    (source / "lib" / "__pycache__" / "helpers.cpython-311.pyc").write_bytes(b"\0")
    (source / ".git" / "objects").mkdir(parents=True)
    (source / ".git" / "config").write_text("[core]\n")
    (source / ".env").write_text("AWS_SECRET_ACCESS_KEY=hunter2\n")
    (source / ".venv" / "bin").mkdir(parents=True)
    (source / ".venv" / "bin" / "python").write_text("")
    (source / "lib" / ".settings.json").write_text("{}")
    (source / ".config").mkdir()
    (source / ".config" / "shots.json").write_text("{}")
    return source


def test_a_directory_is_archived_without_vcs_and_dot_names(tmp_path: Path):
    source = program_dir(tmp_path)
    assert names(archive_of(source)) == ["lib/helpers.py", "program.py"]


def test_include_adds_dot_names_but_never_vcs_directories(tmp_path: Path):
    source = program_dir(tmp_path)
    archive = archive_of(source, include=["lib/.settings.json", ".config", ".git/config"])
    assert names(archive) == [
        ".config/shots.json", "lib/.settings.json", "lib/helpers.py", "program.py",
    ]  # fmt: skip


def test_links_inside_are_followed_and_links_out_are_refused(tmp_path: Path):
    source = program_dir(tmp_path)
    (source / "same.py").symlink_to(source / "lib" / "helpers.py")
    (source / "alias").symlink_to(source / "lib", target_is_directory=True)
    (source / "loop").symlink_to(source, target_is_directory=True)
    assert names(archive_of(source)) == [
        "alias/helpers.py", "lib/helpers.py", "program.py", "same.py",
    ]  # fmt: skip
    outside = tmp_path / "outside.txt"
    outside.write_text("not the program's")
    (source / "lib" / "leak.txt").symlink_to(outside)
    with pytest.raises(ArchiveError, match=r"/leak.txt is a symbolic link to .*outside.txt"):
        archive_of(source)
    (source / "lib" / "leak.txt").unlink()
    (source / "etc").symlink_to("/etc", target_is_directory=True)
    with pytest.raises(ArchiveError, match="etc is a symbolic link to /etc, outside"):
        archive_of(source)


def test_a_directory_too_big_for_any_platform_stops_being_read(tmp_path: Path):
    source = tmp_path / "big"
    source.mkdir()
    for n in range(3):
        (source / f"noise-{n}.bin").write_bytes(os.urandom(3000))
    with pytest.raises(ArchiveError, match=r"over 4,096 bytes by noise-1\.bin"):
        archive_of(source, most_bytes=4096)
    assert len(archive_of(source)) < MOST_ARCHIVE_BYTES


def test_an_unreadable_file_is_an_archive_error():
    # As root every file is readable: the archiving then runs as nobody (setpriv).
    with tempfile.TemporaryDirectory() as top:
        source = Path(top) / "prog"
        source.mkdir()
        (source / "program.py").write_text("X = 1\n")
        (source / "secret.py").write_text("X = 2\n")
        (source / "secret.py").chmod(0)
        Path(top).chmod(0o755)
        check = f"from qrt_client.codec import archive_of\narchive_of({str(source)!r})\n"
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        prefix = as_nobody if os.geteuid() == 0 else []
        ran = subprocess.run([*prefix, sys.executable, "-c", check], capture_output=True, text=True)
    assert ran.returncode == 1
    assert ran.stderr.strip().endswith(
        "qrt_client.errors.ArchiveError: cannot read secret.py: Permission denied"
    ), ran.stderr


def test_most_archive_bytes_is_the_most_the_platform_allows():
    ceiling = [
        m.le for m in Settings.model_fields["max_program_bytes"].metadata if hasattr(m, "le")
    ]
    assert ceiling == [MOST_ARCHIVE_BYTES]


def test_a_413_says_how_big_the_archive_was(client: Client, tmp_path: Path):
    source = tmp_path / "big"
    source.mkdir()
    (source / "program.py").write_text("def main(backend, user_messenger):\n    return 1\n")
    (source / "noise.bin").write_bytes(os.urandom(Settings().max_program_bytes + 1))
    size = len(archive_of(source))
    with pytest.raises(TooLarge, match=f"the archive is {size:,} bytes"):
        client.programs.upload(source)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[" * 1000 + "]" * 1000, "nested too deeply"),
        ("1" * 4301, "Exceeds the limit (4300 digits)"),
        ('{"__type__": "ndarray", "__value__": "not base64"}', "cannot be decoded"),
        ("{not json", "cannot be decoded"),
    ],
    ids=["deep", "huge-integer", "bad-encoded-value", "not-json"],
)
def test_a_result_the_client_cannot_decode_is_one_error_of_the_client(text, words):
    """What an older platform kept unchecked is a `ResultUndecodable` (a QrtError the CLI says
    in one line), never a RecursionError or ValueError from deep inside the decoder."""
    with pytest.raises(ResultUndecodable, match=re.escape(words)):
        decode(text)


def test_a_value_runtime_decoder_chokes_on_is_undecodable_too():
    with pytest.raises(ResultUndecodable, match="TypeError"):
        decode('{"__type__": "complex", "__value__": 5}')
