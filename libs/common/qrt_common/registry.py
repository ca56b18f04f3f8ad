"""The program registry: `programs.ini` names the programs and is re-read when it changes."""

from __future__ import annotations

import configparser
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from .programs import (
    InvalidProgram,
    Program,
    load_planqk_project,
    load_program,
    planqk_metadata_path,
)

logger = logging.getLogger(__name__)

CONFIG_NAME = "programs.ini"
QISKIT_SECTION = "programs"
"""`program-id=dotted.module`: Qiskit Runtime programs."""
PLANQK_SECTION = "planqk"
"""`program-id=project/directory`: PlanQK projects (Python templates and one-shot programs)."""


@dataclass(frozen=True, slots=True)
class _Entry:
    location: str
    planqk: bool


@dataclass(frozen=True, slots=True)
class _Stamp:
    mtime_ns: int
    size: int


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return _Stamp(st.st_mtime_ns, st.st_size)


class ProgramRegistry:
    """Programs listed in `<programs_dir>/programs.ini`: `program-id=dotted.module` in section
    `[programs]`, `program-id=project-directory` in section `[planqk]`.

    Every lookup checks the files' modification stamps (a few `stat` calls), so a program
    added, changed or removed on disk is seen on the next request without a restart.
    """

    def __init__(self, programs_dir: Path) -> None:
        self.programs_dir = programs_dir.resolve()
        self.config_path = self.programs_dir / CONFIG_NAME
        self._config_stamp: _Stamp | None = None
        self._entries: dict[str, _Entry] = {}
        self._cache: dict[str, tuple[_Stamp | None, _Entry, Program | None]] = {}

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
            self._entries = {}
            return
        except (OSError, configparser.Error) as exc:
            logger.error("unreadable program registry: %s", exc)
            self._entries = {}
            return
        entries: dict[str, _Entry] = {}
        for section, planqk in ((QISKIT_SECTION, False), (PLANQK_SECTION, True)):
            if parser.has_section(section):
                for program_id, location in parser[section].items():
                    if program_id in entries:
                        logger.error("program %s is registered twice; the first wins", program_id)
                    else:
                        entries[program_id] = _Entry(location, planqk)
        self._entries = entries

    def _program(self, program_id: str, entry: _Entry) -> Program | None:
        location = entry.location
        if entry.planqk:
            meta_path = planqk_metadata_path(location, self.programs_dir)
        else:
            meta_path = self.programs_dir.joinpath(*location.split(".")).with_suffix(".json")
        stamp = _stamp(meta_path)
        cached = self._cache.get(program_id)
        if cached is not None and cached[:2] == (stamp, entry) and stamp is not None:
            return cached[2]
        load = load_planqk_project if entry.planqk else load_program
        try:
            program = load(program_id, location, self.programs_dir)
        except InvalidProgram as exc:
            logger.error("program %s skipped: %s", program_id, exc)
            program = None
        self._cache[program_id] = (stamp, entry, program)
        return program

    def get(self, program_id: str) -> Program | None:
        """The program registered under `program_id`, or None."""
        self._refresh_config()
        entry = self._entries.get(program_id)
        return None if entry is None else self._program(program_id, entry)

    def all(self) -> list[Program]:
        """Every usable program, in the order `programs.ini` lists them."""
        self._refresh_config()
        programs = (self._program(pid, entry) for pid, entry in self._entries.items())
        return [p for p in programs if p is not None]

    @property
    def search_path(self) -> str:
        """What a job process puts on `sys.path` to import program modules."""
        return os.fspath(self.programs_dir)

    def project_dir(self, program: Program) -> str:
        """The directory of a PlanQK project (what its job process runs in)."""
        return os.fspath(self.programs_dir.joinpath(*program.module.split("/")))
