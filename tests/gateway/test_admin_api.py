"""`/admin/...`: platform admins manage users, keys, instances and members over the API; anyone
else is refused (403)."""

from __future__ import annotations

from typing import Any

import pytest

from qrt_common.account_admin import AccountAdmin
from qrt_common.accounts import Role

from .conftest import Harness, MakeGateway

PEPPER = "admin api test pepper"


class Caller:
    def __init__(self, gw: Harness, key: str) -> None:
        self.gw, self.key = gw, key

    async def __call__(self, method: str, path: str, status: int = 200, **options: Any) -> Any:
        return await self.gw.call(
            method, path, status, headers={"Authorization": f"Bearer {self.key}"}, **options
        )


@pytest.fixture
async def callers(make_gateway: MakeGateway) -> tuple[Caller, Caller]:
    """A platform admin and alice, a member of a/b/c."""
    gw = await make_gateway(auth=True, key_pepper=PEPPER)
    admin = AccountAdmin(gw.store, PEPPER.encode())
    await admin.add_user("root", admin=True)
    await admin.add_user("alice")
    await admin.add_instance("a/b/c")
    await admin.grant("a/b/c", "alice", Role.ADMIN)
    root_key, _ = await admin.create_key("root")
    alice_key, _ = await admin.create_key("alice")
    return Caller(gw, root_key), Caller(gw, alice_key)


async def test_only_platform_admins_manage_accounts(callers):
    _, alice = callers
    for method, path, body in (
        ("GET", "/admin/users", None),
        ("POST", "/admin/users", {"name": "mallory", "admin": True}),
        ("POST", "/admin/users/alice/keys", {}),
        ("GET", "/admin/keys", None),
    ):
        refused = await alice(method, path, 403, json=body)
        assert refused["detail"] == "managing accounts needs a platform admin; alice is none"


async def test_users_keys_instances_and_members_over_the_api(callers):
    root, _ = callers
    assert (await root("POST", "/admin/users", 201, json={"name": "bob"}))["admin"] is False
    await root("POST", "/admin/users", 409, json={"name": "bob"})
    assert (await root("POST", "/admin/users", 400, json={"name": "b b"}))["field"] == "user"
    made = await root("POST", "/admin/users/bob/keys", 201,
                      json={"label": "ci", "expiresInDays": 1})  # fmt: skip
    assert (
        made["key"].startswith(f"qrt_{made['id']}_") and made["expires"] and made["label"] == "ci"
    )
    await root("POST", "/admin/users/nobody/keys", 404, json={})
    bob = Caller(root.gw, made["key"])
    await bob("GET", "/jobs")
    listed = await root("GET", "/admin/keys?user=bob")
    assert [k["id"] for k in listed["keys"]] == [made["id"]]
    assert "key" not in listed["keys"][0] and "digest" not in listed["keys"][0]
    await root("POST", "/admin/instances", 201, json={"name": "x/y/z"})
    await root("POST", "/admin/instances", 400, json={"name": "x/y"})
    await root("PUT", "/admin/instances/x/y/z/members/bob", json={"role": "reader"})
    await root("PUT", "/admin/instances/x/y/z/members/bob", 400, json={"role": "owner"})
    await root("PUT", "/admin/instances/q/q/q/members/bob", 404, json={"role": "reader"})
    members = await root("GET", "/admin/instances/x/y/z/members")
    assert members == {"members": [{"instance": "x/y/z", "user": "bob", "role": "reader"}]}
    await bob("POST", "/jobs", 403, json={"programId": "noop", "hub": "x", "group": "y",
                                         "project": "z"})  # fmt: skip
    await root("PUT", "/admin/instances/x/y/z/members/bob", json={"role": "member"})
    await bob("POST", "/jobs", json={"programId": "noop", "hub": "x", "group": "y", "project": "z"})
    await root("DELETE", "/admin/instances/x/y/z/members/bob", 204)
    await root("DELETE", "/admin/instances/x/y/z/members/bob", 404)
    assert (await root("PATCH", "/admin/users/bob", json={"admin": True}))["admin"] is True
    await root("DELETE", f"/admin/keys/{made['id']}", 204)
    await bob("GET", "/jobs", 401)
    await root("DELETE", "/admin/instances/x/y/z", 204)
    await root("DELETE", "/admin/users/bob", 204)
    await root("DELETE", "/admin/users/bob", 404)
    assert [u["name"] for u in (await root("GET", "/admin/users"))["users"]] == ["alice", "root"]
    assert [i["name"] for i in (await root("GET", "/admin/instances"))["instances"]] == ["a/b/c"]


async def test_the_last_platform_admin_is_neither_removed_nor_demoted(callers):
    root, _ = callers
    reason = "they are the last platform admin; make another user an admin first"
    refused = await root("DELETE", "/admin/users/root", 409)
    assert refused == {"detail": f"cannot remove 'root': {reason}", "field": "user"}
    refused = await root("PATCH", "/admin/users/root", 409, json={"admin": False})
    assert refused == {"detail": f"cannot demote 'root': {reason}", "field": "user"}
    assert [u["admin"] for u in (await root("GET", "/admin/users"))["users"]] == [False, True]
    # With a second admin either may go; the one left stays.
    await root("PATCH", "/admin/users/alice", json={"admin": True})
    await root("PATCH", "/admin/users/alice", json={"admin": False})
    await root("PATCH", "/admin/users/alice", json={"admin": True})
    await root("DELETE", "/admin/users/root", 204)
    alice = Caller(root.gw, (await AccountAdmin(root.gw.store, PEPPER.encode()).create_key(
        "alice"))[0])  # fmt: skip
    await alice("DELETE", "/admin/users/alice", 409)
    await alice("PATCH", "/admin/users/alice", 409, json={"admin": False})


async def test_an_instance_admin_manages_their_instances_members_and_nothing_else(callers):
    root, alice = callers  # alice is admin of a/b/c, and no platform admin
    await root("POST", "/admin/users", 201, json={"name": "bob"})
    await root("POST", "/admin/instances", 201, json={"name": "x/y/z"})
    # Adding someone is a platform admin's: an instance admin could otherwise enroll any user
    # and receive their Service API executions of the instance's programs.
    refused = await alice("PUT", "/admin/instances/a/b/c/members/bob", 403, json={"role": "member"})
    assert refused["detail"] == (
        "adding a user to a/b/c needs a platform admin; an admin of a/b/c changes the roles of its"
        " members and takes them out"
    )
    await alice("PUT", "/admin/instances/a/b/c/members/nobody", 403, json={"role": "reader"})
    assert [
        m["user"] for m in (await root("GET", "/admin/instances/a/b/c/members"))["members"]
    ] == ["alice"]
    await root("PUT", "/admin/instances/a/b/c/members/bob", json={"role": "reader"})
    member = await alice("PUT", "/admin/instances/a/b/c/members/bob", json={"role": "member"})
    assert member == {"instance": "a/b/c", "user": "bob", "role": "member"}
    listed = await alice("GET", "/admin/instances/a/b/c/members")
    assert [(m["user"], m["role"]) for m in listed["members"]] == [("alice", "admin"),
                                                                   ("bob", "member")]  # fmt: skip
    await alice("DELETE", "/admin/instances/a/b/c/members/bob", 204)
    # Another instance's members, caps, users and keys stay out of reach.
    refused = await alice("PUT", "/admin/instances/x/y/z/members/bob", 403, json={"role": "admin"})
    assert refused["detail"] == (
        "managing the members of x/y/z needs a platform admin or an admin of x/y/z; alice is no"
        " member"
    )
    await alice("GET", "/admin/instances/x/y/z/members", 403)
    await alice("PATCH", "/admin/instances/a/b/c", 403, json={"maxActiveJobs": 5})
    await alice("DELETE", "/admin/instances/a/b/c", 403)
    # A member who is no admin manages no one, even in their own instance.
    await root("PUT", "/admin/instances/a/b/c/members/bob", json={"role": "member"})
    key = (await root("POST", "/admin/users/bob/keys", 201, json={}))["key"]
    bob = Caller(root.gw, key)
    refused = await bob("PUT", "/admin/instances/a/b/c/members/bob", 403, json={"role": "admin"})
    assert refused["detail"].endswith("; bob is member there")
