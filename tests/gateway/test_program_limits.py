"""Sandbox limits a program's metadata declares, checked at upload: a clear 400 for a limit
that is unknown, not a whole number, or above what the platform lets a program declare."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.programs import b64_zip_of

from .conftest import Harness, MakeGateway

SOURCE = "def main(backend, user_messenger, **kwargs):\n    return 1\n"


async def upload(gw: Harness, limits: Any, status: int) -> Any:
    files = {"program.py": SOURCE, "program.json": json.dumps({"limits": limits})}
    body = {"name": "limited", "data": b64_zip_of(files)}
    return await gw.call("POST", "/programs", status, json=body)


@pytest.mark.parametrize(
    ("limits", "detail"),
    [
        ([1], "'limits' must be an object of limits by name"),
        ({"memory": 1}, "'limits.memory' is no limit; known: memory_bytes, cpu_seconds,"),
        ({"cpu_seconds": 0}, "'limits.cpu_seconds' must be a whole number of at least 1"),
        ({"processes": "8"}, "'limits.processes' must be a whole number of at least 1"),
        ({"open_files": True}, "'limits.open_files' must be a whole number of at least 1"),
        ({"log_bytes": 2.5}, "'limits.log_bytes' must be a whole number of at least 1"),
        ({"temp_bytes": (2 << 30) + 1},
         f"'limits.temp_bytes' is {(2 << 30) + 1}, more than the {2 << 30} a program may declare"
         " here (QRT_PROGRAM_MAX_TEMP_BYTES)"),
    ],
)  # fmt: skip
async def test_bad_limits_are_refused_at_upload_naming_the_field(
    gw: Harness, limits: Any, detail: str
):
    refused = await upload(gw, limits, 400)
    assert refused["field"] == "data"
    assert detail in refused["detail"], refused


async def test_limits_within_the_ceilings_are_kept_with_the_program(make_gateway: MakeGateway):
    gw = await make_gateway(program_max_memory_bytes=1 << 30)
    await upload(gw, {"memory_bytes": (1 << 30) + 1}, 400)
    created = await upload(gw, {"memory_bytes": 1 << 30, "log_bytes": 4096}, 201)
    stored = await gw.store.get_program(created["id"])
    assert stored is not None and stored.limits == {"memory_bytes": 1 << 30, "log_bytes": 4096}
    # A metadata change keeps them.
    await gw.call("PATCH", f"/programs/{created['id']}", json={"description": "changed"})
    changed = await gw.store.get_program(created["id"])
    assert changed is not None and changed.limits == stored.limits
