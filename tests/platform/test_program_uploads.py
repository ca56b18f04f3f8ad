"""Programs uploaded through the API against a real platform: upload, list by owner, update,
replace the code, delete, every rejection, and jobs of every kind running the uploaded code."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import stat
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from openapi_spec_validator import validate

from qrt_cli.dev import Platform
from tests.support.platform import make_settings, poll_status, wait_for
from tests.support.programs import b64_zip_of, merge_programs, zip_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMIT = 64 * 1024
INCOMPRESSIBLE = os.urandom(LIMIT + 1)


def runtime_program(version: str, **extra: str) -> dict[str, str]:
    """A Qiskit Runtime program of two modules that says which version it is."""
    return {
        "program.py": "import time\nfrom helpers import VERSION\n\n"
        "def main(backend, user_messenger, seconds=0, **kwargs):\n"
        "    time.sleep(seconds)\n"
        "    print('running', VERSION)\n"
        "    return {'version': VERSION, 'kwargs': kwargs}\n",
        "helpers.py": f"VERSION = {version!r}\n",
        **extra,
    }


def template(factor: int) -> dict[str, str]:
    return {
        "planqk.json": json.dumps(
            {"name": "scaler", "description": "From planqk.json", "runtime": "PYTHON_TEMPLATE"}
        ),
        "src/__init__.py": "",
        "src/program.py": "def run(data, params):\n"
        f"    return {{'scaled': [{factor} * v for v in data['values']]}}\n",
    }


ONE_SHOT = {
    "planqk.json": json.dumps({"name": "summer", "command": ["python3", "main.py"]}),
    "main.py": "import json\n"
    "values = json.load(open('/var/input/data.json'))['values']\n"
    "print('PlanQK:Job:Result: ' + json.dumps({'sum': sum(values)}))\n",
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    """A platform that takes program archives up to 64 KiB."""
    root = tmp_path_factory.mktemp("uploads")
    settings = make_settings(root, merge_programs(root / "programs"), max_program_bytes=LIMIT)
    running = await Platform.start(settings)
    try:
        yield running
    finally:
        await running.stop()


async def upload(
    http: aiohttp.ClientSession, name: str, files: dict[str, str], **fields: Any
) -> str:
    body = {"name": name, "data": b64_zip_of(files), **fields}
    async with http.post("/programs", json=body) as response:
        assert response.status == 201, await response.text()
        program_id: str = (await response.json())["id"]
        return program_id


async def request(
    http: aiohttp.ClientSession, method: str, path: str, status: int, **kwargs: Any
) -> Any:
    async with http.request(method, path, **kwargs) as response:
        assert response.status == status, await response.text()
        return None if status == 204 else await response.json()


async def run_job(http: aiohttp.ClientSession, program_id: str, params: Any, **fields: Any) -> Any:
    body = {"programId": program_id, "params": params, **fields}
    job_id = (await request(http, "POST", "/jobs", 200, json=body))["id"]
    job = await wait_for(http, job_id)
    assert job["status"] == "Completed", job
    return json.loads(await request(http, "GET", f"/jobs/{job_id}/results", 200))


async def test_upload_run_and_replace_a_qiskit_runtime_program(http):
    spec = {"parameters": [{"name": "seconds", "type": "float"}]}
    program_id = await upload(http, "Version Teller", runtime_program("v1"),
                              description="Says its version", maxExecutionTime=60, spec=spec)  # fmt: skip
    assert (
        program_id.startswith("version-teller-") and len(program_id) == len("version-teller-") + 10
    )
    shown = await request(http, "GET", f"/programs/{program_id}", 200)
    assert shown["name"] == "Version Teller" and shown["description"] == "Says its version"
    assert (shown["kind"], shown["bundled"], shown["owner"]) == (
        "qiskit-runtime",
        False,
        "ibm-q/open/main",
    )
    assert (
        shown["isPublic"] is False
        and shown["maxExecutionTime"] == 60
        and shown["parameters"] == spec["parameters"]
    )
    assert shown["digest"].startswith("sha256:") and shown["createdAt"] == shown["updatedAt"]
    assert await run_job(http, program_id, {"x": 1}) == {"version": "v1", "kwargs": {"x": 1}}
    # A job already running keeps its code; new jobs run the new code.
    body = {"programId": program_id, "params": {"seconds": 1.0}}
    slow = (await request(http, "POST", "/jobs", 200, json=body))["id"]
    await wait_for(http, slow, {"Running"})
    replaced = await request(http, "PUT", f"/programs/{program_id}/data", 200,
                             json={"data": b64_zip_of(runtime_program("v2"))})  # fmt: skip
    assert replaced["digest"] != shown["digest"] and replaced["updatedAt"] > shown["updatedAt"]
    assert (
        replaced["description"] == "Says its version"
        and replaced["createdAt"] == shown["createdAt"]
    )
    assert (await run_job(http, program_id, {}))["version"] == "v2"
    assert (await wait_for(http, slow))["status"] == "Completed"
    assert json.loads(await request(http, "GET", f"/jobs/{slow}/results", 200))["version"] == "v1"
    # The zip itself as the body.
    await request(http, "PUT", f"/programs/{program_id}/data", 200, data=zip_of(runtime_program("v3")),
                  headers={"Content-Type": "application/zip"})  # fmt: skip
    assert (await run_job(http, program_id, {}))["version"] == "v3"


async def test_upload_and_run_planqk_programs(http):
    program_id = await upload(http, "scaler", template(2), isPublic=True)
    shown = await request(http, "GET", f"/programs/{program_id}", 200)
    assert (shown["kind"], shown["description"], shown["isPublic"]) == (
        "python-template",
        "From planqk.json",
        True,
    )
    data = {"data": {"values": [1, 2]}, "params": {}}
    assert await run_job(http, program_id, data) == {"scaled": [2, 4]}
    # The Service API: executions of an uploaded service belong to its owner.
    service = f"/services/{program_id}/"
    assert (await request(http, "GET", service, 200))["status"] == "Service is up and running"
    execution = await request(http, "POST", service, 201, json=data)
    path = f"/services/{program_id}/{execution['id']}"
    assert (await poll_status(http, path, {"SUCCEEDED", "FAILED"}, 30))["status"] == "SUCCEEDED"
    assert await request(http, "GET", f"{path}/result", 200) == {"scaled": [2, 4]}
    await request(
        http, "PUT", f"/programs/{program_id}/data", 200, json={"data": b64_zip_of(template(3))}
    )
    assert await run_job(http, program_id, data) == {"scaled": [3, 6]}
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    summer = await upload(http, "summer", ONE_SHOT)
    assert (await request(http, "GET", f"/programs/{summer}", 200))["kind"] == "one-shot"
    assert await run_job(http, summer, {"data": {"values": [1, 2, 3]}}) == {"sum": 6}


async def test_list_by_owner_privacy_and_metadata_updates(http):
    mine = await upload(http, "lab tool", runtime_program("lab"), hub="lab", group="g", project="p")
    shared = await upload(http, "lab shared", runtime_program("shared"), hub="lab", group="g",
                          project="p", isPublic=True)  # fmt: skip

    async def listed(query: str = "") -> set[str]:
        programs = (await request(http, "GET", f"/programs{query}", 200))["programs"]
        return {p["id"] for p in programs}

    assert {mine, shared, "sample-program", "planqk-starter"} <= await listed("?owner=lab/g/p")
    others = await listed("?owner=else/g/p")
    assert shared in others and mine not in others and "sample-program" in others
    assert mine not in await listed()
    # A private program runs only for its owner.
    error = await request(http, "POST", "/jobs", 403, json={"programId": mine})
    assert error["field"] == "programId" and "private to lab/g/p" in error["detail"]
    assert (await run_job(http, mine, {}, hub="lab", group="g", project="p"))["version"] == "lab"
    assert (await run_job(http, shared, {}))["version"] == "shared"
    # Metadata changes; what is left out stays.
    changed = await request(http, "PATCH", f"/programs/{mine}", 200, json={
        "isPublic": True, "description": "now public",
        "spec": {"parameters": [{"name": "needed", "required": True}]}})  # fmt: skip
    assert (changed["isPublic"], changed["description"], changed["name"]) == (
        True,
        "now public",
        "lab tool",
    )
    assert mine in await listed("?owner=else/g/p")
    missing = await request(http, "POST", "/jobs", 400, json={"programId": mine})
    assert missing["field"] == "params.needed"
    clash = await request(http, "PATCH", f"/programs/{mine}", 409, json={"name": "lab shared"})
    assert clash == {"detail": "lab/g/p already has a program named 'lab shared'", "field": "name"}
    again = await request(http, "POST", "/programs", 409, json={
        "name": "lab tool", "data": b64_zip_of(runtime_program("x")), "hub": "lab", "group": "g", "project": "p"})  # fmt: skip
    assert again["field"] == "name"
    await upload(http, "lab tool", runtime_program("x"))  # another owner may use the name


async def test_delete_waits_for_the_programs_jobs(http):
    program_id = await upload(http, "short-lived", runtime_program("d"))
    body = {"programId": program_id, "params": {"seconds": 30}}
    job_id = (await request(http, "POST", "/jobs", 200, json=body))["id"]
    error = await request(http, "DELETE", f"/programs/{program_id}", 409)
    assert "1 queued or running job(s)" in error["detail"]
    await request(http, "POST", f"/jobs/{job_id}/cancel", 204)
    await wait_for(http, job_id)
    await request(http, "DELETE", f"/programs/{program_id}", 204)
    await request(http, "GET", f"/programs/{program_id}", 404)
    await request(http, "POST", "/jobs", 404, json={"programId": program_id})
    await request(http, "GET", f"/services/{program_id}/", 404)
    await request(http, "DELETE", f"/programs/{program_id}", 404)


async def test_bundled_programs_cannot_be_changed(http):
    for method, path, body in (
        ("PATCH", "/programs/sample-program", {"description": "x"}),
        ("PUT", "/programs/sample-program/data", {"data": b64_zip_of(runtime_program("x"))}),
        ("DELETE", "/programs/sample-program", None),
    ):
        error = await request(http, method, path, 403, json=body)
        assert error["field"] == "programId" and "is bundled (programs.ini)" in error["detail"]
    assert (await request(http, "GET", "/programs/sample-program", 200))["bundled"] is True


def bomb() -> str:
    return b64_zip_of({"program.py": "def main(b, m): pass\n", "zeros": b"\0" * (16 * LIMIT + 1)})


async def test_every_bad_upload_is_refused_naming_the_field(http):
    good = {"name": "bad-input", "data": b64_zip_of(runtime_program("ok"))}
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"data": "not base64!"}, 400, "data", "not valid base64"),
        ({"data": "aGVsbG8="}, 400, "data", "not a zip file"),
        ({"data": b64_zip_of({"../evil.py": "x", "program.py": "def main(): 0"})}, 400, "data", "points outside the archive"),
        ({"data": b64_zip_of({"/abs.py": "x"})}, 400, "data", "absolute path"),
        ({"data": b64_zip_of({"program.py": "/etc/passwd"}, modes={"program.py": stat.S_IFLNK | 0o777})}, 400, "data", "symbolic link"),
        ({"data": bomb()}, 400, "data", "unpacks to more than"),
        ({"data": b64_zip_of({"big": INCOMPRESSIBLE})}, 413, "data", "larger than the limit of 65536 bytes"),
        ({"data": b64_zip_of({"main.py": "def main(): 0"})}, 400, "data", "no entry point"),
        ({"data": b64_zip_of({"program.py": "def run(): 0"})}, 400, "data", "program.py has no main() function"),
        ({"data": b64_zip_of({"planqk.json": "{}"})}, 400, "data", "src/program.py does not exist"),
        ({"name": ""}, 400, "name", "at least 1 character"),
        ({"name": None}, 400, "name", "must be a JSON string, not null"),
        ({"maxExecutionTime": 0}, 400, "maxExecutionTime", "greater than 0"),
        ({"isPublic": "perhaps"}, 400, "isPublic", "must be a JSON boolean (true or false), not a string"),
        ({"spec": {"parameters": "x"}}, 400, "spec.parameters", "must be a JSON array, not a string"),
        ({"spec": {"cost": 1}}, 400, "spec.cost", "Extra inputs"),
        ({"hub": "a/b"}, 400, "hub", "pattern"),
        ({"cost": 600}, 400, "cost", "Extra inputs"),
    ]  # fmt: skip
    for change, status, field, words in cases:
        async with http.post("/programs", json={**good, **change}) as response:
            error = await response.json()
            assert response.status == status, (change, error)
            assert error["field"] == field and words in error["detail"], (change, error)
    error = await request(http, "POST", "/programs", 400, json={"name": "no data"})
    assert error["field"] == "data"
    listed = (await request(http, "GET", "/programs", 200))["programs"]
    assert "bad-input" not in {p["name"] for p in listed}
    error = await request(http, "GET", "/programs?owner=just-a-hub", 400)
    assert error["field"] == "owner"
    for method in ("GET", "PATCH", "DELETE"):
        error = await request(http, method, "/programs/nope-1234567890", 404, json={})
        assert error["detail"] == "program 'nope-1234567890' not found"
    await request(http, "PUT", "/programs/nope-1234567890/data", 404, json={"data": ""})
    program_id = await upload(http, "target", runtime_program("t"))
    replacement = f"/programs/{program_id}/data"
    for body in ({"data": "%%%"}, {}, {"data": b64_zip_of({"x.py": ""})}):
        assert (await request(http, "PUT", replacement, 400, json=body))["field"] == "data"
    too_big = zip_of({"big": INCOMPRESSIBLE})
    await request(http, "PUT", replacement, 413, data=too_big,
                  headers={"Content-Type": "application/zip"})  # fmt: skip
    patches: list[tuple[dict[str, Any], str]] = [
        ({"maxExecutionTime": -1}, "maxExecutionTime"), ({"data": "x"}, "data"),
        ({"spec": {"backendRequirements": 5}}, "spec.backendRequirements"),
    ]  # fmt: skip
    for patch, field in patches:
        error = await request(http, "PATCH", f"/programs/{program_id}", 400, json=patch)
        assert error["field"] == field
    assert (await run_job(http, program_id, {}))["version"] == "t"  # nothing above changed it


async def test_openapi_documents_the_program_routes(http):
    document = await request(http, "GET", "/openapi.json", 200)
    validate(document)
    assert set(document["paths"]["/programs"]) == {"get", "post"}
    assert set(document["paths"]["/programs/{program_id}"]) == {"get", "patch", "delete"}
    assert set(document["paths"]["/programs/{program_id}/data"]) == {"put"}
    assert set(document["paths"]["/programs"]["post"]["responses"]) == {
        "201",
        "400",
        "401",
        "403",
        "409",
        "413",
        "503",
    }
    schemas = document["components"]["schemas"]
    assert {"name", "data", "spec", "isPublic", "hub"} <= set(
        schemas["ProgramRequest"]["properties"]
    )
    assert {"owner", "isPublic", "kind", "createdAt", "updatedAt"} <= set(
        schemas["ProgramOut"]["properties"]
    )


async def test_concurrent_uploads_of_one_name_make_one_program(http):
    body = {"name": "raced", "data": b64_zip_of(runtime_program("r"))}

    async def post() -> int:
        async with http.post("/programs", json=body) as response:
            status: int = response.status
            return status

    assert sorted(await asyncio.gather(*(post() for _ in range(5)))) == [201, 409, 409, 409, 409]
