"""A program's own sandbox limits: what a job of it gets, and what set each limit."""

from __future__ import annotations

import pytest

from qrt_common.errors import InvalidProgram
from qrt_common.program_limits import check_within, job_limits, read_limits
from qrt_common.programs import program_from_dict, program_from_metadata, program_to_dict
from qrt_common.settings import Settings


def test_a_job_gets_the_declared_limits_the_defaults_and_at_most_the_ceilings():
    settings = Settings(job_max_memory_bytes=1 << 30, max_log_bytes=1 << 20,
                        program_max_processes=64)  # fmt: skip
    values, sources = job_limits({"memory_bytes": 1 << 20, "processes": 1000}, settings)
    assert values["memory_bytes"] == 1 << 20
    assert sources["memory_bytes"] == "the program's limits.memory_bytes"
    assert values["processes"] == 64
    assert sources["processes"] == "QRT_PROGRAM_MAX_PROCESSES, the most a program may declare"
    assert (values["log_bytes"], sources["log_bytes"]) == (1 << 20, "QRT_MAX_LOG_BYTES")
    assert job_limits(None, settings)[0]["memory_bytes"] == 1 << 30
    with pytest.raises(InvalidProgram, match="QRT_PROGRAM_MAX_PROCESSES"):
        check_within({"processes": 65}, settings)
    check_within({"processes": 64}, settings)


def test_limits_travel_with_the_program_as_the_stores_keep_it():
    program = program_from_metadata("p", "p.p", {"limits": {"cpu_seconds": 5}})
    assert program.limits == {"cpu_seconds": 5}
    assert program_from_dict(program_to_dict(program)) == program
    assert program_from_metadata("p", "p.p", {}).limits is None
    assert read_limits({}) == {}
