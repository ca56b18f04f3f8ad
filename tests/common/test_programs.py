"""PlanQK projects in the program registry: their kind, their metadata, and what is refused."""

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qrt_common.errors import InvalidProgram
from qrt_common.programs import Program, ProgramKind, load_planqk_project, with_metadata
from qrt_common.registry import ProgramRegistry
from tests.support.programs import write_program


def project(root: Path, name: str, meta: object, program: str | None = None) -> Path:
    directory = root / name
    (directory / "src").mkdir(parents=True)
    (directory / "planqk.json").write_text(json.dumps(meta))
    if program is not None:
        (directory / "src" / "program.py").write_text(program)
    return directory


def test_kinds_come_from_planqk_json_and_the_files(tmp_path):
    project(tmp_path, "template", {"name": "t", "runtime": "PYTHON_TEMPLATE"}, "def run(): ...")
    project(tmp_path, "oneshot", {"name": "o", "runtime": "DOCKER", "command": ["./run", "-v"],
                                  "max_execution_time": 9000})  # fmt: skip
    template = load_planqk_project("t", "template", tmp_path)
    assert (template.kind, template.module, template.command) == (
        ProgramKind.PYTHON_TEMPLATE,
        "template",
        (),
    )
    oneshot = load_planqk_project("o", "oneshot", tmp_path)
    assert (oneshot.kind, oneshot.command, oneshot.max_execution_time) == (
        ProgramKind.ONE_SHOT,
        ("./run", "-v"),
        9000,
    )
    assert template.kind.is_planqk and not ProgramKind.QISKIT_RUNTIME.is_planqk


@pytest.mark.parametrize(
    ("meta", "program", "words"),
    [
        ({"command": "python3 main.py"}, None, "non-empty list of strings"),
        ({"command": []}, None, "non-empty list of strings"),
        ({"command": ["py\u0000thon3"]}, None, "without NUL"),
        ({"runtime": "DOCKER"}, None, "add the command its container runs"),
        ({"runtime": "PYTHON_TEMPLATE"}, None, "a Python template needs it"),
        ([1], "def run(): ...", "must be a JSON object"),
        ({"max_execution_time": 0}, "def run(): ...", "positive integer"),
    ],
)
def test_unusable_projects_are_refused_with_the_reason(tmp_path, meta, program, words):
    project(tmp_path, "p", meta, program)
    with pytest.raises(InvalidProgram, match=words):
        load_planqk_project("p", "p", tmp_path)


@pytest.mark.parametrize("location", ["../p", "/abs/p", "p/../../x", "p q"])
def test_project_locations_stay_inside_the_programs_directory(tmp_path, location):
    with pytest.raises(InvalidProgram, match="not a project directory"):
        load_planqk_project("p", location, tmp_path)


def test_registry_serves_both_kinds_from_one_section(tmp_path):
    write_program(tmp_path, "classic", {"name": "classic"})
    project(tmp_path, "nested/template", {"name": "t"}, "def run(): ...")
    (tmp_path / "bare").mkdir()
    (tmp_path / "programs.ini").write_text(
        "[programs]\nclassic=classic.classic\nplanqk=nested/template\nbare=bare\n"
    )
    registry = ProgramRegistry(tmp_path)
    assert [(p.id, p.kind) for p in registry.all()] == [
        ("classic", ProgramKind.QISKIT_RUNTIME), ("planqk", ProgramKind.PYTHON_TEMPLATE),
    ]  # fmt: skip
    planqk = registry.get("planqk")
    assert planqk is not None
    assert registry.project_dir(planqk) == str(tmp_path.resolve() / "nested" / "template")
    assert registry.get("bare") is None  # a directory without planqk.json
    (tmp_path / "bare" / "planqk.json").write_text('{"command": ["true"]}')
    bare = registry.get("bare")
    assert bare is not None and bare.kind is ProgramKind.ONE_SHOT


def test_new_metadata_keeps_what_is_not_metadata():
    when = datetime(2026, 1, 1, tzinfo=UTC)
    program = Program("p-1", "p", "p", is_public=False, owner="h/g/p", digest="sha256:ab",
                      created=when, updated=when, uploader="alice")  # fmt: skip
    changed = with_metadata(program, {"description": "new"})
    assert changed.description == "new"
    kept = {"owner", "digest", "created", "updated", "uploader", "id", "module", "kind"}
    assert {name: getattr(changed, name) for name in kept} == {
        name: getattr(program, name) for name in kept
    }
    assert {f.name for f in dataclasses.fields(Program)} - kept - {"command"} <= set(
        ("name", "description", "version", "max_execution_time", "backend_requirements",
         "parameters", "return_values", "interim_results", "is_public", "limits")
    ), "a new Program field: decide whether with_metadata keeps it"  # fmt: skip
