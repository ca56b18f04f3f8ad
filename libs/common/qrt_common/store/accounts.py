"""The store's accounts: users, API keys, instances and memberships (see `qrt_common.accounts`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from ..accounts import ApiKey, Instance, Membership, Role, User


class AccountStore(ABC):
    """Keeps users, their API keys (digests only), instances and who belongs to which."""

    @abstractmethod
    async def add_user(self, user: User) -> None:
        """Store a new user; raises AccountExists if one of that name exists."""

    @abstractmethod
    async def get_user(self, name: str) -> User | None:
        """The user called `name`, or None."""

    @abstractmethod
    async def list_users(self) -> list[User]:
        """Every user, by name."""

    @abstractmethod
    async def set_admin(self, name: str, admin: bool) -> bool:
        """Make a user a platform admin or not; False if there is no such user."""

    @abstractmethod
    async def delete_user(self, name: str) -> bool:
        """Remove a user with their keys and memberships; True if they existed."""

    @abstractmethod
    async def add_key(self, key: ApiKey) -> None:
        """Store a new API key; raises AccountExists if its id is taken."""

    @abstractmethod
    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, or None."""

    @abstractmethod
    async def list_keys(self, user: str | None = None) -> list[ApiKey]:
        """Every key (of `user` when given), oldest first."""

    @abstractmethod
    async def revoke_key(self, key_id: str, at: datetime) -> bool:
        """Revoke a key from `at` on (a key revoked already keeps its first time); False if
        there is no such key."""

    @abstractmethod
    async def key_used(self, key_id: str, at: datetime) -> None:
        """Note that the key was used at `at`."""

    @abstractmethod
    async def add_instance(self, instance: Instance) -> None:
        """Store a new instance; raises AccountExists if it exists."""

    @abstractmethod
    async def get_instance(self, name: str) -> Instance | None:
        """The instance called `name` (hub/group/project), or None."""

    @abstractmethod
    async def list_instances(self) -> list[Instance]:
        """Every instance, by name."""

    @abstractmethod
    async def delete_instance(self, name: str) -> bool:
        """Remove an instance and its memberships (not its jobs); True if it existed."""

    @abstractmethod
    async def set_role(self, instance: str, user: str, role: Role) -> None:
        """Make `user` a member of `instance` with `role` (replacing the role they had)."""

    @abstractmethod
    async def remove_member(self, instance: str, user: str) -> bool:
        """Take `user` out of `instance`; True if they were a member."""

    @abstractmethod
    async def memberships(
        self, *, user: str | None = None, instance: str | None = None
    ) -> list[Membership]:
        """The memberships of `user` and/or in `instance` (all without either), by instance
        then user."""

    @abstractmethod
    async def set_instance_limits(
        self, name: str, *, max_active_jobs: int | None, submits_per_minute: int | None
    ) -> bool:
        """Set an instance's own caps (None: none of its own); False if there is no such
        instance."""
