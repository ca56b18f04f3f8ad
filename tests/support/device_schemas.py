"""QuTech's compute-runtime-schema (protocol v3) as validators for what a 2300 device says.

The schemas are read from QRT_CRS_SCHEMAS (default: the shared copy of the spec on these
machines); without them the tests that need them are skipped.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

SCHEMAS = Path(
    os.environ.get("QRT_CRS_SCHEMAS", "/work/shared/specs/compute-runtime-schema/schemas/v3")
)

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


@cache
def validator(name: str) -> Draft202012Validator:
    path = SCHEMAS / f"{name}.schema.json"
    if not path.exists():
        pytest.skip(f"protocol v3 schemas not found at {SCHEMAS} (set QRT_CRS_SCHEMAS)")
    schema = json.loads(path.read_text())
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def check_reply(command: str, reply: dict[str, Any]) -> None:
    """Fail unless `reply` is valid protocol v3 for `command` (failures for any command)."""
    name = REPLIES.get(command, "QuantumHardwareSimpleSuccessResponse")
    if reply.get("status") == "failure":
        name = "QuantumHardwareFailureResponse"
    validator(name).validate(reply)


def check_request(request: dict[str, Any]) -> None:
    validator(REQUESTS[request["command"]]).validate(request)


def check_published(message: dict[str, Any]) -> None:
    validator("PublishState").validate(message)
