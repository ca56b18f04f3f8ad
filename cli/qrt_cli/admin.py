"""`qrt admin users|keys|instances ...`: manage accounts against the store directly (QRT_STORE_URL
or the embedded store under QRT_DATA_DIR), which is how the first admin and their key come to
be."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from qrt_common.account_admin import AccountAdmin
from qrt_common.accounts import ApiKey, check_role, load_pepper
from qrt_common.errors import ConfigurationError, InvalidInput, QrtError
from qrt_common.settings import Settings
from qrt_common.store import open_store

Action = Callable[[AccountAdmin, argparse.Namespace], Awaitable[None]]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `admin` and its subcommands to the `qrt` parser."""
    admin = commands.add_parser(
        "admin",
        help="manage users, API keys and instances (against the store directly)",
        description="Manage users, API keys and instances in the configured store.",
    )
    admin.add_argument("--data-dir", help="where the embedded store is (QRT_DATA_DIR)")
    kinds = admin.add_subparsers(dest="kind", required=True, metavar="WHAT")

    users = kinds.add_parser("users", help="platform users").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    add = users.add_parser("add", help="add a user")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="a platform admin (sees everything)")
    add.set_defaults(run=_add_user)
    users.add_parser("list", help="list users").set_defaults(run=_list_users)
    remove = users.add_parser("remove", help="remove a user, their keys and memberships")
    remove.add_argument("name")
    remove.set_defaults(run=_remove_user)
    make_admin = users.add_parser("set-admin", help="make a user a platform admin or not")
    make_admin.add_argument("name")
    make_admin.add_argument("admin", choices=("yes", "no"))
    make_admin.set_defaults(run=_set_admin)

    keys = kinds.add_parser("keys", help="API keys").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = keys.add_parser("create", help="make an API key; prints it once")
    create.add_argument("user")
    create.add_argument("--expires-in", type=float, metavar="DAYS", help="lifetime in days")
    create.add_argument("--label", default="", help="what the key is for")
    create.set_defaults(run=_create_key)
    listing = keys.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--user")
    listing.set_defaults(run=_list_keys)
    revoke = keys.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id")
    revoke.set_defaults(run=_revoke_key)

    instances = kinds.add_parser("instances", help="hub/group/project instances").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    add = instances.add_parser("add", help="add an instance hub/group/project")
    add.add_argument("instance")
    add.set_defaults(run=_add_instance)
    instances.add_parser("list", help="list instances").set_defaults(run=_list_instances)
    remove = instances.add_parser("remove", help="remove an instance and its memberships")
    remove.add_argument("instance")
    remove.set_defaults(run=_remove_instance)
    members = instances.add_parser("members", help="list an instance's members")
    members.add_argument("instance")
    members.set_defaults(run=_members)
    grant = instances.add_parser("grant", help="make a user a member with a role")
    grant.add_argument("instance")
    grant.add_argument("user")
    grant.add_argument("role", help="reader, member or admin")
    grant.set_defaults(run=_grant)
    take = instances.add_parser("remove-member", help="take a user out of an instance")
    take.add_argument("instance")
    take.add_argument("user")
    take.set_defaults(run=_remove_member)
    caps = instances.add_parser(
        "limits",
        help="show or set an instance's own caps (for all its members' jobs together)",
        description="Show an instance's own caps, or set them: 'none' removes one, an option "
        "left out keeps it. Each user's own limits (QRT_USER_*) hold besides.",
    )
    caps.add_argument("instance")
    caps.add_argument(
        "--max-active-jobs", type=_cap, metavar="N|none",
        help="queued and running jobs the instance may have at once",
    )  # fmt: skip
    caps.add_argument(
        "--submits-per-minute", type=_cap, metavar="N|none",
        help="jobs its members may submit a minute, all together",
    )  # fmt: skip
    caps.set_defaults(run=_limits)


async def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run the chosen admin action; returns the exit code, errors as one line on stderr."""
    try:
        pepper = load_pepper(settings.key_pepper, settings.effective_store_url)
        store = open_store(settings.effective_store_url)
        await store.open()
    except (ConfigurationError, QrtError, OSError) as exc:
        print(f"qrt admin: {exc}", file=sys.stderr)
        return 1
    try:
        action: Action = args.run
        await action(AccountAdmin(store, pepper), args)
    except QrtError as exc:
        print(f"qrt admin: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    return 0


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


async def _add_user(admin: AccountAdmin, args: argparse.Namespace) -> None:
    user = await admin.add_user(args.name, admin=args.admin)
    print(f"added user {user.name}" + (" (platform admin)" if user.admin else ""))


async def _list_users(admin: AccountAdmin, args: argparse.Namespace) -> None:
    for user in await admin.store.list_users():
        print(f"{user.name}\t{'admin' if user.admin else 'user'}\t{_when(user.created)}")


async def _remove_user(admin: AccountAdmin, args: argparse.Namespace) -> None:
    await admin.remove_user(args.name)
    print(f"removed user {args.name} with their keys and memberships")


async def _set_admin(admin: AccountAdmin, args: argparse.Namespace) -> None:
    await admin.set_admin(args.name, args.admin == "yes")
    print(f"{args.name} is {'now' if args.admin == 'yes' else 'no longer'} a platform admin")


_KEY_OPTIONS = {"label": "--label", "expiresInDays": "--expires-in"}
"""The options of `keys create` by the fields of the API's KeyRequest they fill."""


def _key_request(label: str, expires_in: float | None) -> tuple[str, timedelta | None]:
    """The label and lifetime of a new key, bounded as `POST /admin/users/{name}/keys` bounds
    them (the gateway's KeyRequest: one rule for both). Raises InvalidInput naming the option."""
    # The gateway's modules only when a key is made: every other command starts without them.
    from qrt_gateway.plumbing import validated
    from qrt_gateway.schemas import KeyRequest

    try:
        request = validated(KeyRequest, {"label": label, "expiresInDays": expires_in})
    except InvalidInput as exc:
        option = _KEY_OPTIONS.get(exc.field or "", exc.field)
        why = str(exc).removeprefix(f"{exc.field}: ").removeprefix("Value error, ")
        unit = " (days)" if option == "--expires-in" else ""
        raise InvalidInput(f"{option}: {why}{unit}", field=exc.field) from None
    days = request.expires_in_days
    return request.label, None if days is None else timedelta(days=days)


async def _create_key(admin: AccountAdmin, args: argparse.Namespace) -> None:
    label, lifetime = _key_request(args.label, args.expires_in)
    key, record = await admin.create_key(args.user, expires_in=lifetime, label=label)
    # The key alone on stdout (for scripts); what it is on stderr.
    print(
        f"API key {record.id} of {record.user}, expires {_when(record.expires)}; it is shown"
        " only now:",
        file=sys.stderr,
    )
    print(key)


def _key_state(key: ApiKey) -> str:
    if key.revoked is not None:
        return f"revoked {_when(key.revoked)}"
    if key.expires is not None:
        return f"expires {_when(key.expires)}"
    return "active"


async def _list_keys(admin: AccountAdmin, args: argparse.Namespace) -> None:
    for key in await admin.store.list_keys(args.user):
        print(
            f"{key.id}\t{key.user}\t{_key_state(key)}\tlast used {_when(key.last_used)}"
            f"\t{key.label}"
        )


async def _revoke_key(admin: AccountAdmin, args: argparse.Namespace) -> None:
    await admin.revoke_key(args.key_id)
    print(f"revoked key {args.key_id}")


async def _add_instance(admin: AccountAdmin, args: argparse.Namespace) -> None:
    instance = await admin.add_instance(args.instance)
    print(f"added instance {instance.name}")


async def _list_instances(admin: AccountAdmin, args: argparse.Namespace) -> None:
    for instance in await admin.store.list_instances():
        caps = ""
        if instance.max_active_jobs is not None or instance.submits_per_minute is not None:
            caps = (
                f"\tmax active jobs {_shown(instance.max_active_jobs)}, submits per minute"
                f" {_shown(instance.submits_per_minute)}"
            )
        print(f"{instance.name}\t{_when(instance.created)}{caps}")


async def _remove_instance(admin: AccountAdmin, args: argparse.Namespace) -> None:
    await admin.remove_instance(args.instance)
    print(f"removed instance {args.instance} and its memberships")


async def _members(admin: AccountAdmin, args: argparse.Namespace) -> None:
    await admin.instance(args.instance)
    for member in await admin.store.memberships(instance=args.instance):
        print(f"{member.user}\t{member.role.value}")


async def _grant(admin: AccountAdmin, args: argparse.Namespace) -> None:
    member = await admin.grant(args.instance, args.user, check_role(args.role))
    print(f"{member.user} is {member.role.value} of {member.instance}")


async def _remove_member(admin: AccountAdmin, args: argparse.Namespace) -> None:
    await admin.remove_member(args.instance, args.user)
    print(f"{args.user} is no longer a member of {args.instance}")


_NO_CAP = 0
"""What `none` on the command line stands for (a cap is at least 1)."""


def _cap(text: str) -> int:
    if text.lower() == "none":
        return _NO_CAP
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a whole number nor 'none'") from None
    if value < 1:
        raise argparse.ArgumentTypeError("a cap must be at least 1 ('none' removes it)")
    return value


def _shown(cap: int | None) -> str:
    return "none" if cap is None else str(cap)


async def _limits(admin: AccountAdmin, args: argparse.Namespace) -> None:
    instance = await admin.instance(args.instance)
    if args.max_active_jobs is not None or args.submits_per_minute is not None:
        instance = await admin.set_instance_limits(
            instance.name,
            max_active_jobs=_given(args.max_active_jobs, instance.max_active_jobs),
            submits_per_minute=_given(args.submits_per_minute, instance.submits_per_minute),
        )
    print(
        f"{instance.name}: max active jobs {_shown(instance.max_active_jobs)}, submits per"
        f" minute {_shown(instance.submits_per_minute)}"
    )


def _given(option: int | None, current: int | None) -> int | None:
    """An option's new cap: unchanged when left out, None for `none`."""
    if option is None:
        return current
    return None if option == _NO_CAP else option
