"""Programs: the kinds qrt runs and the metadata each ships, read the way its platform wrote it.

A Qiskit Runtime program is a module with `main(backend, user_messenger, **kwargs)` and a
`<module>.json` beside it. A PlanQK project is a directory with a `planqk.json`: a Python
template (`src/program.py` with `run(data, params)`) or, when `planqk.json` names a `command`,
a one-shot program that reads `/var/input/data.json` and `/var/input/params.json`.

Programs come from `programs.ini` (bundled) or are uploaded as a zip archive (see
`archive_program`): the archive's root holds a PlanQK project or a Qiskit Runtime program
whose entry point is `program.py` (metadata optionally in `program.json` beside it).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import InvalidProgram
from .jobs import from_iso, plain, to_iso
from .program_limits import METADATA_KEY as LIMITS_KEY
from .program_limits import read_limits

DEFAULT_MAX_EXECUTION_TIME = 300
PLANQK_METADATA = "planqk.json"
TEMPLATE_ENTRY_POINT = ("src", "program.py")
"""Where a PlanQK Python template keeps its `run(data, params)`, inside the project."""

ARCHIVE_ENTRY_POINT = "program.py"
"""The module holding `main()` in an uploaded Qiskit Runtime program, at the archive's root."""
ARCHIVE_METADATA = "program.json"
"""Optional metadata of an uploaded Qiskit Runtime program, beside its entry point."""

_PROJECT_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")


class ProgramKind(StrEnum):
    """How a program is called, and so how its job runs."""

    QISKIT_RUNTIME = "qiskit-runtime"
    """`main(backend, user_messenger, **kwargs)` in a warm job process."""
    PYTHON_TEMPLATE = "python-template"
    """PlanQK's `run(data, params)` in a warm job process."""
    ONE_SHOT = "one-shot"
    """A command in a sandbox, reading its input from `/var/input`, its result printed."""

    @property
    def is_planqk(self) -> bool:
        """True for the kinds whose input is PlanQK's `{"data", "params"}`."""
        return self is not ProgramKind.QISKIT_RUNTIME


@dataclass(frozen=True, slots=True)
class Program:
    """A runnable program and the metadata that tells users how to call it."""

    id: str
    name: str
    module: str
    """Dotted module path, relative to the programs directory, holding `main()`; for a PlanQK
    project, the project's directory relative to the programs directory."""
    description: str = ""
    version: str = "1.0"
    max_execution_time: int = DEFAULT_MAX_EXECUTION_TIME
    backend_requirements: dict[str, Any] | None = None
    parameters: list[dict[str, Any]] | None = None
    return_values: list[dict[str, Any]] | None = None
    interim_results: list[dict[str, Any]] | None = None
    is_public: bool = True
    kind: ProgramKind = ProgramKind.QISKIT_RUNTIME
    command: tuple[str, ...] = ()
    """A one-shot program's command line, run in the project's directory."""
    owner: str | None = None
    """The `hub/group/project` that uploaded the program; None for a bundled one."""
    digest: str | None = None
    """An uploaded program's archive, as `sha256:<hex>` of its bytes."""
    created: datetime | None = None
    updated: datetime | None = None
    uploader: str | None = None
    """The user who uploaded the program (None when bundled, or uploaded without API keys)."""
    limits: dict[str, int] | None = None
    """Sandbox limits the program declares, by name (`qrt_common.program_limits`); the
    platform's defaults for the others."""

    @property
    def bundled(self) -> bool:
        """True for a program from `programs.ini`, which the API cannot change."""
        return self.owner is None

    def required_parameters(self) -> list[str]:
        """Names of the parameters the metadata marks as required (metadata stored before
        entries were checked may hold others than text: those are left out)."""
        return [
            p["name"]
            for p in self.parameters or ()
            if p.get("required") is True and isinstance(p.get("name"), str)
        ]

    def parameter_type(self, name: str) -> str | None:
        """The declared type of parameter `name`, if the metadata gives one."""
        for p in self.parameters or ():
            if p.get("name") == name:
                kind = p.get("type")
                return kind if isinstance(kind, str) else None
        return None


def planqk_input(data: Any, params: Any) -> str:
    """A PlanQK execution's input as a job keeps it: the program's two keyword arguments."""
    return json.dumps({"data": data, "params": params})


def planqk_input_parts(text: str) -> tuple[Any, Any]:
    """The `data` and `params` of a PlanQK job's input (see `planqk_input`), `{}` if absent."""
    values = json.loads(text) if text else {}
    return values.get("data") or {}, values.get("params") or {}


def _pick(meta: dict[str, Any], snake: str, camel: str, default: Any = None) -> Any:
    # The 2021 test server dropped snake_case keys; metadata files use them, clients camelCase.
    if snake in meta:
        return meta[snake]
    return meta.get(camel, default)


MAX_NAME_CHARS = 100
MAX_DESCRIPTION_CHARS = 10_000
MAX_VERSION_CHARS = 100
LONGEST_EXECUTION_TIME = 366 * 24 * 3600
"""The largest `max_execution_time` (seconds) a program may declare: a year."""
MAX_ENTRIES = 1000
"""The most entries in `parameters`, `return_values` or `interim_results`."""
MAX_ENTRY_TEXT = 10_000
"""The longest text in an entry of those lists (its name, type or description)."""

_ENTRY_TEXTS = {"name": 200, "type": 100, "description": MAX_ENTRY_TEXT}
"""The keys of a `parameters` entry that must be text when given, and their longest."""


def _text(meta: dict[str, Any], key: str, default: str, longest: int) -> str:
    value = meta.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidProgram(f"'{key}' must be a string, not {_json_type(value)}")
    if len(value) > longest:
        raise InvalidProgram(f"'{key}' is longer than {longest} characters")
    return value


def _json_type(value: Any) -> str:
    """What a decoded JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _list_of_dicts(value: Any, key: str, *, named: bool = False) -> list[dict[str, Any]] | None:
    """`value` as the entries of metadata list `key`: objects whose `name`, `type` and
    `description` are text (a parameter must have a name; `required` is true or false)."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidProgram(f"'{key}' must be a list of objects")
    if len(value) > MAX_ENTRIES:
        raise InvalidProgram(f"'{key}' has more than {MAX_ENTRIES} entries")
    for n, entry in enumerate(value):
        where = f"'{key}[{n}]'"
        if named and not entry.get("name"):
            raise InvalidProgram(f"{where} has no 'name'")
        for field, longest in _ENTRY_TEXTS.items():
            text = entry.get(field)
            if field in entry and not isinstance(text, str):
                raise InvalidProgram(f"{where}: '{field}' must be a string, not {_json_type(text)}")
            if isinstance(text, str) and len(text) > longest:
                raise InvalidProgram(f"{where}: '{field}' is longer than {longest} characters")
        if "required" in entry and not isinstance(entry["required"], bool):
            raise InvalidProgram(f"{where}: 'required' must be true or false")
    return value


def program_from_metadata(
    program_id: str,
    module: str,
    meta: dict[str, Any],
    kind: ProgramKind = ProgramKind.QISKIT_RUNTIME,
    command: tuple[str, ...] = (),
) -> Program:
    """Build a Program from a metadata document, accepting snake_case and camelCase keys;
    raises InvalidProgram naming the first key whose value has the wrong type or size."""
    if not isinstance(meta, dict):
        raise InvalidProgram("metadata must be a JSON object")
    max_time = _pick(meta, "max_execution_time", "maxExecutionTime", DEFAULT_MAX_EXECUTION_TIME)
    if not isinstance(max_time, int) or isinstance(max_time, bool) or max_time <= 0:
        raise InvalidProgram("'max_execution_time' must be a positive integer of seconds")
    if max_time > LONGEST_EXECUTION_TIME:
        raise InvalidProgram(
            f"'max_execution_time' must be at most {LONGEST_EXECUTION_TIME} seconds (a year)"
        )
    requirements = _pick(meta, "backend_requirements", "backendRequirements")
    if requirements is not None and not isinstance(requirements, dict):
        raise InvalidProgram("'backend_requirements' must be an object")
    is_public = _pick(meta, "is_public", "isPublic", True)
    if not isinstance(is_public, bool):
        raise InvalidProgram("'is_public' must be true or false")
    return Program(
        id=program_id,
        name=_text(meta, "name", "", MAX_NAME_CHARS) or program_id,
        module=module,
        description=_text(meta, "description", "", MAX_DESCRIPTION_CHARS),
        version=_text(meta, "version", "1.0", MAX_VERSION_CHARS),
        max_execution_time=max_time,
        backend_requirements=requirements,
        parameters=_list_of_dicts(meta.get("parameters"), "parameters", named=True),
        return_values=_list_of_dicts(_pick(meta, "return_values", "returnValues"), "return_values"),
        interim_results=_list_of_dicts(
            _pick(meta, "interim_results", "interimResults"), "interim_results"
        ),
        is_public=is_public,
        kind=kind,
        command=command,
        limits=read_limits(meta.get(LIMITS_KEY)),
    )


def _read_metadata(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidProgram(f"{path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise InvalidProgram(f"{path}: {exc}") from exc
    except RecursionError:
        raise InvalidProgram(f"{path.name} is nested too deeply") from None


def load_program(program_id: str, module: str, programs_dir: Path) -> Program:
    """Read the metadata JSON that sits beside `module`'s source file under `programs_dir`."""
    parts = module.split(".")
    if not all(part.isidentifier() for part in parts):
        raise InvalidProgram(f"{module!r} is not a dotted module path")
    meta_path = programs_dir.joinpath(*parts).with_suffix(".json")
    source_path = meta_path.with_suffix(".py")
    if not source_path.is_file():
        raise InvalidProgram(f"{source_path} does not exist")
    return program_from_metadata(program_id, module, _read_metadata(meta_path))


def planqk_metadata_path(project: str, programs_dir: Path) -> Path:
    """Where the PlanQK project in directory `project` keeps its `planqk.json`."""
    return programs_dir.joinpath(*project.split("/"), PLANQK_METADATA)


def load_planqk_project(program_id: str, project: str, programs_dir: Path) -> Program:
    """Read a PlanQK project: its `planqk.json`, and from it or its files, its kind.

    `planqk.json` keeps PlanQK's own keys (`name`, `description`, `runtime`) and takes the
    Qiskit Runtime metadata keys (`max_execution_time`, `parameters`, ...) as well, plus
    `command`: the argument list that makes the project a one-shot program.
    """
    if not _PROJECT_PATH.fullmatch(project) or ".." in project.split("/"):
        raise InvalidProgram(f"{project!r} is not a project directory relative to {programs_dir}")
    return _planqk_project(program_id, project, planqk_metadata_path(project, programs_dir))


def _planqk_project(program_id: str, module: str, meta_path: Path) -> Program:
    meta = _read_metadata(meta_path)
    if not isinstance(meta, dict):
        raise InvalidProgram(f"{meta_path}: metadata must be a JSON object")
    command = meta.get("command")
    if command is not None:
        if not (
            isinstance(command, list)
            and command
            # An argument holding NUL cannot reach execve(2).
            and all(isinstance(part, str) and part and "\0" not in part for part in command)
        ):
            raise InvalidProgram(
                f"{meta_path}: 'command' must be a non-empty list of strings without NUL"
            )
        return program_from_metadata(program_id, module, meta, ProgramKind.ONE_SHOT, tuple(command))
    if meta.get("runtime") == "DOCKER":
        raise InvalidProgram(
            f"{meta_path}: a DOCKER project runs on qrt as a one-shot program; "
            'add the command its container runs, e.g. "command": ["python3", "main.py"]'
        )
    entry_point = meta_path.parent.joinpath(*TEMPLATE_ENTRY_POINT)
    if not entry_point.is_file():
        raise InvalidProgram(f"{entry_point} does not exist (a Python template needs it)")
    return program_from_metadata(program_id, module, meta, ProgramKind.PYTHON_TEMPLATE)


def archive_program(program_id: str, directory: Path) -> Program:
    """The program an unpacked archive holds in `directory`, read as the registry reads its
    programs: a PlanQK project when the root holds `planqk.json`, else a Qiskit Runtime program
    whose `main()` is in `program.py` (metadata, optional, in `program.json`).

    Also checks that the entry point defines the function a job calls. Paths in messages are
    relative to the archive's root.
    """
    try:
        if (directory / PLANQK_METADATA).is_file():
            program = _planqk_project(program_id, ".", directory / PLANQK_METADATA)
            if program.kind is ProgramKind.PYTHON_TEMPLATE:
                _check_defines(directory.joinpath(*TEMPLATE_ENTRY_POINT), "run")
            return program
        entry_point = directory / ARCHIVE_ENTRY_POINT
        if not entry_point.is_file():
            raise InvalidProgram(
                f"no entry point: the archive holds neither {ARCHIVE_ENTRY_POINT} (a Qiskit "
                f"Runtime program) nor {PLANQK_METADATA} (a PlanQK project) at its root"
            )
        _check_defines(entry_point, "main")
        meta_path = directory / ARCHIVE_METADATA
        meta = _read_metadata(meta_path) if meta_path.is_file() else {}
        return program_from_metadata(program_id, entry_point.stem, meta)
    except InvalidProgram as exc:
        raise InvalidProgram(str(exc).replace(f"{directory}/", "")) from None


def _check_defines(source_path: Path, name: str) -> None:
    """Raise InvalidProgram unless the module at `source_path` binds `name` at its top level."""
    try:
        tree = ast.parse(source_path.read_bytes(), filename=str(source_path))
    except FileNotFoundError:
        raise InvalidProgram(f"{source_path} does not exist") from None
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise InvalidProgram(f"{source_path}{where} is not valid Python: {exc}") from None
    # The module's last top-level binding of `name`.
    last = next((node for node in reversed(tree.body) if name in _bound_by(node)), None)
    if last is None:
        raise InvalidProgram(f"{source_path} has no {name}() function")
    if (
        isinstance(last, ast.Assign)
        and isinstance(last.value, _NOT_CALLABLE)
        # An `if`, `try` or `with` after it may bind it again.
        and not any(
            name in _bound_by(inner)
            for node in tree.body
            if node.lineno > last.lineno
            for inner in ast.walk(node)
        )
    ):
        raise InvalidProgram(
            f"{source_path} (line {last.lineno}) binds {name} to a "
            f"{type(last.value).__name__.lower()}, not a function: define {name}()"
        )


def _bound_by(node: ast.AST) -> set[str]:
    """The names `node` itself binds: a definition's, an import's, an assignment's targets'."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return {node.name}
    if isinstance(node, ast.Import | ast.ImportFrom):
        return {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    if isinstance(node, ast.Assign):
        return {target.id for target in node.targets if isinstance(target, ast.Name)}
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
        return {node.id}
    return set()


_NOT_CALLABLE = (
    ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.JoinedStr,
    ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
)  # fmt: skip
"""Expressions whose value is never callable: `main = 5` binds no entry point."""


_METADATA_FIELDS = (
    "name", "description", "version", "max_execution_time", "backend_requirements",
    "parameters", "return_values", "interim_results", "is_public", "limits",
)  # fmt: skip


def program_metadata(program: Program) -> dict[str, Any]:
    """A program's metadata as a document `program_from_metadata` reads back (snake_case)."""
    return {name: getattr(program, name) for name in _METADATA_FIELDS}


def with_metadata(program: Program, changes: Mapping[str, Any]) -> Program:
    """`program` with metadata `changes` (snake_case keys), checked as a metadata file is."""
    meta = {**program_metadata(program), **changes}
    changed = program_from_metadata(program.id, program.module, meta, program.kind, program.command)
    return dataclasses.replace(
        changed,
        owner=program.owner,
        digest=program.digest,
        created=program.created,
        updated=program.updated,
        uploader=program.uploader,
    )


_ID_ALPHABET = string.ascii_letters + string.digits


def new_program_id(name: str) -> str:
    """An id for an uploaded program: its name as a URL slug plus a random suffix, as IBM's
    `hello-world-ro3PBBMNB9`."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-") or "program"
    return f"{slug}-{''.join(secrets.choice(_ID_ALPHABET) for _ in range(10))}"


def program_to_dict(program: Program) -> dict[str, Any]:
    """A program as a JSON-ready dict, the form the stores keep."""
    doc: dict[str, Any] = plain(program)
    doc.update(
        kind=program.kind.value,
        created=to_iso(program.created),
        updated=to_iso(program.updated),
    )
    return doc


def program_from_dict(doc: Mapping[str, Any]) -> Program:
    """The program a `program_to_dict` dict describes; keys it does not know are ignored."""
    fields = {f.name for f in dataclasses.fields(Program)}
    values = {k: v for k, v in doc.items() if k in fields}
    values.update(
        kind=ProgramKind(doc["kind"]),
        command=tuple(doc.get("command") or ()),
        created=from_iso(doc.get("created")),
        updated=from_iso(doc.get("updated")),
    )
    return Program(**values)
