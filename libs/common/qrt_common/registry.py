"""The program registry: `programs.ini` names the programs and is re-read when it changes.

The programs qrt ships (the repository's `programs/`, packaged inside `qrt_common` as
`bundled_programs`) are always there; a programs directory of the user's (QRT_PROGRAMS_DIR, or a
`programs/` holding a `programs.ini` in the working directory) adds to them, and its programs
win over bundled ones of the same id. A `programs.ini` or program metadata that cannot be read
is a `ProgramProblem`: `/readyz`, `GET /programs` and a submit of the program name it.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigurationError, InvalidProgram
from .programs import (
    Program,
    load_planqk_project,
    load_program,
    planqk_metadata_path,
)
from .settings import Settings

logger = logging.getLogger(__name__)

CONFIG_NAME = "programs.ini"
BUNDLED_NAME = "bundled_programs"
"""Where an installed qrt keeps the bundled programs, inside the `qrt_common` package."""


def bundled_programs_dir() -> Path:
    """The programs qrt ships: `qrt_common/bundled_programs` in an installed qrt (the wheel
    puts the repository's `programs/` there), else `programs/` of the checkout this module
    lives in."""
    here = Path(__file__).resolve().parent
    installed = here / BUNDLED_NAME
    return installed if installed.is_dir() else here.parents[2] / "programs"


@dataclass(frozen=True, slots=True)
class ProgramProblem:
    """A `programs.ini` or a program's files that cannot be used: the file, the line (1-based;
    None when the fault is in no one line) and why; `program_id` is the program it keeps out
    (None for a `programs.ini` that cannot be read at all)."""

    path: str
    line: int | None
    message: str
    program_id: str | None = None

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}, line {self.line}"
        what = f"program '{self.program_id}' cannot be loaded: " if self.program_id else ""
        return f"{what}{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class _Stamp:
    mtime_ns: int
    size: int


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _Stamp(st.st_mtime_ns, st.st_size)


@dataclass(frozen=True, slots=True)
class _Files:
    """Where the program registered at one location keeps its metadata, either way it may be
    laid out (worked out once per location: a lookup only calls `stat`)."""

    planqk_meta: Path
    meta: Path


def _config_problem(path: Path, exc: Exception) -> ProgramProblem:
    """What is wrong with an unreadable `programs.ini`, at the line configparser names."""
    line: int | None = getattr(exc, "lineno", None)
    message = str(exc).splitlines()[0]
    if isinstance(exc, configparser.MissingSectionHeaderError):
        message = "the file must start with a [programs] section"
    elif isinstance(exc, configparser.ParsingError) and exc.errors:
        line = exc.errors[0][0]
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        message = f"cannot parse {text!r} (write program-id=location)"
    elif isinstance(exc, configparser.DuplicateOptionError):
        message = f"program '{exc.option}' is listed twice"
    elif isinstance(exc, OSError):
        message = exc.strerror or message
    return ProgramProblem(str(path), line, message)


def _program_problem(
    program_id: str, exc: InvalidProgram, files: _Files, config_path: Path
) -> ProgramProblem:
    """Where `exc` (a program that did not load) points: its metadata file (at the line of a
    JSON syntax error), else the `programs.ini` that registers it."""
    cause = exc.__cause__
    message = str(exc)
    for path in (files.planqk_meta, files.meta):
        if isinstance(cause, json.JSONDecodeError) and path.exists():
            return ProgramProblem(str(path), cause.lineno, cause.msg, program_id)
        if message.startswith(f"{path}: "):
            return ProgramProblem(str(path), None, message.removeprefix(f"{path}: "), program_id)
    if files.meta.exists() and str(files.meta) not in message:
        return ProgramProblem(str(files.meta), None, message, program_id)
    return ProgramProblem(str(config_path), None, message, program_id)


class ProgramDirectory:
    """Programs listed in `<directory>/programs.ini` as `program-id=dotted.module` (a Qiskit
    Runtime program) or `program-id=project/directory` (a PlanQK project: it holds a
    `planqk.json`).

    Every lookup checks the files' modification stamps (a few `stat` calls), so a program
    added, changed or removed on disk is seen on the next request without a restart.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        self.config_path = self.directory / CONFIG_NAME
        self._config_stamp: _Stamp | None = None
        self._modules: dict[str, str] = {}
        self.config_problem: ProgramProblem | None = None
        """Why `programs.ini` could not be read, if it could not."""
        self._cache: dict[str, tuple[_Stamp | None, str, Program | ProgramProblem]] = {}
        self._files: dict[str, _Files] = {}

    def _files_of(self, location: str) -> _Files:
        files = self._files.get(location)
        if files is None:
            planqk_meta = planqk_metadata_path(location, self.directory)
            meta = self.directory.joinpath(*location.split(".")).with_suffix(".json")
            files = self._files[location] = _Files(planqk_meta, meta)
        return files

    def refresh(self) -> None:
        """Read `programs.ini` again if it changed."""
        stamp = _stamp(self.config_path)
        if stamp == self._config_stamp and stamp is not None:
            return
        self._config_stamp = stamp
        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        self.config_problem = None
        try:
            parser.read_string(self.config_path.read_text(encoding="utf-8"), str(self.config_path))
        except FileNotFoundError:
            logger.warning("no program registry", extra={"path": str(self.config_path)})
            self._modules = {}
            return
        except (OSError, UnicodeDecodeError, configparser.Error) as exc:
            # The programs it listed when it last could be read go on being served.
            self.config_problem = _config_problem(self.config_path, exc)
            logger.error("unreadable program registry: %s", self.config_problem)
            return
        if not parser.has_section("programs"):
            self.config_problem = ProgramProblem(
                str(self.config_path), None, "there is no [programs] section"
            )
        self._modules = dict(parser["programs"]) if parser.has_section("programs") else {}

    def loaded(self, program_id: str) -> Program | ProgramProblem | None:
        """The program registered under `program_id`, why it cannot be loaded, or None when
        this directory registers no such id."""
        self.refresh()
        location = self._modules.get(program_id)
        return None if location is None else self._program(program_id, location)

    def _program(self, program_id: str, location: str) -> Program | ProgramProblem:
        files = self._files_of(location)
        stamp = _stamp(files.planqk_meta)
        planqk = stamp is not None
        if not planqk:
            stamp = _stamp(files.meta)
        cached = self._cache.get(program_id)
        if cached is not None and cached[:2] == (stamp, location) and stamp is not None:
            return cached[2]
        program: Program | ProgramProblem
        try:
            if planqk:
                program = load_planqk_project(program_id, location, self.directory)
            elif files.planqk_meta.parent.is_dir():
                raise InvalidProgram(
                    f"{files.planqk_meta} does not exist (a PlanQK project needs it)"
                )
            else:
                program = load_program(program_id, location, self.directory)
        except InvalidProgram as exc:
            program = _program_problem(program_id, exc, files, self.config_path)
            logger.error("program %s skipped: %s", program_id, program)
        self._cache[program_id] = (stamp, location, program)
        return program

    def everything(self) -> list[Program | ProgramProblem]:
        """Every registered program or why it cannot be loaded, in the order of
        `programs.ini`."""
        self.refresh()
        return [self._program(pid, location) for pid, location in self._modules.items()]

    def project_dir(self, program: Program) -> str:
        """The directory of a PlanQK project (what its job process runs in)."""
        return os.fspath(self.directory.joinpath(*program.module.split("/")))


class ProgramRegistry:
    """The programs of one or more programs directories (see `ProgramDirectory`): the bundled
    ones first, then the user's; an id a later directory registers wins over an earlier one's.
    """

    def __init__(self, *directories: Path) -> None:
        unique: dict[Path, ProgramDirectory] = {}
        for directory in directories:
            unique.setdefault(directory.resolve(), ProgramDirectory(directory))
        self.directories = list(unique.values())
        """Lowest precedence first."""

    @classmethod
    def of(cls, settings: Settings) -> ProgramRegistry:
        """The bundled programs and the user's: QRT_PROGRAMS_DIR when set (it must be a
        directory holding `programs.ini`: raises ConfigurationError otherwise), else a
        `programs/` of the working directory if it holds a `programs.ini`."""
        own = settings.programs_dir
        if "programs_dir" in settings.model_fields_set:
            if not own.is_dir():
                raise ConfigurationError(f"QRT_PROGRAMS_DIR {own} is not a directory")
            if not (own / CONFIG_NAME).is_file():
                raise ConfigurationError(f"QRT_PROGRAMS_DIR {own} holds no {CONFIG_NAME}")
            return cls(bundled_programs_dir(), own)
        if (own / CONFIG_NAME).is_file():
            return cls(bundled_programs_dir(), own)
        return cls(bundled_programs_dir())

    def _found(self, program_id: str) -> tuple[ProgramDirectory, Program | ProgramProblem] | None:
        for directory in reversed(self.directories):
            found = directory.loaded(program_id)
            if found is not None:
                return directory, found
        return None

    def get(self, program_id: str) -> Program | None:
        """The program registered under `program_id`, or None (also for one that cannot be
        loaded: `problem` says why)."""
        found = self._found(program_id)
        return found[1] if found is not None and isinstance(found[1], Program) else None

    def problem(self, program_id: str) -> ProgramProblem | None:
        """Why the program registered under `program_id` cannot be loaded; None when it can,
        or no such program is registered."""
        found = self._found(program_id)
        return found[1] if found is not None and isinstance(found[1], ProgramProblem) else None

    def _winners(self) -> dict[str, tuple[ProgramDirectory, Program | ProgramProblem]]:
        winners: dict[str, tuple[ProgramDirectory, Program | ProgramProblem]] = {}
        for directory in self.directories:
            for entry in directory.everything():
                key = entry.id if isinstance(entry, Program) else entry.program_id or ""
                winners.pop(key, None)  # a later directory's goes to the end, as it wins
                winners[key] = (directory, entry)
        return winners

    def all(self) -> list[Program]:
        """Every usable program: the bundled ones, then the user's, each in the order of its
        `programs.ini`."""
        return [e for _, e in self._winners().values() if isinstance(e, Program)]

    def problems(self) -> list[ProgramProblem]:
        """Every `programs.ini` that cannot be read and every program that cannot be loaded."""
        found = [p for _, p in self._winners().values() if isinstance(p, ProgramProblem)]
        unreadable = [d.config_problem for d in self.directories if d.config_problem is not None]
        return unreadable + found

    def config_problems(self) -> list[ProgramProblem]:
        """Every `programs.ini` that cannot be read now (what it listed before stays served)."""
        for directory in self.directories:
            directory.refresh()
        return [d.config_problem for d in self.directories if d.config_problem is not None]

    def check(self) -> None:
        """Raise ConfigurationError naming the first problem (and how many more there are), for
        a service about to start."""
        problems = self.problems()
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ConfigurationError(f"{problems[0]}{more}")

    def _directory_of(self, program: Program) -> ProgramDirectory:
        found = self._found(program.id)
        return found[0] if found is not None else self.directories[-1]

    def search_path_of(self, program: Program) -> str:
        """What a job process puts on `sys.path` to import `program`'s module."""
        return os.fspath(self._directory_of(program).directory)

    def project_dir(self, program: Program) -> str:
        """The directory of a PlanQK project (what its job process runs in)."""
        return self._directory_of(program).project_dir(program)
