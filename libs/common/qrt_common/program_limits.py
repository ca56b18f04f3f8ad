"""A program's own sandbox limits: what its metadata may declare (`"limits": {"memory_bytes":
...}` in program.json, planqk.json or a bundled program's metadata file), the most an operator
lets a program declare, and the limits a job of the program gets.

Each limit has a platform default (the setting every job gets, `QRT_JOB_MAX_*`,
`QRT_JOB_TEMP_BYTES`, `QRT_MAX_LOG_BYTES`) and a ceiling (`QRT_PROGRAM_MAX_*`, the most a
program may declare). A program may declare less than the default, or more up to the ceiling;
an upload declaring more is refused (HTTP 400), and an executor whose ceiling is lower than what
a stored program declares applies its ceiling. A job that runs into a limit fails with a reason
naming the limit and what set it (`JobLimitSources`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidProgram
from .settings import Settings


@dataclass(frozen=True, slots=True)
class LimitKind:
    """One limit a program may declare: its metadata `field`, the `default` setting and the
    `ceiling` setting (environment variable names) and what it bounds, for people."""

    field: str
    default: str
    ceiling: str
    bounds: str


LIMITS = (
    LimitKind("memory_bytes", "QRT_JOB_MAX_MEMORY_BYTES", "QRT_PROGRAM_MAX_MEMORY_BYTES",
              "memory a job process may map beyond what it starts with"),
    LimitKind("cpu_seconds", "QRT_JOB_MAX_CPU_SECONDS", "QRT_PROGRAM_MAX_CPU_SECONDS",
              "CPU seconds of each process of the job"),
    LimitKind("processes", "QRT_JOB_MAX_PROCESSES", "QRT_PROGRAM_MAX_PROCESSES",
              "processes and threads of the job at once"),
    LimitKind("open_files", "QRT_JOB_MAX_OPEN_FILES", "QRT_PROGRAM_MAX_OPEN_FILES",
              "open files per process"),
    LimitKind("temp_bytes", "QRT_JOB_TEMP_BYTES", "QRT_PROGRAM_MAX_TEMP_BYTES",
              "size of the job's temporary directory"),
    LimitKind("log_bytes", "QRT_MAX_LOG_BYTES", "QRT_PROGRAM_MAX_LOG_BYTES",
              "log output of a job attempt"),
)  # fmt: skip
"""Every limit a program may declare, by its metadata field."""
_BY_FIELD = {kind.field: kind for kind in LIMITS}

METADATA_KEY = "limits"


def read_limits(value: Any) -> dict[str, int] | None:
    """The `limits` object of a program's metadata (None when absent) as field to value;
    raises InvalidProgram naming the field at fault: an unknown one, or a value that is not a
    whole number of at least 1. (Whether it is within the ceilings is `check_within`'s.)"""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidProgram(f"'{METADATA_KEY}' must be an object of limits by name")
    limits: dict[str, int] = {}
    for name, number in value.items():
        if name not in _BY_FIELD:
            known = ", ".join(_BY_FIELD)
            raise InvalidProgram(f"'{METADATA_KEY}.{name}' is no limit; known: {known}")
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise InvalidProgram(f"'{METADATA_KEY}.{name}' must be a whole number of at least 1")
        limits[name] = number
    return limits


def defaults(settings: Settings) -> dict[str, int]:
    """Each limit's platform default, by field (0: no limit)."""
    return {
        "memory_bytes": settings.job_max_memory_bytes,
        "cpu_seconds": settings.job_max_cpu_seconds,
        "processes": settings.job_max_processes,
        "open_files": settings.job_max_open_files,
        "temp_bytes": settings.job_temp_bytes,
        "log_bytes": settings.max_log_bytes,
    }


def ceilings(settings: Settings) -> dict[str, int]:
    """The most a program may declare of each limit, by field."""
    return {
        "memory_bytes": settings.program_max_memory_bytes,
        "cpu_seconds": settings.program_max_cpu_seconds,
        "processes": settings.program_max_processes,
        "open_files": settings.program_max_open_files,
        "temp_bytes": settings.program_max_temp_bytes,
        "log_bytes": settings.program_max_log_bytes,
    }


def check_within(limits: Mapping[str, int] | None, settings: Settings) -> None:
    """Raise InvalidProgram naming the first declared limit above its ceiling (and the
    setting that sets the ceiling)."""
    most = ceilings(settings)
    for name, value in (limits or {}).items():
        if value > most[name]:
            raise InvalidProgram(
                f"'{METADATA_KEY}.{name}' is {value}, more than the {most[name]} a program may "
                f"declare here ({_BY_FIELD[name].ceiling})"
            )


def job_limits(
    declared: Mapping[str, int] | None, settings: Settings
) -> tuple[dict[str, int], dict[str, str]]:
    """The limits a job of a program declaring `declared` gets, by field, and what set each
    one, in words for a failure reason: the default's setting, the program's metadata field,
    or the ceiling's setting where the program declared more than this executor allows."""
    values = defaults(settings)
    sources = {kind.field: kind.default for kind in LIMITS}
    most = ceilings(settings)
    for name, value in (declared or {}).items():
        if name not in _BY_FIELD:
            continue  # stored by a newer qrt: this one does not know the limit
        if value > most[name]:
            values[name] = most[name]
            sources[name] = f"{_BY_FIELD[name].ceiling}, the most a program may declare"
        else:
            values[name] = value
            sources[name] = f"the program's {METADATA_KEY}.{name}"
    return values, sources
