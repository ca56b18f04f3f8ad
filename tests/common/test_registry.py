import json
import os
from pathlib import Path

import pytest

from qrt_common.errors import InvalidProgram
from qrt_common.programs import program_from_metadata
from qrt_common.registry import ProgramRegistry
from tests.support.programs import write_program


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
