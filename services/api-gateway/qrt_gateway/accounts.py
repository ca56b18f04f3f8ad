"""`/admin/...`: users, API keys, instances and members, for platform admins (403 for anyone
else; an instance's own admins manage its members); what `qrt admin` does against the store,
over the API."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from qrt_common.account_admin import AccountAdmin
from qrt_common.accounts import Role, load_pepper
from qrt_common.errors import ConfigurationError, Conflict, Forbidden

from .auth import AUTHENTICATOR, principal
from .context import gateway
from .plumbing import json_response, read_json, validated
from .schemas import (
    InstanceLimits,
    InstanceList,
    InstanceOut,
    InstanceRequest,
    KeyCreated,
    KeyList,
    KeyOut,
    KeyRequest,
    MemberList,
    MemberOut,
    MemberRequest,
    UserList,
    UserOut,
    UserRequest,
    UserUpdate,
    dump,
)


def _admin(request: web.Request, members_of: str | None = None) -> AccountAdmin:
    """Account management for this request; raises Forbidden unless a platform admin asks, or,
    for managing the members of instance `members_of`, an admin of that instance."""
    who = principal(request)
    if members_of is not None and not who.may(members_of, Role.ADMIN):
        role = who.role(members_of)
        has = f"is {role.value} there" if role is not None else "is no member"
        raise Forbidden(
            f"managing the members of {members_of} needs a platform admin or an admin of "
            f"{members_of}; {who.user} {has}"
        )
    if members_of is None and not who.admin:
        raise Forbidden(f"managing accounts needs a platform admin; {who.user} is none")
    return _account_admin(request)


def _account_admin(request: web.Request) -> AccountAdmin:
    checker = request.app.get(AUTHENTICATOR)
    gw = gateway(request)
    if checker is not None:
        return AccountAdmin(gw.store, checker.pepper)
    try:  # keys off: accounts may still be prepared before they are turned on
        pepper = load_pepper(gw.settings.key_pepper, gw.settings.effective_store_url)
    except ConfigurationError as exc:
        raise Conflict(str(exc)) from None
    return AccountAdmin(gw.store, pepper)


def _instance(request: web.Request) -> str:
    info = request.match_info
    return f"{info['hub']}/{info['group']}/{info['project']}"


async def list_users(request: web.Request) -> web.Response:
    admin = _admin(request)
    users = [UserOut.of(user) for user in await admin.store.list_users()]
    return json_response(dump(UserList(users=users)))


async def add_user(request: web.Request) -> web.Response:
    admin = _admin(request)
    body = validated(UserRequest, await read_json(request))
    user = await admin.add_user(body.name, admin=body.admin)
    return json_response(dump(UserOut.of(user)), 201)


async def update_user(request: web.Request) -> web.Response:
    admin = _admin(request)
    body = validated(UserUpdate, await read_json(request))
    name = request.match_info["name"]
    await admin.set_admin(name, body.admin)
    return json_response(dump(UserOut.of(await admin.user(name))))


async def remove_user(request: web.Request) -> web.Response:
    await _admin(request).remove_user(request.match_info["name"])
    return web.Response(status=204)


async def list_keys(request: web.Request) -> web.Response:
    admin = _admin(request)
    keys = await admin.store.list_keys(request.query.get("user"))
    return json_response(dump(KeyList(keys=[KeyOut.of(key) for key in keys])))


async def create_key(request: web.Request) -> web.Response:
    admin = _admin(request)
    body = validated(KeyRequest, await read_json(request))
    days = body.expires_in_days
    lifetime = None if days is None else timedelta(days=days)
    key, record = await admin.create_key(
        request.match_info["name"], expires_in=lifetime, label=body.label
    )
    created = KeyCreated(**KeyOut.of(record).model_dump(), key=key)
    return json_response(dump(created), 201)


async def revoke_key(request: web.Request) -> web.Response:
    await _admin(request).revoke_key(request.match_info["key_id"])
    return web.Response(status=204)


async def list_instances(request: web.Request) -> web.Response:
    admin = _admin(request)
    instances = [InstanceOut.of(i) for i in await admin.store.list_instances()]
    return json_response(dump(InstanceList(instances=instances)))


async def add_instance(request: web.Request) -> web.Response:
    admin = _admin(request)
    body = validated(InstanceRequest, await read_json(request))
    instance = await admin.add_instance(body.name)
    return json_response(dump(InstanceOut.of(instance)), 201)


async def remove_instance(request: web.Request) -> web.Response:
    await _admin(request).remove_instance(_instance(request))
    return web.Response(status=204)


async def set_instance_limits(request: web.Request) -> web.Response:
    admin = _admin(request)
    body = validated(InstanceLimits, await read_json(request))
    instance = await admin.instance(_instance(request))
    given = body.model_fields_set
    changed = await admin.set_instance_limits(
        instance.name,
        max_active_jobs=body.max_active_jobs
        if "max_active_jobs" in given
        else instance.max_active_jobs,
        submits_per_minute=body.submits_per_minute
        if "submits_per_minute" in given
        else instance.submits_per_minute,
    )
    return json_response(dump(InstanceOut.of(changed)))


async def list_members(request: web.Request) -> web.Response:
    admin = _admin(request, members_of=_instance(request))
    instance = await admin.instance(_instance(request))
    found = await admin.store.memberships(instance=instance.name)
    members = [MemberOut(instance=m.instance, user=m.user, role=m.role) for m in found]
    return json_response(dump(MemberList(members=members)))


async def set_member(request: web.Request) -> web.Response:
    instance, user = _instance(request), request.match_info["user"]
    admin = _admin(request, members_of=instance)
    body = validated(MemberRequest, await read_json(request))
    who = principal(request)
    # Membership is not asked for, it is given: were an instance's admin to add anyone, they
    # could enroll a user in their instance and receive that user's Service API executions of
    # their program (which default to its owner's instance), inputs and all.
    if not who.admin and not await admin.store.memberships(user=user, instance=instance):
        raise Forbidden(
            f"adding a user to {instance} needs a platform admin; an admin of {instance} changes "
            f"the roles of its members and takes them out"
        )
    member = await admin.grant(instance, user, body.role)
    return json_response(
        dump(MemberOut(instance=member.instance, user=member.user, role=member.role))
    )


async def remove_member(request: web.Request) -> web.Response:
    await _admin(request, members_of=_instance(request)).remove_member(
        _instance(request), request.match_info["user"]
    )
    return web.Response(status=204)
