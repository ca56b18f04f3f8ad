"""Programs: the metadata a program ships in `<name>.json`, read the way Qiskit Runtime wrote it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_MAX_EXECUTION_TIME = 300


class InvalidProgram(Exception):
    """A program's files exist but cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class Program:
    """A runnable program and the metadata that tells users how to call it."""

    id: str
    name: str
    module: str
    """Dotted module path, relative to the programs directory, holding `main()`."""
    description: str = ""
    version: str = "1.0"
    max_execution_time: int = DEFAULT_MAX_EXECUTION_TIME
    backend_requirements: dict[str, Any] | None = None
    parameters: list[dict[str, Any]] | None = None
    return_values: list[dict[str, Any]] | None = None
    interim_results: list[dict[str, Any]] | None = None
    is_public: bool = True

    def required_parameters(self) -> list[str]:
        """Names of the parameters the metadata marks as required."""
        return [p["name"] for p in self.parameters or () if p.get("required") and "name" in p]

    def parameter_type(self, name: str) -> str | None:
        """The declared type of parameter `name`, if the metadata gives one."""
        for p in self.parameters or ():
            if p.get("name") == name:
                kind = p.get("type")
                return kind if isinstance(kind, str) else None
        return None


def _pick(meta: dict[str, Any], snake: str, camel: str, default: Any = None) -> Any:
    # The 2021 test server dropped snake_case keys; metadata files use them, clients camelCase.
    if snake in meta:
        return meta[snake]
    return meta.get(camel, default)


def _list_of_dicts(value: Any, key: str) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InvalidProgram(f"'{key}' must be a list of objects")
    return value


def program_from_metadata(program_id: str, module: str, meta: dict[str, Any]) -> Program:
    """Build a Program from a metadata document, accepting snake_case and camelCase keys."""
    if not isinstance(meta, dict):
        raise InvalidProgram("metadata must be a JSON object")
    max_time = _pick(meta, "max_execution_time", "maxExecutionTime", DEFAULT_MAX_EXECUTION_TIME)
    if not isinstance(max_time, int) or isinstance(max_time, bool) or max_time <= 0:
        raise InvalidProgram("'max_execution_time' must be a positive integer of seconds")
    requirements = _pick(meta, "backend_requirements", "backendRequirements")
    if requirements is not None and not isinstance(requirements, dict):
        raise InvalidProgram("'backend_requirements' must be an object")
    return Program(
        id=program_id,
        name=str(meta.get("name") or program_id),
        module=module,
        description=str(meta.get("description", "")),
        version=str(meta.get("version", "1.0")),
        max_execution_time=max_time,
        backend_requirements=requirements,
        parameters=_list_of_dicts(meta.get("parameters"), "parameters"),
        return_values=_list_of_dicts(_pick(meta, "return_values", "returnValues"), "return_values"),
        interim_results=_list_of_dicts(
            _pick(meta, "interim_results", "interimResults"), "interim_results"
        ),
        is_public=bool(_pick(meta, "is_public", "isPublic", True)),
    )


def load_program(program_id: str, module: str, programs_dir: Path) -> Program:
    """Read the metadata JSON that sits beside `module`'s source file under `programs_dir`."""
    parts = module.split(".")
    if not all(part.isidentifier() for part in parts):
        raise InvalidProgram(f"{module!r} is not a dotted module path")
    meta_path = programs_dir.joinpath(*parts).with_suffix(".json")
    source_path = meta_path.with_suffix(".py")
    if not source_path.is_file():
        raise InvalidProgram(f"{source_path} does not exist")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidProgram(f"{meta_path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise InvalidProgram(f"{meta_path}: {exc}") from exc
    return program_from_metadata(program_id, module, meta)
