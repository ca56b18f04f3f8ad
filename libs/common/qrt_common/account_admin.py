"""Managing accounts: what `qrt admin` (against the store) and the admin API routes do, with the
checks both need (names well formed, users and instances exist before they are referred to)."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from .accounts import (
    KEY_ID,
    ApiKey,
    Instance,
    Membership,
    Role,
    User,
    check_instance_limit,
    check_instance_name,
    check_user_name,
    key_digest,
    key_id_of,
    new_key,
)
from .errors import AccountExists, ConfigurationError, Conflict, InvalidInput, NotFound
from .jobs import utcnow
from .store.accounts import AccountStore


class AccountAdmin:
    """Account management on `store`, hashing new keys with `pepper`."""

    def __init__(self, store: AccountStore, pepper: bytes) -> None:
        self.store = store
        self.pepper = pepper

    async def add_user(self, name: str, *, admin: bool = False) -> User:
        """A new user; raises InvalidInput for a bad name, AccountExists for a taken one."""
        user = User(check_user_name(name), admin)
        await self.store.add_user(user)
        return user

    async def user(self, name: str) -> User:
        """The user called `name`; raises NotFound."""
        user = await self.store.get_user(name)
        if user is None:
            raise NotFound(f"no user {name!r}", field="user")
        return user

    async def set_admin(self, name: str, admin: bool) -> None:
        """Make `name` a platform admin or not; raises NotFound, or Conflict when that would
        take away the last platform admin."""
        if not admin:
            await self._keep_an_admin(name, "demote")
        if not await self.store.set_admin(name, admin):
            raise NotFound(f"no user {name!r}", field="user")

    async def remove_user(self, name: str) -> None:
        """Remove a user, their keys and memberships; raises NotFound, or Conflict when `name`
        is the last platform admin."""
        await self._keep_an_admin(name, "remove")
        if not await self.store.delete_user(name):
            raise NotFound(f"no user {name!r}", field="user")

    async def _keep_an_admin(self, name: str, doing: str) -> None:
        """Raise Conflict when `name` is the only platform admin: without one, nobody could
        manage accounts through the API any more."""
        admins = [user.name for user in await self.store.list_users() if user.admin]
        if admins == [name]:
            raise Conflict(
                f"cannot {doing} {name!r}: they are the last platform admin; make another "
                "user an admin first",
                field="user",
            )

    async def create_key(
        self, user: str, *, expires_in: timedelta | None = None, label: str = ""
    ) -> tuple[str, ApiKey]:
        """A new API key of `user` (the key itself, shown once, and its record); raises NotFound
        for an unknown user, InvalidInput for a lifetime that is not positive."""
        await self.user(user)
        expires: datetime | None = None
        if expires_in is not None:
            if expires_in <= timedelta(0):
                raise InvalidInput("a key's lifetime must be positive", field="expires_in")
            expires = utcnow() + expires_in
        key, record = new_key(user, self.pepper, expires=expires, label=label)
        await self.store.add_key(record)
        return key, record

    async def ensure_key(self, user: str, key: str) -> None:
        """Make sure platform admin `user` (made if missing) holds API key `key` (added if
        missing; a revoked one stays revoked). Raises ConfigurationError for a malformed key,
        or when the store holds another key of the same id. Safe for several gateways at once."""
        key_id = check_bootstrap_key(key)
        if await self.store.get_user(user) is None:
            with contextlib.suppress(AccountExists):  # another gateway made it
                await self.store.add_user(User(check_user_name(user), admin=True))
        record = ApiKey(key_id, user, key_digest(self.pepper, key), label="bootstrap")
        try:
            await self.store.add_key(record)
        except AccountExists:
            stored = await self.store.get_key(key_id)
            if stored is None or stored.digest != record.digest or stored.user != user:
                raise ConfigurationError(
                    f"QRT_BOOTSTRAP_ADMIN_KEY: the store holds another key with id {key_id}"
                ) from None

    async def revoke_key(self, key_id: str) -> None:
        """Revoke the key with this id at once; raises NotFound."""
        if not KEY_ID.fullmatch(key_id) or not await self.store.revoke_key(key_id, utcnow()):
            raise NotFound(f"no key {key_id!r}", field="key")

    async def add_instance(self, name: str) -> Instance:
        """A new instance `hub/group/project`; raises InvalidInput, AccountExists."""
        instance = Instance(check_instance_name(name))
        await self.store.add_instance(instance)
        return instance

    async def instance(self, name: str) -> Instance:
        """The instance called `name`; raises NotFound."""
        instance = await self.store.get_instance(name)
        if instance is None:
            raise NotFound(f"no instance {name!r}", field="instance")
        return instance

    async def remove_instance(self, name: str) -> None:
        """Remove an instance and its memberships (its jobs stay, visible to admins)."""
        if not await self.store.delete_instance(name):
            raise NotFound(f"no instance {name!r}", field="instance")

    async def grant(self, instance: str, user: str, role: Role) -> Membership:
        """Make `user` a member of `instance` with `role`; raises NotFound for either."""
        await self.instance(instance)
        await self.user(user)
        await self.store.set_role(instance, user, role)
        return Membership(instance, user, role)

    async def remove_member(self, instance: str, user: str) -> None:
        """Take `user` out of `instance`; raises NotFound if they were no member."""
        if not await self.store.remove_member(instance, user):
            raise NotFound(f"{user!r} is no member of {instance!r}", field="user")

    async def set_instance_limits(
        self, name: str, *, max_active_jobs: int | None, submits_per_minute: int | None
    ) -> Instance:
        """Set `name`'s own caps (None: none of its own) and return the instance; raises
        InvalidInput for a cap out of range, NotFound for no such instance."""
        check_instance_limit(max_active_jobs, "max_active_jobs")
        check_instance_limit(submits_per_minute, "submits_per_minute")
        found = await self.store.set_instance_limits(
            name, max_active_jobs=max_active_jobs, submits_per_minute=submits_per_minute
        )
        if not found:
            raise NotFound(f"no instance {name!r}", field="instance")
        return await self.instance(name)


def check_bootstrap_key(key: str) -> str:
    """The id of `key`, QRT_BOOTSTRAP_ADMIN_KEY; raises ConfigurationError unless it is an API
    key (`qrt_<16 hex digits>_<43 characters>`)."""
    key_id = key_id_of(key)
    if key_id is None:
        raise ConfigurationError(
            "QRT_BOOTSTRAP_ADMIN_KEY must be an API key: qrt_<16 hex digits>_<43 letters,"
            " digits, - or _>"
        )
    return key_id
