"""The program registry: `programs.ini` names the programs and is re-read when it changes."""

from __future__ import annotations

import configparser
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidProgram
from .programs import (
    Program,
    load_planqk_project,
    load_program,
    planqk_metadata_path,
)

logger = logging.getLogger(__name__)

CONFIG_NAME = "programs.ini"


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


class ProgramRegistry:
    """Programs listed in `<programs_dir>/programs.ini` as `program-id=dotted.module` (a Qiskit
    Runtime program) or `program-id=project/directory` (a PlanQK project: it holds a
    `planqk.json`).

    Every lookup checks the files' modification stamps (a few `stat` calls), so a program
    added, changed or removed on disk is seen on the next request without a restart.
    """

    def __init__(self, programs_dir: Path) -> None:
        self.programs_dir = programs_dir.resolve()
        self.config_path = self.programs_dir / CONFIG_NAME
        self._config_stamp: _Stamp | None = None
        self._modules: dict[str, str] = {}
        self._cache: dict[str, tuple[_Stamp | None, str, Program | None]] = {}
        self._files: dict[str, _Files] = {}

    def _files_of(self, location: str) -> _Files:
        files = self._files.get(location)
        if files is None:
            planqk_meta = planqk_metadata_path(location, self.programs_dir)
            meta = self.programs_dir.joinpath(*location.split(".")).with_suffix(".json")
            files = self._files[location] = _Files(planqk_meta, meta)
        return files

    def _refresh_config(self) -> None:
        stamp = _stamp(self.config_path)
        if stamp == self._config_stamp and stamp is not None:
            return
        self._config_stamp = stamp
        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            parser.read_string(self.config_path.read_text(encoding="utf-8"), str(self.config_path))
        except FileNotFoundError:
            logger.warning("no program registry", extra={"path": str(self.config_path)})
            self._modules = {}
            return
        except (OSError, configparser.Error) as exc:
            logger.error("unreadable program registry: %s", exc)
            self._modules = {}
            return
        self._modules = dict(parser["programs"]) if parser.has_section("programs") else {}

    def _program(self, program_id: str, location: str) -> Program | None:
        files = self._files_of(location)
        stamp = _stamp(files.planqk_meta)
        planqk = stamp is not None
        if not planqk:
            stamp = _stamp(files.meta)
        cached = self._cache.get(program_id)
        if cached is not None and cached[:2] == (stamp, location) and stamp is not None:
            return cached[2]
        try:
            if planqk:
                program = load_planqk_project(program_id, location, self.programs_dir)
            elif files.planqk_meta.parent.is_dir():
                raise InvalidProgram(
                    f"{files.planqk_meta} does not exist (a PlanQK project needs it)"
                )
            else:
                program = load_program(program_id, location, self.programs_dir)
        except InvalidProgram as exc:
            logger.error("program %s skipped: %s", program_id, exc)
            program = None
        self._cache[program_id] = (stamp, location, program)
        return program

    def get(self, program_id: str) -> Program | None:
        """The program registered under `program_id`, or None."""
        self._refresh_config()
        location = self._modules.get(program_id)
        return None if location is None else self._program(program_id, location)

    def all(self) -> list[Program]:
        """Every usable program, in the order `programs.ini` lists them."""
        self._refresh_config()
        programs = (self._program(pid, location) for pid, location in self._modules.items())
        return [p for p in programs if p is not None]

    @property
    def search_path(self) -> str:
        """What a job process puts on `sys.path` to import program modules."""
        return os.fspath(self.programs_dir)

    def project_dir(self, program: Program) -> str:
        """The directory of a PlanQK project (what its job process runs in)."""
        return os.fspath(self.programs_dir.joinpath(*program.module.split("/")))
