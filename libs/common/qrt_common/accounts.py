"""Accounts: users, their API keys, instances (`hub/group/project`) and who belongs to which,
with what role; how an API key is made, kept and checked.

An API key is `qrt_<id>_<secret>`: a public id (16 hex digits, how the store finds the key) and
256 random bits. The store keeps only HMAC-SHA256(pepper, key) (RFC 2104), where the pepper is a
server secret (QRT_KEY_PEPPER, or a file the embedded store keeps beside its database): a copy of
the store alone cannot even test a guess. A slow password hash (argon2, bcrypt) protects
guessable human passwords; against 256 random bits it adds nothing but ~0.25 s of CPU to every
request, where HMAC takes microseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import ConfigurationError, InvalidInput
from .jobs import utcnow


class Role(StrEnum):
    """What a member may do in an instance: read its jobs and programs (reader), also submit
    jobs and upload programs (member), also change or delete any of its programs and manage its
    members (admin)."""

    READER = "reader"
    MEMBER = "member"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what `needed` may."""
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.READER: 0, Role.MEMBER: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class User:
    """Someone who may hold API keys; a platform `admin` sees and manages everything."""

    name: str
    admin: bool = False
    created: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored API key: its public `id`, its owner, the HMAC `digest` of the whole key (never
    the key itself), when it was made, when it expires (None: never), when it was revoked, when
    it was last used (to within LAST_USED_EVERY seconds), and a `label` for people."""

    id: str
    user: str
    digest: str
    created: datetime = field(default_factory=utcnow)
    expires: datetime | None = None
    revoked: datetime | None = None
    last_used: datetime | None = None
    label: str = ""

    def problem(self, now: datetime) -> str | None:
        """Why the key cannot be used at `now` ("revoked", "expired"), or None."""
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and now >= self.expires:
            return "expired"
        return None


@dataclass(frozen=True, slots=True)
class Instance:
    """A `hub/group/project`: jobs and programs belong to one, users are its members. Its own
    caps, when set, hold for all its members' jobs together (`qrt_gateway.quotas`)."""

    name: str
    created: datetime = field(default_factory=utcnow)
    max_active_jobs: int | None = None
    """Queued and running jobs the instance may have at once; None: no cap of its own."""
    submits_per_minute: int | None = None
    """Jobs its members may submit a minute, all together (a minute's worth at once); None: no
    rate of its own."""


@dataclass(frozen=True, slots=True)
class Membership:
    """`user` belongs to `instance` with `role`."""

    instance: str
    user: str
    role: Role


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: a user, their roles by instance, and the key they came with
    (None without keys: `qrt dev`'s single user, a platform admin)."""

    user: str
    admin: bool = False
    roles: Mapping[str, Role] = field(default_factory=dict)
    key_id: str | None = None

    def role(self, instance: str) -> Role | None:
        """Their role in `instance` (a platform admin is admin everywhere), or None."""
        return Role.ADMIN if self.admin else self.roles.get(instance)

    def may(self, instance: str, needed: Role) -> bool:
        """Whether they may do in `instance` what `needed` may."""
        role = self.role(instance)
        return role is not None and role.allows(needed)

    @property
    def instances(self) -> tuple[str, ...] | None:
        """The instances whose jobs they see; None: every one (a platform admin)."""
        return None if self.admin else tuple(self.roles)

    def submit_instance(self, default: str) -> str | None:
        """Where their work goes when they name no instance: `default` if they may submit
        there, else the one instance where they may; None when that leaves a choice (or none)."""
        if self.may(default, Role.MEMBER):
            return default
        mine = self.member_of()
        return mine[0] if len(mine) == 1 else None

    def member_of(self) -> list[str]:
        """The instances where they may submit (as a member or more), sorted."""
        return sorted(name for name, role in self.roles.items() if role.allows(Role.MEMBER))


SINGLE_USER = Principal("qrt", admin=True)
"""Whom every request acts for when keys are off (`qrt dev` without `--auth`)."""

LAST_USED_EVERY = 60.0
"""Seconds between two writes of a key's last-used time: a key used on every request costs one
write a minute, not one a request."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_KEY = re.compile(r"qrt_([0-9a-f]{16})_[A-Za-z0-9_-]{43}")
KEY_ID = re.compile(r"[0-9a-f]{16}")


def check_user_name(name: str) -> str:
    """`name` if it can name a user (1 to 64 letters, digits, `. _ @ -`); raises InvalidInput."""
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"user name {name!r} must be 1 to 64 letters, digits or . _ @ - (starting with a"
            " letter or digit)",
            field="user",
        )
    return name


def check_instance_name(name: str) -> str:
    """`name` if it is `hub/group/project`, each 1 to 64 letters, digits or `. _ -`; raises
    InvalidInput."""
    parts = name.split("/")
    if len(parts) != 3 or not all(_PART.fullmatch(part) for part in parts):
        raise InvalidInput(
            f"instance {name!r} must be hub/group/project, each part 1 to 64 letters, digits"
            " or . _ -",
            field="instance",
        )
    return name


def check_instance_limit(value: int | None, name: str) -> int | None:
    """`value` if it can be one of an instance's caps (None, or 1 to 10**9); raises InvalidInput
    naming `name`."""
    if value is not None and (isinstance(value, bool) or not 1 <= value <= MOST_INSTANCE_LIMIT):
        raise InvalidInput(
            f"{name} must be from 1 to {MOST_INSTANCE_LIMIT}, or null for no cap", field=name
        )
    return value


MOST_INSTANCE_LIMIT = 1_000_000_000


def check_role(name: str) -> Role:
    """The role called `name`; raises InvalidInput naming the roles."""
    try:
        return Role(name)
    except ValueError:
        roles = ", ".join(role.value for role in Role)
        raise InvalidInput(f"unknown role {name!r}; use one of: {roles}", field="role") from None


def key_digest(pepper: bytes, key: str) -> str:
    """HMAC-SHA256 of `key` under the server's `pepper`, hex: what the store keeps."""
    return hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()


def new_key(
    user: str, pepper: bytes, *, expires: datetime | None = None, label: str = ""
) -> tuple[str, ApiKey]:
    """A new API key for `user`: the key itself (shown once, never stored) and its record."""
    key_id = secrets.token_hex(8)
    key = f"qrt_{key_id}_{secrets.token_urlsafe(32)}"
    return key, ApiKey(key_id, user, key_digest(pepper, key), expires=expires, label=label)


def key_id_of(text: str) -> str | None:
    """The id inside `text` if it is shaped like an API key, else None."""
    match = _KEY.fullmatch(text)
    return match.group(1) if match else None


def key_matches(record: ApiKey, pepper: bytes, text: str) -> bool:
    """Whether `text` is the key `record` keeps the digest of (in constant time)."""
    return hmac.compare_digest(record.digest, key_digest(pepper, text))


PEPPER_FILE = "key-pepper"
"""The file beside the embedded store's database holding its pepper when QRT_KEY_PEPPER is
empty."""


def load_pepper(configured: str, store_url: str) -> bytes:
    """The server secret API keys are hashed with: `configured` (QRT_KEY_PEPPER) when set; else,
    for the embedded SQLite store, a random one kept in the file `key-pepper` beside the
    database (made on first use, readable only by its owner). Raises ConfigurationError for
    MongoDB without one: every gateway sharing the store must share the pepper."""
    if configured:
        return configured.encode()
    if not store_url.startswith("sqlite:///"):
        raise ConfigurationError(
            "QRT_KEY_PEPPER must be set (a long random secret shared by every gateway and by"
            " `qrt admin`) when the store is not the embedded SQLite file"
        )
    path = Path(store_url.removeprefix("sqlite:///")).parent / PEPPER_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    pepper = secrets.token_hex(32).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(pepper)
    return pepper


def user_to_dict(user: User) -> dict[str, Any]:
    return {"name": user.name, "admin": user.admin, "created": user.created.isoformat()}


def user_from_dict(doc: dict[str, Any]) -> User:
    return User(doc["name"], bool(doc["admin"]), _time(doc["created"]))


def key_to_dict(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "user": key.user,
        "digest": key.digest,
        "created": key.created.isoformat(),
        "expires": _iso(key.expires),
        "revoked": _iso(key.revoked),
        "last_used": _iso(key.last_used),
        "label": key.label,
    }


def key_from_dict(doc: dict[str, Any]) -> ApiKey:
    return ApiKey(
        doc["id"],
        doc["user"],
        doc["digest"],
        _time(doc["created"]),
        _maybe_time(doc.get("expires")),
        _maybe_time(doc.get("revoked")),
        _maybe_time(doc.get("last_used")),
        doc.get("label") or "",
    )


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _maybe_time(value: Any) -> datetime | None:
    return None if value is None else _time(value)
