"""Jobs belong to their instance (hub/group/project): with keys on, a user sees, streams, cancels
and deletes only jobs of instances they belong to; another instance's job is a 404 on every
route, word for word the 404 of a job that does not exist. Readers read but do not submit."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from qrt_common.account_admin import AccountAdmin
from qrt_common.accounts import Role
from qrt_common.jobs import JobStatus
from tests.support.programs import DEFAULT_SOURCE, b64_zip_of

from .conftest import Harness, MakeGateway

PEPPER = "instances test pepper"
A, B = "acme/research/qubits", "other/group/project"


class Users:
    """Keys of alice and dave (members of A), carol (reader of A), erin (admin of A), bob
    (member of B), root (platform admin)."""

    def __init__(self, gw: Harness) -> None:
        self.gw = gw
        self.keys: dict[str, str] = {}

    async def make(self) -> Users:
        admin = AccountAdmin(self.gw.store, PEPPER.encode())
        for instance in (A, B):
            await admin.add_instance(instance)
        for name, instance, role in (
            ("alice", A, Role.MEMBER),
            ("carol", A, Role.READER),
            ("dave", A, Role.MEMBER),
            ("erin", A, Role.ADMIN),
            ("bob", B, Role.MEMBER),
        ):
            await admin.add_user(name)
            await admin.grant(instance, name, role)
            self.keys[name] = (await admin.create_key(name))[0]
        await admin.add_user("root", admin=True)
        self.keys["root"] = (await admin.create_key("root"))[0]
        return self

    async def call(self, who: str, method: str, path: str, status: int = 200, **options: Any):
        headers = {"Authorization": f"Bearer {self.keys[who]}", **options.pop("headers", {})}
        async with self.gw.client.request(method, path, headers=headers, **options) as response:
            text = await response.text()
            assert response.status == status, (who, method, path, response.status, text)
            return await response.json() if text else None


@pytest.fixture
async def users(make_gateway: MakeGateway) -> Users:
    return await Users(await make_gateway(auth=True, key_pepper=PEPPER)).make()


def where(instance: str) -> dict[str, str]:
    hub, group, project = instance.split("/")
    return {"hub": hub, "group": group, "project": project}


JOB_ROUTES = [
    ("GET", "/jobs/{id}"),
    ("GET", "/jobs/{id}/logs"),
    ("GET", "/jobs/{id}/results"),
    ("POST", "/jobs/{id}/cancel"),
    ("DELETE", "/jobs/{id}"),
    ("GET", "/stream/jobs/{id}"),
    ("GET", "/stream/jobs/{id}/logs"),
]
WEBSOCKET = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}  # fmt: skip


async def test_another_instance_s_job_is_404_on_every_route_like_a_missing_one(users: Users):
    job_id = (await users.call("alice", "POST", "/jobs", json={"programId": "noop", **where(A)}))[
        "id"
    ]
    await users.gw.move(job_id, JobStatus.RUNNING, JobStatus.COMPLETED)
    missing = str(uuid.uuid4())
    for method, route in JOB_ROUTES:
        headers = WEBSOCKET if route.startswith("/stream") else {}
        hidden = await users.call("bob", method, route.format(id=job_id), 404, headers=headers)
        absent = await users.call("bob", method, route.format(id=missing), 404, headers=headers)
        assert hidden == {**absent, "detail": absent["detail"].replace(missing, job_id)}
    assert await users.call("bob", "GET", "/jobs") == {"jobs": [], "count": 0}
    assert (await users.call("bob", "GET", "/jobs?hub=acme"))["count"] == 0
    for who in ("alice", "carol", "root"):
        assert (await users.call(who, "GET", f"/jobs/{job_id}"))["id"] == job_id
        assert [j["id"] for j in (await users.call(who, "GET", "/jobs"))["jobs"]] == [job_id]
    await users.call("alice", "DELETE", f"/jobs/{job_id}", 204)


async def test_members_submit_cancel_and_delete_readers_only_read(users: Users):
    body = {"programId": "noop", **where(A)}
    await users.call("carol", "POST", "/jobs", 403, json=body)
    refused = await users.call("bob", "POST", "/jobs", 403, json=body)
    assert refused["detail"] == f"submitting a job needs the member role in {A}; bob is no member"
    job_id = (await users.call("alice", "POST", "/jobs", json=body))["id"]
    assert (await users.gw.job(job_id)).submitter == "alice"
    detail = (await users.call("carol", "POST", f"/jobs/{job_id}/cancel", 403))["detail"]
    assert detail == f"cancelling a job needs the member role in {A}; carol is reader"
    await users.call("carol", "GET", f"/jobs/{job_id}/logs")
    await users.call("alice", "POST", f"/jobs/{job_id}/cancel", 204)
    await users.gw.move(job_id, JobStatus.CANCELLED)
    await users.call("carol", "DELETE", f"/jobs/{job_id}", 403)
    await users.call("root", "DELETE", f"/jobs/{job_id}", 204)
    # A platform admin submits anywhere; a member who names no instance submits in their one
    # instance (as a Service API execution), a reader of it in none: the default one, refused.
    await users.call("root", "POST", "/jobs", json={"programId": "noop", **where(B)})
    named_none = (await users.call("alice", "POST", "/jobs", json={"programId": "noop"}))["id"]
    assert (await users.gw.job(named_none)).instance == A
    refused = await users.call("carol", "POST", "/jobs", 403, json={"programId": "noop"})
    assert "ibm-q/open/main" in refused["detail"]


EXECUTION_ROUTES = [
    ("GET", "/services/noop/{id}"),
    ("GET", "/services/noop/{id}/result"),
    ("GET", "/services/noop/{id}/interim-results"),
    ("GET", "/services/noop/{id}/log"),
    ("PUT", "/services/noop/{id}/cancel"),
]


async def test_service_executions_belong_to_the_caller_s_instance(users: Users):
    started = await users.call("alice", "POST", "/services/noop/", 201, json={"data": {}})
    execution = started["id"]
    assert (await users.gw.job(execution)).instance == A
    missing = str(uuid.uuid4())
    for method, route in EXECUTION_ROUTES:
        hidden = await users.call("bob", method, route.format(id=execution), 404)
        absent = await users.call("bob", method, route.format(id=missing), 404)
        assert hidden == {**absent, "detail": absent["detail"].replace(missing, execution)}
    assert (await users.call("carol", "GET", f"/services/noop/{execution}"))["id"] == execution
    await users.call("carol", "PUT", f"/services/noop/{execution}/cancel", 403)
    await users.call("carol", "POST", "/services/noop/", 403, json={"data": {}}, params={
        "instance": A})  # fmt: skip
    # A platform admin's executions go to the default instance unless they name one.
    mine = await users.call("root", "POST", "/services/noop/", 201, json={"data": {}})
    assert (await users.gw.job(mine["id"])).instance == "ibm-q/open/main"
    named = await users.call("root", "POST", "/services/noop/", 201, json={"data": {}},
                             params={"instance": B})  # fmt: skip
    assert (await users.gw.job(named["id"])).instance == B
    bad = await users.call("root", "POST", "/services/noop/", 400, json={"data": {}},
                           params={"instance": "nope"})  # fmt: skip
    assert bad["field"] == "instance"


def upload(name: str, instance: str, **fields: Any) -> dict[str, Any]:
    files = {"program.py": DEFAULT_SOURCE}
    return {"name": name, "data": b64_zip_of(files), **where(instance), **fields}


async def test_an_uploader_made_reader_changes_their_programs_no_more(users: Users):
    # A reader only reads: new code of a program its instance's members run is no reader's to
    # give, nor may they publish or delete it.
    program = (await users.call("alice", "POST", "/programs", 201, json=upload("mine", A)))["id"]
    admin = AccountAdmin(users.gw.store, PEPPER.encode())
    await admin.grant(A, "alice", Role.READER)
    code = {"data": b64_zip_of({"program.py": DEFAULT_SOURCE})}
    for method, path, options in (
        ("PATCH", "/programs/{id}", {"json": {"isPublic": True}}),
        ("PUT", "/programs/{id}/data", {"json": code}),
        ("DELETE", "/programs/{id}", {}),
    ):
        refused = await users.call("alice", method, path.format(id=program), 403, **options)
        assert refused["detail"] == (
            f"changing or deleting program '{program}' needs its uploader or an admin of {A};"
            " alice is neither"
        )
    await admin.grant(A, "alice", Role.MEMBER)
    await users.call("alice", "PATCH", f"/programs/{program}", json={"description": "back"})


async def test_private_programs_live_in_their_instance_and_only_their_uploader_or_admins_change_them(
    users: Users,
):
    await users.call("carol", "POST", "/programs", 403, json=upload("p", A))
    await users.call("bob", "POST", "/programs", 403, json=upload("p", A))
    program = (await users.call("alice", "POST", "/programs", 201, json=upload("p", A)))["id"]
    # Out of another instance's sight everywhere: metadata, listings, jobs, the Service API.
    missing = "nope-0000000000"
    for method, path, options in (
        ("GET", "/programs/{id}", {}),
        ("PATCH", "/programs/{id}", {"json": {"description": "x"}}),
        (
            "PUT",
            "/programs/{id}/data",
            {"json": {"data": b64_zip_of({"program.py": DEFAULT_SOURCE})}},
        ),
        ("DELETE", "/programs/{id}", {}),
        ("GET", "/services/{id}/", {}),
        ("POST", "/services/{id}/", {"json": {"data": {}}}),
    ):
        hidden = await users.call("bob", method, path.format(id=program), 404, **options)
        absent = await users.call("bob", method, path.format(id=missing), 404, **options)
        assert hidden["detail"] == absent["detail"].replace(missing, program)
    job = {"programId": program, **where(B)}
    hidden = await users.call("bob", "POST", "/jobs", 404, json=job)
    assert hidden["detail"] == f"program '{program}' not found"
    for query in ("", f"?owner={A}"):
        listed = await users.call("bob", "GET", f"/programs{query}")
        assert program not in [p["id"] for p in listed["programs"]]
    # In its instance: listed and runnable by members, read by readers.
    for who in ("alice", "carol", "dave", "erin", "root"):
        await users.call(who, "GET", f"/programs/{program}")
    assert program in [p["id"] for p in (await users.call("carol", "GET", "/programs"))["programs"]]
    await users.call("dave", "POST", "/jobs", json={"programId": program, **where(A)})
    # Changing or deleting: its uploader, an admin of its instance, a platform admin.
    for who in ("carol", "dave"):
        refused = await users.call(who, "PATCH", f"/programs/{program}", 403,
                                   json={"description": "x"})  # fmt: skip
        assert "needs its uploader or an admin of" in refused["detail"]
    for who in ("alice", "erin", "root"):
        await users.call(who, "PATCH", f"/programs/{program}", json={"description": who})
    # A public program is seen and run from any instance, still changed only by its own.
    await users.call("alice", "PATCH", f"/programs/{program}", json={"isPublic": True})
    await users.call("bob", "GET", f"/programs/{program}")
    await users.call("bob", "POST", "/jobs", json={"programId": program, **where(B)})
    await users.call("bob", "PATCH", f"/programs/{program}", 403, json={"description": "x"})
    await users.call("erin", "PATCH", "/programs/noop", 403, json={"description": "x"})
