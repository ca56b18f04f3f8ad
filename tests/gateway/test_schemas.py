"""Request bodies on every API are type-checked strictly: a field of the wrong JSON type (a
string or a number for a boolean, a boolean or a string for an integer) is refused with 400
naming the field and the JSON type it must have, never converted."""

from __future__ import annotations

from typing import Any

import pytest

from qrt_common.account_admin import AccountAdmin
from tests.support.programs import b64_zip_of

from .conftest import Harness, MakeGateway
from .test_ibm_api import HEADERS as IBM_HEADERS
from .test_programs import runtime_program

PEPPER = "strict bodies test pepper"


@pytest.fixture
async def root(make_gateway: MakeGateway) -> tuple[Harness, dict[str, str], str]:
    """A gateway with auth, a platform admin's headers, and a private program they uploaded."""
    gw = await make_gateway(auth=True, key_pepper=PEPPER)
    admin = AccountAdmin(gw.store, PEPPER.encode())
    await admin.add_user("root", admin=True)
    await admin.add_instance("a/b/c")
    key, _ = await admin.create_key("root")
    headers = {"Authorization": f"Bearer {key}"}
    body = {"name": "mine", "data": b64_zip_of(runtime_program("m")), "hub": "a", "group": "b",
            "project": "c"}  # fmt: skip
    program = await gw.call("POST", "/programs", 201, json=body, headers=headers)
    return gw, headers, program["id"]


BOOLEAN = "must be a JSON boolean (true or false)"
INTEGER = "must be a JSON integer"


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "said"),
    [
        ("POST", "/admin/users", {"name": "eve", "admin": "yes"}, "admin", f"{BOOLEAN}, not a string"),
        ("POST", "/admin/users", {"name": "eve", "admin": 1}, "admin", f"{BOOLEAN}, not a number"),
        ("POST", "/admin/users", {"name": 7}, "name", "must be a JSON string, not a number"),
        ("PATCH", "/admin/users/root", {"admin": "false"}, "admin", f"{BOOLEAN}, not a string"),
        ("POST", "/admin/users/root/keys", {"expiresInDays": "1"}, "expiresInDays",
         "must be a JSON number, not a string"),
        ("PATCH", "/admin/instances/a/b/c", {"maxActiveJobs": True}, "maxActiveJobs",
         f"{INTEGER}, not a boolean"),
        ("PUT", "/admin/instances/a/b/c/members/root", {"role": 1}, "role", "Input should be"),
        ("POST", "/jobs", {"programId": "noop", "priority": True}, "priority",
         f"{INTEGER}, not a boolean"),
        ("POST", "/jobs", {"programId": "noop", "maxExecutionTime": True}, "maxExecutionTime",
         f"{INTEGER}, not a boolean"),
        ("POST", "/jobs", {"programId": "noop", "maxExecutionTime": "30"}, "maxExecutionTime",
         f"{INTEGER}, not a string"),
        ("POST", "/jobs", {"programId": "noop", "maxExecutionTime": 30.5}, "maxExecutionTime",
         f"{INTEGER}, not a number with a decimal point or exponent"),
        ("POST", "/jobs", {"programId": "noop", "tags": ["x", 1]}, "tags.1",
         "must be a JSON string, not a number"),
        ("POST", "/programs", {"name": "p", "data": "", "isPublic": "yes"}, "isPublic",
         f"{BOOLEAN}, not a string"),
        ("PATCH", "/programs/{program}", {"isPublic": "yes"}, "isPublic",
         f"{BOOLEAN}, not a string"),
        ("PATCH", "/programs/{program}", {"maxExecutionTime": "30"}, "maxExecutionTime",
         f"{INTEGER}, not a string"),
        ("POST", "/services/{program}/?instance=a/b/c", {"data": "x"}, "data",
         "must be a JSON object, not a string"),
        ("POST", "/api/v1/jobs", {"program_id": "sampler", "backend": "aer_simulator",
                                  "cost": True}, "cost", f"{INTEGER}, not a boolean"),
        ("POST", "/api/v1/jobs", {"program_id": "sampler", "backend": "aer_simulator",
                                  "start_session": "no"}, "start_session", f"{BOOLEAN}, not a string"),
    ],
)  # fmt: skip
async def test_a_field_of_the_wrong_json_type_is_refused_naming_it(
    root, method: str, path: str, body: dict[str, Any], field: str, said: str
):
    gw, headers, program = root
    if path.startswith("/api/v1/"):
        headers = headers | IBM_HEADERS
    refused = await gw.call(method, path.format(program=program), 400, json=body, headers=headers)
    assert refused["field"] == field and refused["detail"].startswith(f"{field}: {said}")


async def test_nothing_is_made_of_a_refused_body(root):
    gw, headers, program = root
    await gw.call("POST", "/admin/users", 400, json={"name": "eve", "admin": "yes"},
                  headers=headers)  # fmt: skip
    assert await gw.store.get_user("eve") is None
    await gw.call("PATCH", f"/programs/{program}", 400, json={"isPublic": "yes"}, headers=headers)
    shown = await gw.call("GET", f"/programs/{program}", headers=headers)
    assert shown["isPublic"] is False


async def test_well_typed_bodies_are_taken(root):
    gw, headers, program = root
    made = await gw.call("POST", "/admin/users", 201, json={"name": "eve", "admin": False},
                         headers=headers)  # fmt: skip
    assert made["admin"] is False
    await gw.call("POST", "/admin/users/eve/keys", 201, json={"expiresInDays": 1},
                  headers=headers)  # fmt: skip
    await gw.call("PUT", "/admin/instances/a/b/c/members/eve", json={"role": "reader"},
                  headers=headers)  # fmt: skip
    job = await gw.call("POST", "/jobs", json={"programId": "noop", "priority": 3,
                        "maxExecutionTime": 30}, headers=headers)  # fmt: skip
    assert (await gw.job(job["id"])).max_execution_time == 30
    assert (await gw.job(job["id"])).priority == 3
    changed = await gw.call("PATCH", f"/programs/{program}", json={"isPublic": True},
                            headers=headers)  # fmt: skip
    assert changed["isPublic"] is True
