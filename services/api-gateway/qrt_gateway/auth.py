"""Who a request acts for: `Authorization: Bearer <API key or access token>` checked on every
request when keys are on (QRT_AUTH), and the access tokens `POST /token` and
`POST /identity/token` hand out.

Nothing about a key is cached: every request reads the key's record (revoked or expired keys
are refused from the next request on), its user and their memberships, three lookups by key.
Open websockets check their request's credentials again every RECHECK_SECONDS (`recheck`) and
close once they no longer reach the job.
An access token is a JWT (HS256, PyJWT) naming its key (`kid`) and user (`sub`), with `iat` and
`exp`; it is only as good as its key, which is read on every request as well.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import jwt
from aiohttp import web
from aiohttp.typedefs import Middleware

from qrt_common.accounts import (
    LAST_USED_EVERY,
    SINGLE_USER,
    ApiKey,
    Principal,
    key_id_of,
    key_matches,
)
from qrt_common.errors import Unauthenticated
from qrt_common.jobs import utcnow
from qrt_common.store.accounts import AccountStore

Handler = Callable[[web.Request], Any]

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/ui"})
"""Paths served without credentials (health, metrics and the API's description)."""
OPEN_PREFIXES = ("/docs/static/", "/ui/")
"""Static files of the API's page and of the console (whose API calls carry credentials)."""
TOKEN_PATHS = frozenset({"/token", "/identity/token"})
"""The token exchanges, which check the credentials in their own request."""

WEBSOCKET_PROTOCOL = "qrt"
"""The websocket subprotocol the job streams accept (and choose when a client offers it)."""
BEARER_PROTOCOL = "qrt.bearer."
"""A browser cannot set Authorization on a websocket: it offers the subprotocols
`qrt, qrt.bearer.<the key or token, base64url without padding>` instead, the way Kubernetes
takes bearer tokens from browsers (no credential in the URL, hence none in access logs)."""
RECHECK_SECONDS = 0.5
"""How often an open websocket's credentials are checked again: a revoked key, a deleted user
or a lost membership closes the caller's streams within about this long."""
MOST_RECHECKED = 10_000
"""Credentials whose recent check `Authenticator.recheck` remembers before it forgets old ones."""

ISSUER = "qrt"
TOKEN_ALGORITHM = "HS256"


class Authenticator:
    """Checks the credentials of requests against the accounts in `store`; `pepper` is the
    server secret keys are hashed with, from which the access tokens' signing key derives."""

    def __init__(self, store: AccountStore, pepper: bytes, token_seconds: int) -> None:
        self.store = store
        self.pepper = pepper
        self.token_seconds = token_seconds
        self.signing_key = hmac.new(pepper, b"qrt access tokens", hashlib.sha256).digest()
        """The HS256 key of access tokens: derived from the pepper, so every gateway sharing the
        pepper checks every other's tokens."""
        self._noted: dict[str, float] = {}
        self._notes: set[asyncio.Task[None]] = set()
        self._rechecked: dict[str, tuple[float, Principal | Unauthenticated]] = {}

    async def recheck(self, authorization: str | None) -> Principal:
        """`principal(authorization)` as it stands now, or at most RECHECK_SECONDS ago: what
        open websockets ask twice a second, so a thousand streams of one key cost the store
        one check, not a thousand. Raises Unauthenticated as `principal` does."""
        key = authorization or ""
        now = time.monotonic()
        cached = self._rechecked.get(key)
        if cached is None or now - cached[0] >= RECHECK_SECONDS:
            outcome: Principal | Unauthenticated
            try:
                outcome = await self.principal(authorization)
            except Unauthenticated as exc:
                outcome = exc
            if len(self._rechecked) >= MOST_RECHECKED:
                self._rechecked = {
                    k: v for k, v in self._rechecked.items() if now - v[0] < RECHECK_SECONDS
                }
            cached = self._rechecked[key] = (now, outcome)
        if isinstance(cached[1], Unauthenticated):
            raise Unauthenticated(str(cached[1]))
        return cached[1]

    async def check_key(self, key: str) -> ApiKey:
        """The record of the usable API key `key`; raises Unauthenticated saying why not."""
        key_id = key_id_of(key)
        record = None if key_id is None else await self.store.get_key(key_id)
        if record is None or not key_matches(record, self.pepper, key):
            raise Unauthenticated("the API key is wrong (no such key)")
        problem = record.problem(utcnow())
        if problem is not None:
            raise Unauthenticated(f"the API key {record.id} is {problem}")
        return record

    async def principal(self, authorization: str | None) -> Principal:
        """Whom a request with this `Authorization` header acts for; raises Unauthenticated
        naming the problem (missing, malformed, wrong, expired, revoked)."""
        if not authorization:
            raise Unauthenticated(
                "missing Authorization header: send 'Authorization: Bearer <API key or access"
                " token>'"
            )
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthenticated(
                "the Authorization header must be 'Bearer <API key or access token>'"
            )
        if key_id_of(credential) is not None:
            record = await self.check_key(credential)
        else:
            record = await self._token_key(credential)
        user = await self.store.get_user(record.user)
        if user is None:
            raise Unauthenticated(f"the user of API key {record.id} no longer exists")
        self._note_use(record)
        if user.admin:
            return Principal(user.name, admin=True, key_id=record.id)
        roles = {m.instance: m.role for m in await self.store.memberships(user=user.name)}
        return Principal(user.name, roles=roles, key_id=record.id)

    def issue_token(self, key: ApiKey) -> tuple[str, int, int]:
        """A signed access token acting for `key` (it lives QRT_ACCESS_TOKEN_SECONDS, never
        past the key's own expiry); the token, its lifetime in seconds and its expiry (epoch
        seconds)."""
        now = int(time.time())
        expires = now + self.token_seconds
        if key.expires is not None:
            expires = min(expires, int(key.expires.timestamp()))
        claims = {"iss": ISSUER, "sub": key.user, "kid": key.id, "iat": now, "exp": expires}
        token = jwt.encode(claims, self.signing_key, algorithm=TOKEN_ALGORITHM)
        return token, expires - now, expires

    async def _token_key(self, token: str) -> ApiKey:
        """The usable key an access token acts for; raises Unauthenticated."""
        try:
            claims = jwt.decode(
                token,
                self.signing_key,
                algorithms=[TOKEN_ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "kid"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the access token has expired: get a new one") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated(
                "the credential is neither an API key nor a valid access token"
            ) from None
        record = await self.store.get_key(str(claims["kid"]))
        if record is None or record.user != claims["sub"]:
            raise Unauthenticated("the API key behind the access token no longer exists")
        problem = record.problem(utcnow())
        if problem is not None:
            raise Unauthenticated(f"the API key {record.id} behind the access token is {problem}")
        return record

    def _note_use(self, key: ApiKey) -> None:
        """Write the key's last use, at most once a LAST_USED_EVERY, off the request's path."""
        now = time.monotonic()
        if now - self._noted.get(key.id, -LAST_USED_EVERY) < LAST_USED_EVERY:
            return
        self._noted[key.id] = now
        task = asyncio.create_task(self._write_use(key.id))
        self._notes.add(task)
        task.add_done_callback(self._notes.discard)

    async def _write_use(self, key_id: str) -> None:
        with contextlib.suppress(Exception):  # a missed last-use time is no reason to fail
            await self.store.key_used(key_id, utcnow())


def _open(path: str) -> bool:
    """Whether `path` is served without credentials (or checks its own)."""
    return path in OPEN_PATHS or path in TOKEN_PATHS or path.startswith(OPEN_PREFIXES)


def _authorization(request: web.Request) -> str | None:
    """The request's Authorization header, or one made of the bearer credential a browser's
    websocket offers as a subprotocol (`BEARER_PROTOCOL`)."""
    header = request.headers.get("Authorization")
    if header:
        return header
    for offered in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
        protocol = offered.strip()
        if protocol.startswith(BEARER_PROTOCOL):
            encoded = protocol.removeprefix(BEARER_PROTOCOL)
            try:
                credential = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
                return f"Bearer {credential.decode()}"
            except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
                raise Unauthenticated(
                    f"the websocket subprotocol {BEARER_PROTOCOL}<credential> must carry the "
                    "API key or access token in base64url"
                ) from None
    return None


PRINCIPAL = web.RequestKey("principal", Principal)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)


def authenticator(request: web.Request) -> Authenticator:
    """The application's Authenticator; raises Unauthenticated when keys are off (there is
    nothing to exchange for a token then)."""
    found = request.app.get(AUTHENTICATOR)
    if found is None:
        raise Unauthenticated("API keys are off here (QRT_AUTH=false): no token is needed")
    return found


def principal(request: web.Request) -> Principal:
    """Whom `request` acts for (`qrt dev`'s single user when keys are off); raises
    Unauthenticated on a path served without credentials."""
    found: Principal | None = request.get(PRINCIPAL)
    if found is None:
        raise Unauthenticated("this route takes no credentials and acts for nobody")
    return found


def authenticate(checker: Authenticator | None) -> Middleware:
    """A middleware that sets whom each request acts for: with `checker` (keys on), from
    its Authorization header, refusing it (401) without a usable one, except on OPEN_PATHS and
    the token exchanges; without, the single user."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if checker is None:
            request[PRINCIPAL] = SINGLE_USER
        elif not _open(request.path):
            request[PRINCIPAL] = await checker.principal(_authorization(request))
        response: web.StreamResponse = await handler(request)
        return response

    return middleware
