"""`/programs` and `/backends` on the gateway alone: bundled and uploaded programs, who sees and
changes them, and the backends a job may ask for."""

from __future__ import annotations

import base64
import dataclasses
import os
from typing import Any

import pytest

from qrt_common.archives import archive_digest
from qrt_common.jobs import JobStatus
from qrt_common.messages import Heartbeat
from qrt_common.wire import encode
from tests.support.programs import DAMAGED_ZIPS, b64_zip_of, zip_of

from .conftest import Harness, MakeGateway


def runtime_program(version: str) -> dict[str, str]:
    return {
        "program.py": f"def main(backend, user_messenger, **kwargs):\n    return {version!r}\n",
        "program.json": '{"description": "uploaded", "max_execution_time": 120}',
    }


async def upload(
    gw: Harness, name: str, files: dict[str, str], status: int = 201, **fields: Any
) -> Any:
    body = {"name": name, "data": b64_zip_of(files), **fields}
    return await gw.call("POST", "/programs", status, json=body)


async def listed(gw: Harness, query: str = "") -> set[str]:
    return {p["id"] for p in (await gw.call("GET", f"/programs{query}"))["programs"]}


async def test_bundled_programs_are_listed_with_their_metadata(gw: Harness):
    programs = {p["id"]: p for p in (await gw.call("GET", "/programs"))["programs"]}
    assert {"sample-program", "planqk-starter", "noop", "sleeper"} <= set(programs)
    sample = programs["sample-program"]
    assert (sample["bundled"], sample["owner"], sample["digest"]) == (True, None, None)
    assert sample["maxExecutionTime"] == sample["cost"] == 300
    assert (
        sample["kind"] == "qiskit-runtime"
        and programs["planqk-starter"]["kind"] == "python-template"
    )
    assert await gw.call("GET", "/programs/sample-program") == sample


async def test_an_unknown_program_is_404(gw: Harness):
    assert await gw.call("GET", "/programs/nope", 404) == {
        "detail": "program 'nope' not found",
        "field": None,
    }


@pytest.mark.parametrize("owner", ["a/b", "a/b/c/d", "a//c", ""])
async def test_the_owner_query_must_be_hub_group_project(gw: Harness, owner):
    refused = await gw.call("GET", f"/programs?owner={owner}", 400)
    assert refused["field"] == "owner"


async def test_an_upload_is_stored_with_its_owner_and_digest(gw: Harness):
    files = runtime_program("v1")
    created = await upload(gw, "My Tool", files, hub="a", group="b", project="c")
    program_id = created["id"]
    assert program_id.startswith("my-tool-")
    shown = await gw.call("GET", f"/programs/{program_id}")
    assert (shown["name"], shown["owner"], shown["bundled"]) == ("My Tool", "a/b/c", False)
    assert (shown["isPublic"], shown["description"], shown["maxExecutionTime"]) == (
        False,
        "uploaded",
        120,
    )
    assert shown["digest"] == archive_digest(zip_of(files))
    assert shown["createdAt"] == shown["updatedAt"] and shown["createdAt"].endswith("Z")
    stored = await gw.store.program_archive(program_id)
    assert stored is not None and stored.digest == shown["digest"]


async def test_a_private_upload_is_listed_for_its_owner_only(gw: Harness):
    mine = (await upload(gw, "mine", runtime_program("m"), hub="a", group="b", project="c"))["id"]
    shared = (await upload(gw, "shared", runtime_program("s"), hub="a", group="b", project="c",
                           isPublic=True))["id"]  # fmt: skip
    assert {mine, shared, "sample-program"} <= await listed(gw, "?owner=a/b/c")
    others = await listed(gw, "?owner=x/y/z")
    assert shared in others and mine not in others and "sample-program" in others
    assert mine not in await listed(gw)


async def test_a_program_asked_for_by_its_name_is_404_naming_its_id(gw: Harness):
    bell = (await upload(gw, "bell", runtime_program("b")))["id"]
    await upload(gw, "bell", runtime_program("x"), hub="x", group="y", project="z")  # unseen
    hint = f"; an uploaded program runs by its id: '{bell}' is named 'bell'"
    assert bell != "bell"
    assert (await gw.submit("bell", 404))["detail"] == f"program 'bell' not found{hint}"
    assert (await gw.call("GET", "/programs/bell", 404))["detail"] == (
        f"program 'bell' not found{hint}"
    )
    assert (await gw.call("GET", "/services/bell", 404))["detail"] == (
        f"service 'bell' not found{hint}"
    )
    assert (await gw.submit("nope", 404))["detail"] == "program 'nope' not found"


@pytest.mark.parametrize(
    ("char", "name"), [("\u202e", "RIGHT-TO-LEFT OVERRIDE"), ("\n", "a line feed"),
                       ("\x1b", "ESC"), ("\u200b", "ZERO WIDTH SPACE")],
)  # fmt: skip
async def test_a_name_that_would_not_show_as_it_is_is_refused(gw: Harness, char, name):
    text = f"evil{char}txt.py"
    before = await listed(gw)
    refused = await upload(gw, text, runtime_program("e"), 400)
    assert refused["field"] == "name", name
    assert f"U+{ord(char):04X} at position 4" in refused["detail"]
    assert "control or formatting characters" in refused["detail"]
    refused = await gw.submit("noop", 400, tags=["ok", text])
    assert refused["field"] == "tags.1", refused
    assert await listed(gw) == before and (await gw.call("GET", "/jobs"))["count"] == 0
    ok = await upload(gw, "Grover über Ψ ✓ 量子", runtime_program("u"))
    assert (await gw.call("GET", f"/programs/{ok['id']}"))["name"] == "Grover über Ψ ✓ 量子"


async def test_an_owner_cannot_have_two_programs_of_one_name(gw: Harness):
    await upload(gw, "tool", runtime_program("1"))
    clash = await upload(gw, "tool", runtime_program("2"), 409)
    assert clash == {
        "detail": "ibm-q/open/main already has a program named 'tool'",
        "field": "name",
    }
    await upload(gw, "tool", runtime_program("3"), hub="other")


@pytest.mark.parametrize(
    ("files", "field", "words"),
    [
        ({"main.py": "def main(): 0"}, "data", "no entry point"),
        ({"program.py": "def run(): 0"}, "data", "program.py has no main() function"),
        ({"program.py": "def main(:"}, "data", "is not valid Python"),
    ],
)
async def test_an_upload_without_a_runnable_program_is_refused_naming_data(
    gw: Harness, files, field, words
):
    refused = await upload(gw, "broken", files, 400)
    assert refused["field"] == field and words in refused["detail"]
    assert "broken" not in {p["name"] for p in (await gw.call("GET", "/programs"))["programs"]}


async def test_an_archive_over_the_limit_is_413_naming_data(make_gateway: MakeGateway):
    gw = await make_gateway(max_program_bytes=1024)
    refused = await upload(
        gw, "big", {"program.py": "def main(b, m): 0\n", "x": os.urandom(2048).hex()}, 413
    )
    assert refused["field"] == "data"
    assert "larger than the limit of 1024 bytes" in refused["detail"]


async def test_metadata_changes_keep_what_is_left_out(gw: Harness):
    program_id = (await upload(gw, "tool", runtime_program("1")))["id"]
    before = await gw.call("GET", f"/programs/{program_id}")
    changed = await gw.call("PATCH", f"/programs/{program_id}", json={
        "isPublic": True, "spec": {"parameters": [{"name": "n", "type": "int", "required": True}]}})  # fmt: skip
    assert (changed["isPublic"], changed["description"], changed["name"]) == (
        True,
        "uploaded",
        "tool",
    )
    assert changed["parameters"] == [{"name": "n", "type": "int", "required": True}]
    assert changed["digest"] == before["digest"] and changed["updatedAt"] >= before["updatedAt"]
    assert await gw.call("GET", f"/programs/{program_id}") == changed
    missing = await gw.submit(program_id, 400)
    assert missing["field"] == "params.n"


async def test_new_code_replaces_the_archive_but_keeps_the_metadata(gw: Harness):
    program_id = (await upload(gw, "tool", runtime_program("1"), description="kept"))["id"]
    new = {"program.py": "def main(backend, user_messenger):\n    return 2\n"}
    replaced = await gw.call("PUT", f"/programs/{program_id}/data", json={"data": b64_zip_of(new)})
    assert replaced["digest"] == archive_digest(zip_of(new)) and replaced["description"] == "kept"
    raw = {"program.py": "def main(backend, user_messenger):\n    return 3\n"}
    replaced = await gw.call("PUT", f"/programs/{program_id}/data", data=zip_of(raw),
                             headers={"Content-Type": "application/zip"})  # fmt: skip
    assert replaced["digest"] == archive_digest(zip_of(raw))
    stored = await gw.store.program_archive(program_id)
    assert stored is not None and stored.digest == replaced["digest"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/programs/sample-program", {"description": "x"}),
        ("PUT", "/programs/sample-program/data", {"data": b64_zip_of(runtime_program("x"))}),
        ("DELETE", "/programs/sample-program", None),
    ],
)
async def test_a_bundled_program_cannot_be_changed(gw: Harness, method, path, body):
    refused = await gw.call(method, path, 403, json=body)
    assert refused["field"] == "programId" and "is bundled (programs.ini)" in refused["detail"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/programs/nope-1", {}),
        ("PUT", "/programs/nope-1/data", {"data": ""}),
        ("DELETE", "/programs/nope-1", None),
    ],
)
async def test_changing_an_unknown_program_is_404(gw: Harness, method, path, body):
    assert (await gw.call(method, path, 404, json=body))["detail"] == "program 'nope-1' not found"


async def test_a_program_with_pending_jobs_cannot_be_deleted(gw: Harness):
    program_id = (await upload(gw, "tool", runtime_program("1")))["id"]
    job_id = (await gw.submit(program_id))["id"]
    refused = await gw.call("DELETE", f"/programs/{program_id}", 409)
    assert f"program '{program_id}' has 1 queued or running job(s)" in refused["detail"]
    await gw.move(job_id, JobStatus.RUNNING)
    await gw.call("DELETE", f"/programs/{program_id}", 409)
    await gw.move(job_id, JobStatus.COMPLETED)
    await gw.call("DELETE", f"/programs/{program_id}", 204)
    await gw.call("GET", f"/programs/{program_id}", 404)
    assert (await gw.submit(program_id, 404))["field"] == "programId"


async def test_backends_are_the_simulators_and_the_devices_executors_offer(gw: Harness):
    simulators = [{"name": "aer_simulator", "simulator": True},
                  {"name": "aer_simulator_statevector", "simulator": True}]  # fmt: skip
    assert await gw.call("GET", "/backends") == {"backends": simulators}
    await gw.gateway.on_heartbeat(encode(Heartbeat("e1", 1, ["starmon-5"], {}, ["starmon-5"])))
    assert await gw.call("GET", "/backends") == {
        "backends": [*simulators, {"name": "starmon-5", "simulator": False}]
    }


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"parameters": [{"name": 5}]}, "'parameters[0]': 'name' must be a string, not a number"),
        ({"parameters": [{"name": {"a": 1}, "required": True}]}, "'name' must be a string"),
        ({"parameters": [{"type": "int"}]}, "'parameters[0]' has no 'name'"),
        ({"parameters": [{"name": "x", "type": ["int"]}]}, "'type' must be a string"),
        ({"parameters": [{"name": "x", "required": "yes"}]}, "'required' must be true or false"),
        ({"parameters": [{"name": "x" * 201}]}, "'name' is longer than 200 characters"),
        ({"parameters": [{"name": f"p{n}"} for n in range(1001)]}, "more than 1000 entries"),
        ({"returnValues": [{"name": None}]}, "'return_values[0]': 'name' must be a string"),
        ({"interimResults": [{"description": 1}]}, "'description' must be a string"),
    ],
)
async def test_metadata_of_the_wrong_type_or_size_is_refused_at_upload(gw: Harness, spec, words):
    refused = await upload(gw, "typed", runtime_program("1"), 400, spec=spec)
    assert refused["field"] == "spec" and words in refused["detail"], refused
    assert "typed" not in {p["name"] for p in (await gw.call("GET", "/programs"))["programs"]}


@pytest.mark.parametrize(
    ("meta", "words"),
    [
        ('{"is_public": "yes"}', "'is_public' must be true or false"),
        ('{"max_execution_time": 100000000}', "at most 31622400 seconds"),
        ('{"description": ["a"]}', "'description' must be a string, not a list"),
        ('{"version": 2}', "'version' must be a string"),
        ('{"parameters": [{"name": 1}]}', "'parameters[0]': 'name' must be a string"),
        ('{"parameters": ' + "[" * 5000 + "]" * 5000 + "}", "program.json is nested too deeply"),
    ],
)
async def test_metadata_files_of_the_wrong_type_are_refused_naming_data(gw: Harness, meta, words):
    files = {"program.py": "def main(backend, user_messenger):\n    pass\n", "program.json": meta}
    refused = await upload(gw, "typed", files, 400)
    assert refused["field"] == "data" and words in refused["detail"], refused


async def test_a_time_limit_over_a_year_is_refused(gw: Harness):
    refused = await upload(gw, "long", runtime_program("1"), 400, maxExecutionTime=10**12)
    assert refused["field"] == "maxExecutionTime"


async def test_metadata_stored_before_it_was_checked_does_not_break_submits(gw: Harness):
    program_id = (await upload(gw, "old", runtime_program("1")))["id"]
    program = await gw.store.get_program(program_id)
    assert program is not None
    broken = dataclasses.replace(program, parameters=[{"name": {"a": 1}, "required": True},
                                                      {"name": 5, "type": "int"}])  # fmt: skip
    assert await gw.store.update_program(broken)
    created = await gw.call("POST", "/jobs", json={"programId": program_id, "params": {"x": 1}})
    assert (await gw.job(created["id"])).params == '{"x": 1}'


@pytest.mark.parametrize("kind", sorted(DAMAGED_ZIPS))
async def test_an_archive_the_zip_reader_rejects_is_400_naming_data(gw: Harness, kind):
    body = {"name": "damaged", "data": base64.b64encode(DAMAGED_ZIPS[kind]).decode()}
    refused = await gw.call("POST", "/programs", 400, json=body)
    assert refused["field"] == "data" and refused["detail"].startswith("data: "), refused
    program_id = (await upload(gw, "fine", runtime_program("1")))["id"]
    replaced = await gw.call("PUT", f"/programs/{program_id}/data", 400,
                             data=DAMAGED_ZIPS[kind], headers={"Content-Type": "application/zip"})  # fmt: skip
    assert replaced["field"] == "data"


async def test_an_instance_keeps_at_most_its_share_of_uploads(make_gateway: MakeGateway):
    # Without a cap, one member uploading in a loop would fill the store's disk.
    gw = await make_gateway(instance_max_programs=2)
    first = await upload(gw, "one", runtime_program("1"))
    await upload(gw, "two", runtime_program("2"))
    refused = await upload(gw, "three", runtime_program("3"), 409)
    assert refused == {
        "detail": "instance ibm-q/open/main keeps 2 uploaded programs, the most "
        "QRT_INSTANCE_MAX_PROGRAMS allows; delete one before uploading another",
        "field": "hub",
    }
    # Another instance has room of its own, and a deleted program makes room.
    await upload(gw, "three", runtime_program("3"), hub="acme", group="r", project="q")
    await gw.call("DELETE", f"/programs/{first['id']}", 204)
    await upload(gw, "three", runtime_program("3"))
