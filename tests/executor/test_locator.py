"""The executor's program locator: bundled programs from the registry, uploaded ones unpacked
once per digest from what the assignment carries."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from msgspec.structs import replace

from qrt_common.archives import archive_digest
from qrt_common.errors import ProgramNotRunnable
from qrt_common.messages import Assignment
from qrt_common.programs import ProgramKind
from qrt_common.registry import ProgramRegistry
from qrt_executor import locator
from qrt_executor.locator import ProgramLocator
from tests.support.programs import zip_of


def assignment(program_id: str, archive: bytes | None = None, digest: str | None = None):
    encoded = None if archive is None else base64.b64encode(archive).decode()
    if archive is not None and digest is None:
        digest = archive_digest(archive)
    return Assignment(program_id, program_id, "aer_simulator", "{}", 60, 1, digest, encoded)


def code(version: str) -> bytes:
    return zip_of({"program.py": f"def main(backend, messenger):\n    return {version!r}\n"})


def files_in(directory: str) -> set[str]:
    """The names in `directory`; none if it does not exist."""
    path = Path(directory)
    return {child.name for child in path.iterdir()} if path.is_dir() else set()


def resolved(path: Path) -> Path:
    return path.resolve()


@pytest.fixture
def programs(programs_dir: Path):
    found = ProgramLocator(ProgramRegistry(programs_dir), 64 * 1024)
    yield found
    found.close()


async def test_bundled_and_uploaded_programs(programs: ProgramLocator, programs_dir: Path):
    bundled = await programs.locate(assignment("sample-program"), ())
    assert bundled.search_path == str(resolved(programs_dir))
    uploaded = await programs.locate(assignment("up-1", code("v1")), ())
    assert uploaded.program.kind is ProgramKind.QISKIT_RUNTIME
    assert files_in(uploaded.search_path) == {"program.py"}
    again = await programs.locate(assignment("up-1", code("v1")), ())
    assert again.search_path == uploaded.search_path  # unpacked once per digest
    with pytest.raises(ProgramNotRunnable, match="no longer registered"):
        await programs.locate(assignment("gone"), ())


async def test_archives_that_do_not_match_or_do_not_hold_a_program(programs: ProgramLocator):
    with pytest.raises(ProgramNotRunnable, match="does not match its digest"):
        await programs.locate(assignment("x", code("v1"), archive_digest(b"other")), ())
    broken = assignment("x", code("v1"))
    with pytest.raises(ProgramNotRunnable, match="not base64"):
        await programs.locate(replace(broken, program_archive="%%"), ())
    with pytest.raises(ProgramNotRunnable, match="cannot run: no entry point"):
        await programs.locate(assignment("x", zip_of({"main.py": ""})), ())


async def test_least_recently_used_archives_go_unless_running(
    programs: ProgramLocator, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(locator, "CACHED_ARCHIVES", 1)
    first = await programs.locate(assignment("a", code("a")), ())
    second = await programs.locate(assignment("b", code("b")), {archive_digest(code("a"))})
    assert files_in(first.search_path) == files_in(second.search_path) == {"program.py"}
    await programs.locate(assignment("c", code("c")), ())
    assert files_in(first.search_path) == files_in(second.search_path) == set()


async def test_an_upload_is_to_be_compiled_when_it_is_located_the_second_time_only(
    programs: ProgramLocator,
):
    flags = [(await programs.locate(assignment("up-c", code("c")), ())).compile_now]
    flags += [(await programs.locate(assignment("up-c", code("c")), ())).compile_now]
    flags += [(await programs.locate(assignment("up-c", code("c")), ())).compile_now]
    assert flags == [False, True, False]
    assert not (await programs.locate(assignment("sample-program"), ())).compile_now
