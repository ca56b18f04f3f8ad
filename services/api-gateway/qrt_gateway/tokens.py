"""Token exchanges, so stock clients authenticate unchanged: an API key in, a short-lived access
token (a signed JWT with `exp` and `iat`, see `auth`) out.

- `POST /token`: PlanQK's OAuth2 client-credentials grant (RFC 6749 §4.4), what
  `planqk-service-sdk` asks its `token_endpoint` for. The client id is the key's id, the client
  secret the whole API key (or only its part after the id), in HTTP Basic (RFC 6749 §2.3.1, what
  the SDK sends) or in the form. Errors have OAuth2's shape (§5.2), `{"error",
  "error_description"}`, which the SDK reads as such (any other body makes it fail with a
  KeyError).
- `POST /identity/token`: IBM Cloud IAM's API-key grant, what `qiskit-ibm-runtime` asks
  `$IAM_URL/identity/token` for: form `grant_type=urn:ibm:params:oauth:grant-type:apikey` and
  `apikey`; errors as IAM's `{"errorCode", "errorMessage"}`.

Both answer `Cache-Control: no-store` (§5.1). With keys off (QRT_AUTH false) nothing is
checked and the token is a placeholder (for `/identity/token` an unchecked JWT, whose `exp` IBM's
client reads): every request is the single user's anyway.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from typing import Any

import jwt
from aiohttp import web

from qrt_common.accounts import SINGLE_USER
from qrt_common.errors import Unauthenticated

from .auth import AUTHENTICATOR, ISSUER, TOKEN_ALGORITHM, authenticator

SINGLE_USER_TOKEN = "qrt-single-user"
"""The access token handed out while keys are off: it is never checked."""
SINGLE_USER_SECONDS = 86400
CLIENT_CREDENTIALS = "client_credentials"
IAM_APIKEY = "urn:ibm:params:oauth:grant-type:apikey"
FORM = "application/x-www-form-urlencoded"


def _json(body: dict[str, Any], status: int = 200, **headers: str) -> web.Response:
    response = web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Basic realm="qrt"'} if status == 401 else {}
    return _json({"error": error, "error_description": description}, status, **headers)


async def _form(request: web.Request) -> dict[str, str] | None:
    """The request's form fields, or None if its body is no form."""
    if request.content_type != FORM:
        return None
    form = await request.post()
    return {name: value for name, value in form.items() if isinstance(value, str)}


def _basic(header: str | None) -> tuple[str, str] | None:
    """The (id, secret) of an HTTP Basic Authorization header, or None if there is none usable."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("latin-1")
    except (binascii.Error, ValueError):
        return None
    client_id, colon, secret = decoded.partition(":")
    return (client_id, secret) if colon else None


async def client_credentials(request: web.Request) -> web.Response:
    """`POST /token`: an access token for the API key named by the client credentials."""
    form = await _form(request)
    if form is None:
        return _oauth_error(
            400, "invalid_request", f"send the request as a form ({FORM}): grant_type=..."
        )
    grant = form.get("grant_type")
    if grant is None:
        return _oauth_error(400, "invalid_request", "grant_type is missing")
    if grant != CLIENT_CREDENTIALS:
        return _oauth_error(
            400, "unsupported_grant_type", f"only grant_type={CLIENT_CREDENTIALS} is supported"
        )
    if request.app.get(AUTHENTICATOR) is None:
        return _json(_single_user_token())
    credentials = _basic(request.headers.get("Authorization"))
    if credentials is None and "client_id" in form:
        credentials = (form["client_id"], form.get("client_secret", ""))
    if credentials is None:
        return _oauth_error(
            401, "invalid_client", "send the consumer key and secret as HTTP Basic credentials"
        )
    client_id, secret = credentials
    key = secret if secret.startswith("qrt_") else f"qrt_{client_id}_{secret}"
    try:
        record = await authenticator(request).check_key(key)
    except Unauthenticated as exc:
        return _oauth_error(401, "invalid_client", str(exc))
    if record.id != client_id:
        return _oauth_error(401, "invalid_client", "the consumer key is not the secret's key id")
    token, lifetime, _ = authenticator(request).issue_token(record)
    return _json({"access_token": token, "token_type": "Bearer", "expires_in": lifetime})


def _single_user_token() -> dict[str, Any]:
    return {
        "access_token": SINGLE_USER_TOKEN,
        "token_type": "Bearer",
        "expires_in": SINGLE_USER_SECONDS,
    }


def _iam_error(status: int, code: str, message: str) -> web.Response:
    return _json({"errorCode": code, "errorMessage": message}, status)


async def iam_token(request: web.Request) -> web.Response:
    """`POST /identity/token`: an access token for the form's `apikey`."""
    form = await _form(request)
    if form is None:
        return _iam_error(400, "invalid_request", f"send the request as a form ({FORM})")
    if form.get("grant_type") != IAM_APIKEY:
        return _iam_error(400, "unsupported_grant_type", f"grant_type must be {IAM_APIKEY}")
    apikey = form.get("apikey")
    if not apikey:
        return _iam_error(400, "invalid_request", "apikey is missing")
    if request.app.get(AUTHENTICATOR) is None:
        now = int(time.time())
        expires = now + SINGLE_USER_SECONDS
        # A JWT, never checked: IBM's client reads its `exp` and `iat` to know when to renew.
        claims = {"iss": ISSUER, "sub": SINGLE_USER.user, "iat": now, "exp": expires}
        token = jwt.encode(claims, secrets.token_bytes(32), algorithm=TOKEN_ALGORITHM)
        return _json({**_single_user_token(), "access_token": token, "expiration": expires})
    try:
        record = await authenticator(request).check_key(apikey)
    except Unauthenticated as exc:
        return _iam_error(400, "BXNIM0415E", f"Provided API key could not be found: {exc}")
    token, lifetime, expires = authenticator(request).issue_token(record)
    return _json(
        {
            "access_token": token,
            "refresh_token": "not_supported",
            "token_type": "Bearer",
            "expires_in": lifetime,
            "expiration": expires,
        }
    )
