"""QuTech's compute-runtime-schema as validators for what a 2300 device says, and requests made
from the schemas themselves.

The schemas (versions v1, v2, v3) are read from the directory above QRT_CRS_SCHEMAS (default:
the v3 schemas of the shared copy of the spec, `../shared/specs` beside the repository);
without them the tests that need them are skipped.
"""

from __future__ import annotations

import json
import os
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from .programs import ROOT

SCHEMAS = Path(
    os.environ.get(
        "QRT_CRS_SCHEMAS",
        ROOT.parent / "shared" / "specs" / "compute-runtime-schema" / "schemas" / "v3",
    )
)
"""The v3 schemas; the other versions are its siblings."""
SPEC = SCHEMAS.parent.parent
"""The spec's copy: `schemas/`, `examples/`, `docs/`."""
VERSIONS = ("v1", "v2", "v3")

REPLIES = {
    "initialize": "QuantumHardwareSimpleSuccessResponse",
    "terminate": "QuantumHardwareSimpleSuccessResponse",
    "execute": "QuantumHardwareExecuteResponse",
    "get_static": "QuantumHardwareStaticDataResponse",
    "get_dynamic": "QuantumHardwareDynamicDataResponse",
}
REQUESTS = {
    "initialize": "QuantumHardwareInitializeRequest",
    "terminate": "QuantumHardwareTerminateRequest",
    "execute": "QuantumHardwareExecuteRequest",
    "get_static": "QuantumHardwareStaticDataRequest",
    "get_dynamic": "QuantumHardwareDynamicDataRequest",
}


def schema(name: str, version: str = "v3") -> dict[str, Any]:
    """The JSON schema `name` of `version` (skips the test if the spec is not here)."""
    path = SCHEMAS.parent / version / f"{name}.schema.json"
    if not path.exists():
        pytest.skip(f"compute-runtime-schema not found at {SCHEMAS.parent} (set QRT_CRS_SCHEMAS)")
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


@cache
def validator(name: str, version: str = "v3") -> Draft202012Validator:
    return Draft202012Validator(
        schema(name, version), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def check_reply(command: str, reply: dict[str, Any], version: str = "v3") -> None:
    """Fail unless `reply` is valid for `command` in `version` (failures for any command)."""
    name = REPLIES.get(command, "QuantumHardwareSimpleSuccessResponse")
    if reply.get("status") == "failure":
        name = "QuantumHardwareFailureResponse"
    validator(name, version).validate(reply)


def check_request(request: dict[str, Any], version: str = "v3") -> None:
    validator(REQUESTS[request["command"]], version).validate(request)


def check_published(message: dict[str, Any]) -> None:
    validator("PublishState").validate(message)


# Requests made from the schemas.

SAMPLES: dict[str, list[Any]] = {
    "integer": [1, 0, -7, 2**63, 5.0],
    "boolean": [False, True],
    "number": [1.5],
}
"""Values of each JSON type a generated request tries (`5.0` is an integer to JSON Schema)."""
VERSION_TEXTS = ["0.1.0", "0.2.0", "1.0.0", "3.2.1"]
"""Values of a `version` property (its pattern is `^\\d+\\.\\d+\\.\\d$`)."""


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, name = node["$ref"].split("/")
        node = root["$defs"][name]
    return node


def _values(
    node: dict[str, Any], root: dict[str, Any], name: str, strings: dict[str, list[str]]
) -> list[Any]:
    """Values `node` (the schema of property `name`) accepts; the first is the plainest."""
    node = _resolve(node, root)
    if "const" in node:
        return [node["const"]]
    kind = node.get("type")
    if kind == "object":
        return instances(node, root, strings)
    if kind == "string":
        if name in strings:
            return strings[name]
        if node.get("format") == "uuid":
            return [str(uuid.uuid4())]
        if "pattern" in node:
            return VERSION_TEXTS
        return ["text"]
    if "exclusiveMinimum" in node:  # a count, such as number_of_shots
        least = node["exclusiveMinimum"] + 1
        return [least, least + 2, float(least + 99)]
    return SAMPLES.get(str(kind), [None])


def instances(
    node: dict[str, Any], root: dict[str, Any], strings: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """Objects `node` accepts: its required properties at their plainest values; then each
    required property at each of its other values; then each optional property added, at each
    of its values. `strings` gives the values of string properties by name (a `circuit` the
    device can run)."""
    properties = node.get("properties", {})
    required = node.get("required", [])
    choices = {key: _values(properties[key], root, key, strings) for key in properties}
    base = {key: choices[key][0] for key in required}
    found = [base]
    for key in required:
        found += [{**base, key: value} for value in choices[key][1:]]
    for key in properties:
        if key not in required:
            found += [{**base, key: value} for value in choices[key]]
    return found


def requests_of(command: str, version: str, strings: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Requests of `command` that `version`'s request schema accepts, from its required fields
    on (each is checked against the schema)."""
    root = schema(REQUESTS[command], version)
    made = instances(root, root, strings)
    for request in made:
        validator(REQUESTS[command], version).validate(request)
    return made


def examples() -> list[tuple[str, dict[str, Any]]]:
    """The spec's example requests, by command."""
    found = []
    for path in sorted((SPEC / "examples").glob("*/request.json")):
        found.append((path.parent.name, json.loads(path.read_text())))
    return found
