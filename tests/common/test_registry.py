import json
import os
from pathlib import Path

import pytest

from qrt_common.errors import ConfigurationError, InvalidProgram
from qrt_common.programs import program_from_metadata
from qrt_common.registry import ProgramRegistry, bundled_programs_dir
from qrt_common.settings import Settings
from tests.support.programs import ROOT, write_program


def touch_later(path: Path) -> None:
    # Make sure the modification stamp moves even on coarse file systems.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_metadata_in_snake_and_camel_case():
    snake = program_from_metadata("p", "p.p", {"name": "n", "max_execution_time": 7,
                                               "backend_requirements": {"min_num_qubits": 5},
                                               "return_values": [], "interim_results": []})  # fmt: skip
    camel = program_from_metadata("p", "p.p", {"name": "n", "maxExecutionTime": 7,
                                               "backendRequirements": {"min_num_qubits": 5},
                                               "returnValues": [], "interimResults": []})  # fmt: skip
    assert snake == camel
    assert snake.max_execution_time == 7 and snake.version == "1.0" and snake.is_public


def test_minimal_metadata_gets_defaults():
    program = program_from_metadata("hello-quantum", "m.m", {"name": "hello-quantum",
                                                             "description": "A simple test program."})  # fmt: skip
    assert program.max_execution_time == 300
    assert program.parameters is None and program.required_parameters() == []


@pytest.mark.parametrize(
    "meta",
    [[], {"max_execution_time": -1}, {"max_execution_time": "300"}, {"parameters": "x"},
     {"backend_requirements": 5}],
)  # fmt: skip
def test_invalid_metadata_is_refused(meta):
    with pytest.raises(InvalidProgram):
        program_from_metadata("p", "p.p", meta)


def test_registry_sees_added_changed_and_removed_programs(tmp_path: Path):
    write_program(tmp_path, "first", {"name": "first", "description": "one"})
    ini = tmp_path / "programs.ini"
    ini.write_text("[programs]\nfirst=first.first\n")
    registry = ProgramRegistry(tmp_path)
    assert [p.id for p in registry.all()] == ["first"]
    assert registry.get("second") is None

    write_program(tmp_path, "second", {"name": "second", "description": "two"})
    ini.write_text("[programs]\nfirst=first.first\nsecond=second.second\n")
    touch_later(ini)
    assert [p.id for p in registry.all()] == ["first", "second"]

    meta = tmp_path / "first" / "first.json"
    meta.write_text(json.dumps({"name": "first", "description": "changed"}))
    touch_later(meta)
    first = registry.get("first")
    assert first is not None and first.description == "changed"

    ini.write_text("[programs]\nsecond=second.second\n")
    touch_later(ini)
    assert registry.get("first") is None


def test_registry_skips_broken_programs(tmp_path: Path):
    write_program(tmp_path, "good", {"name": "good"})
    write_program(tmp_path, "bad", "{not json")
    (tmp_path / "programs.ini").write_text(
        "[programs]\ngood=good.good\nbad=bad.bad\nmissing=missing.missing\nweird=../etc\n"
    )
    registry = ProgramRegistry(tmp_path)
    assert [p.id for p in registry.all()] == ["good"]
    assert registry.get("bad") is None


def test_registry_without_config_is_empty(tmp_path: Path):
    assert ProgramRegistry(tmp_path).all() == []


def test_a_broken_program_is_a_problem_naming_its_file_and_line(tmp_path: Path):
    write_program(tmp_path, "good", {"name": "good"})
    write_program(tmp_path, "bad", '{\n  "name": "bad",\n  "description" "no colon"\n}')
    write_program(tmp_path, "slow", {"max_execution_time": -1})
    (tmp_path / "programs.ini").write_text(
        "[programs]\ngood=good.good\nbad=bad.bad\nslow=slow.slow\nmissing=missing.missing\n"
    )
    registry = ProgramRegistry(tmp_path)
    bad = registry.problem("bad")
    assert bad is not None
    assert (bad.path, bad.line) == (str(tmp_path / "bad" / "bad.json"), 3)
    assert str(bad) == (
        f"program 'bad' cannot be loaded: {tmp_path}/bad/bad.json, line 3: Expecting ':' delimiter"
    )
    slow = registry.problem("slow")
    assert slow is not None and slow.path == str(tmp_path / "slow" / "slow.json")
    assert slow.line is None and "max_execution_time" in slow.message
    missing = registry.problem("missing")
    assert missing is not None and "missing.py does not exist" in missing.message
    assert registry.problem("good") is None and registry.problem("unknown") is None
    assert [p.program_id for p in registry.problems()] == ["bad", "slow", "missing"]
    with pytest.raises(ConfigurationError, match=r"^program 'bad' .* line 3: .* \(and 2 more\)$"):
        registry.check()


@pytest.mark.parametrize(
    ("text", "line", "said"),
    [
        ("[programs]\ngood=good.good\nno equals sign here\n", 3, "cannot parse 'no equals sign"),
        ("good=good.good\n", 1, "must start with a [programs] section"),
        ("[programs]\ngood=good.good\ngood=good.good\n", 3, "program 'good' is listed twice"),
        ("[elsewhere]\ngood=good.good\n", None, "there is no [programs] section"),
    ],
    ids=["no equals", "no section header", "listed twice", "no programs section"],
)
def test_a_broken_programs_ini_is_a_problem_naming_its_line(tmp_path: Path, text, line, said):
    write_program(tmp_path, "good", {"name": "good"})
    (tmp_path / "programs.ini").write_text(text)
    registry = ProgramRegistry(tmp_path)
    assert registry.all() == []
    [problem] = registry.problems()
    assert (problem.path, problem.line, problem.program_id) == (
        str(tmp_path / "programs.ini"),
        line,
        None,
    )
    assert said in problem.message
    (tmp_path / "programs.ini").write_text("[programs]\ngood=good.good\n")
    touch_later(tmp_path / "programs.ini")
    assert [p.id for p in registry.all()] == ["good"] and registry.problems() == []


def test_a_later_directory_adds_programs_and_wins_an_id_both_have(tmp_path: Path):
    bundled, mine = tmp_path / "bundled", tmp_path / "mine"
    write_program(bundled, "base", {"name": "base"})
    write_program(bundled, "shared", {"description": "bundled"})
    write_program(mine, "shared", {"description": "mine"})
    write_program(mine, "extra", {"name": "extra"})
    (bundled / "programs.ini").write_text("[programs]\nbase=base.base\nshared=shared.shared\n")
    (mine / "programs.ini").write_text("[programs]\nshared=shared.shared\nextra=extra.extra\n")
    registry = ProgramRegistry(bundled, mine, bundled)
    assert [p.id for p in registry.all()] == ["base", "shared", "extra"]
    shared = registry.get("shared")
    assert shared is not None and shared.description == "mine"
    assert registry.search_path_of(shared) == str(mine.resolve())
    base = registry.get("base")
    assert base is not None and registry.search_path_of(base) == str(bundled.resolve())


def test_the_bundled_programs_are_always_there_and_the_settings_add_the_users(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)  # no programs/ here
    alone = ProgramRegistry.of(Settings())
    assert [d.directory for d in alone.directories] == [bundled_programs_dir()]
    assert {"sample-program", "hello-quantum", "planqk-starter"} <= {p.id for p in alone.all()}
    write_program(tmp_path / "programs", "mine", {"name": "mine"})
    (tmp_path / "programs" / "programs.ini").write_text("[programs]\nmine=mine.mine\n")
    found = {p.id for p in ProgramRegistry.of(Settings()).all()}  # ./programs adds to them
    assert {"mine", "sample-program"} <= found
    named = ProgramRegistry.of(Settings(programs_dir=tmp_path / "programs"))
    assert named.get("mine") is not None
    with pytest.raises(ConfigurationError, match="is not a directory"):
        ProgramRegistry.of(Settings(programs_dir=tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match=r"holds no programs\.ini"):
        ProgramRegistry.of(Settings(programs_dir=tmp_path / "empty"))


def test_bundled_programs_are_found_in_the_checkout():
    assert bundled_programs_dir() == ROOT / "programs"
