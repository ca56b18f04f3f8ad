"""Uploaded program archives: what is unpacked, what is refused, and the program read from them."""

from __future__ import annotations

import base64
import re
import stat
from pathlib import Path

import pytest

from qrt_common.archives import MAX_ENTRIES, decode_archive, unpack_archive
from qrt_common.errors import ArchiveTooLarge, InvalidArchive, InvalidProgram
from qrt_common.programs import ProgramKind, archive_program
from tests.support.programs import DAMAGED_ZIPS, zip_of

LIMIT = 64 * 1024


def test_unpacks_files_keeping_the_executable_bit(tmp_path: Path):
    data = zip_of({"program.py": "def main(b, m): pass\n", "lib/helper.py": "X = 1\n",
                   "run.sh": "#!/bin/sh\n"}, modes={"run.sh": stat.S_IFREG | 0o755})  # fmt: skip
    unpack_archive(data, tmp_path / "p", limit=LIMIT)
    assert (tmp_path / "p" / "lib" / "helper.py").read_text() == "X = 1\n"
    assert (tmp_path / "p" / "run.sh").stat().st_mode & 0o111
    assert not (tmp_path / "p" / "program.py").stat().st_mode & 0o111


def test_one_top_level_directory_is_the_root(tmp_path: Path):
    data = zip_of({"myprog/": "", "myprog/program.py": "x", "myprog/src/a.py": "y",
                   "__MACOSX/myprog/._program.py": "junk"})  # fmt: skip
    unpack_archive(data, tmp_path / "p", limit=LIMIT)
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["program.py", "src"]


@pytest.mark.parametrize(
    ("files", "modes", "words"),
    [
        ({"../evil.py": "x"}, None, "points outside the archive"),
        ({"a/../../evil.py": "x"}, None, "points outside the archive"),
        ({"/etc/evil.py": "x"}, None, "absolute path"),
        ({"C:/evil.py": "x"}, None, "absolute path"),
        ({"a\\..\\evil.py": "x"}, None, "backslashes"),
        ({"link": "/etc/passwd"}, {"link": stat.S_IFLNK | 0o777}, "symbolic link"),
        ({"fifo": ""}, {"fifo": stat.S_IFIFO | 0o644}, "special file"),
        ({"__MACOSX/x": "y"}, None, "empty"),
        ({"a": "1", "./a": "2"}, None, "same path twice"),
    ],
)
def test_unsafe_entries_are_refused(tmp_path: Path, files, modes, words):
    with pytest.raises(InvalidArchive, match=words):
        unpack_archive(zip_of(files, modes=modes), tmp_path / "p", limit=LIMIT)
    assert not (tmp_path / "p").exists() or not any((tmp_path / "p").rglob("*evil*"))
    assert not (tmp_path.parent / "evil.py").exists()


def test_zip_bombs_are_refused(tmp_path: Path):
    bomb = zip_of({"zeros": b"\0" * (16 * LIMIT + 1)})
    assert len(bomb) < LIMIT
    with pytest.raises(InvalidArchive, match="unpacks to more than"):
        unpack_archive(bomb, tmp_path / "a", limit=LIMIT)
    many = zip_of({f"f{n}": "" for n in range(MAX_ENTRIES + 1)})
    with pytest.raises(InvalidArchive, match="more than 10000 entries"):
        unpack_archive(many, tmp_path / "b", limit=len(many))


def test_a_bomb_that_lies_about_its_sizes_is_stopped_while_unpacking(tmp_path: Path):
    honest = zip_of({"zeros": b"\0" * (16 * LIMIT + 100)})
    # Patch the declared size (central directory and local header) down to 1 byte.
    size = (16 * LIMIT + 100).to_bytes(4, "little")
    lying = honest.replace(size, (1).to_bytes(4, "little"))
    with pytest.raises(InvalidArchive):
        unpack_archive(lying, tmp_path / "p", limit=LIMIT)


def test_decode_refuses_what_is_not_base64_or_too_large():
    assert decode_archive(base64.b64encode(b"zip").decode(), LIMIT) == b"zip"
    with pytest.raises(InvalidArchive, match="not valid base64"):
        decode_archive("not base64!", LIMIT)
    with pytest.raises(ArchiveTooLarge):
        decode_archive(base64.b64encode(b"x" * (LIMIT + 1)).decode(), LIMIT)
    with pytest.raises(ArchiveTooLarge):
        decode_archive("A" * (10 * LIMIT), LIMIT)


def test_not_a_zip(tmp_path: Path):
    with pytest.raises(InvalidArchive, match="not a zip file"):
        unpack_archive(b"PK but not really", tmp_path / "p", limit=LIMIT)


def unpacked(tmp_path: Path, files: dict[str, str | bytes]) -> Path:
    unpack_archive(zip_of(files), tmp_path / "p", limit=LIMIT)
    return tmp_path / "p"


def test_program_kinds_in_archives(tmp_path: Path):
    runtime = archive_program("r", unpacked(tmp_path / "r", {
        "program.py": "from helpers import main\n", "helpers.py": "def main(b, m): pass\n",
        "program.json": '{"name": "n", "max_execution_time": 9}'}))  # fmt: skip
    assert (runtime.kind, runtime.module, runtime.max_execution_time) == (
        ProgramKind.QISKIT_RUNTIME, "program", 9)  # fmt: skip
    template = archive_program("t", unpacked(tmp_path / "t", {
        "planqk.json": '{"name": "t"}', "src/__init__.py": "",
        "src/program.py": "def run(data, params): return {}\n"}))  # fmt: skip
    assert template.kind is ProgramKind.PYTHON_TEMPLATE
    one_shot = archive_program("o", unpacked(tmp_path / "o", {
        "planqk.json": '{"name": "o", "command": ["python3", "main.py"]}', "main.py": ""}))  # fmt: skip
    assert (one_shot.kind, one_shot.command) == (ProgramKind.ONE_SHOT, ("python3", "main.py"))


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({"main.py": "def main(): pass"}, "no entry point: the archive holds neither program.py"),
        ({"program.py": "def run(): pass"}, "program.py has no main() function"),
        ({"program.py": "main = 5"}, "program.py (line 1) binds main to a constant, not a"),
        ({"program.py": "def main(): 0\nmain = [main]"}, "binds main to a list, not a function"),
        ({"program.py": "def main(:"}, "program.py (line 1) is not valid Python"),
        ({"program.py": "x = " + "(" * 100_000}, "too many nested parentheses"),
        ({"program.py": "def main(): pass", "program.json": "{"}, "program.json"),
        ({"planqk.json": '{"name": "t"}'}, "src/program.py does not exist"),
        ({"planqk.json": "{}", "src/program.py": "def main(): pass"}, "has no run() function"),
        ({"planqk.json": '{"runtime": "DOCKER"}'}, "one-shot program"),
        ({"planqk.json": '{"command": "python3 main.py"}'}, "non-empty list of strings"),
        ({"planqk.json": '{"max_execution_time": -1}', "src/program.py": "def run(): 0"},
         "positive integer"),
    ],
)  # fmt: skip
def test_archives_without_a_usable_program(tmp_path: Path, files, words):
    with pytest.raises(InvalidProgram, match=words.replace("(", r"\(").replace(")", r"\)")) as exc:
        archive_program("x", unpacked(tmp_path, files))
    assert str(tmp_path) not in str(exc.value)  # paths relative to the archive's root


@pytest.mark.parametrize(("kind", "words"), [
    ("lzma", "LZMAError: Corrupt input data"),
    ("bzip2", "Invalid data stream"),
    ("version-needed", "NotImplementedError: zip file version 9.9"),
    ("method", "compression method is not supported"),
    ("name-central", "UnicodeDecodeError"),
    ("name-local", "UnicodeDecodeError"),
    ("truncated", "not a zip file"),
])  # fmt: skip
def test_archives_the_zip_reader_rejects_are_refused_saying_why(tmp_path: Path, kind, words):
    assert set(DAMAGED_ZIPS) == {"lzma", "bzip2", "version-needed", "method", "name-central",
                                 "name-local", "truncated"}  # fmt: skip
    with pytest.raises(InvalidArchive, match=re.escape(words)):
        unpack_archive(DAMAGED_ZIPS[kind], tmp_path / "p", limit=LIMIT)


def test_an_entry_point_bound_to_what_may_be_a_function_is_taken(tmp_path: Path):
    """Only a value that is never callable is refused: a name bound to another function, a
    call's result, or rebound to a function after a placeholder may be `main`."""
    for source in (
        "def _real(backend, messenger): 0\nmain = _real",
        "import functools\nmain = functools.partial(print)",
        "main = None\ndef main(backend, messenger): 0",
        "main = None\ntry:\n    from impl import main\nexcept ImportError:\n    def main(): 0",
        "main = None\nif True:\n    main = print",
    ):
        files: dict[str, str | bytes] = {"program.py": source}
        assert archive_program("x", unpacked(tmp_path / str(len(source)), files)).kind is (
            ProgramKind.QISKIT_RUNTIME
        )
