"""Token exchanges: `POST /token` (PlanQK's OAuth2 client credentials, as planqk-service-sdk
sends them) and `POST /identity/token` (IBM Cloud IAM's API-key grant, as qiskit-ibm-runtime
sends it) hand out short-lived signed JWTs that are checked, with their key, on every request."""

from __future__ import annotations

import base64
import time

import jwt
import pytest

from qrt_common.account_admin import AccountAdmin
from qrt_gateway.auth import AUTHENTICATOR

from .conftest import Harness, MakeGateway

PEPPER = "tokens test pepper"
SDK_HEADERS = {
    "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
    "Accept": "application/json",
}
"""What authlib (under planqk-service-sdk) sends to a token endpoint."""


@pytest.fixture
async def locked(make_gateway: MakeGateway) -> Harness:
    gw = await make_gateway(auth=True, key_pepper=PEPPER, access_token_seconds=600)
    await AccountAdmin(gw.store, PEPPER.encode()).add_user("alice", admin=True)
    return gw


async def a_key(gw: Harness) -> tuple[str, str]:
    key, record = await AccountAdmin(gw.store, PEPPER.encode()).create_key("alice")
    return key, record.id


def basic(user: str, secret: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{secret}".encode("latin-1")).decode()
    return {**SDK_HEADERS, "Authorization": f"Basic {encoded}"}


async def post(gw: Harness, path: str, status: int, **options) -> dict:
    async with gw.client.post(path, **options) as response:
        body: dict = await response.json()
        assert response.status == status, body
        assert response.headers["Cache-Control"] == "no-store"
        return body


async def test_client_credentials_give_a_short_lived_jwt_that_opens_the_api(locked: Harness):
    key, key_id = await a_key(locked)
    before = int(time.time())
    answer = await post(locked, "/token", 200, data="grant_type=client_credentials",
                        headers=basic(key_id, key))  # fmt: skip
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 600
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "alice" and claims["kid"] == key_id
    assert before <= claims["iat"] <= claims["exp"] - 600 + 1
    headers = {"Authorization": f"Bearer {answer['access_token']}"}
    await locked.call("GET", "/jobs", headers=headers)
    # The secret alone (the key after its id) and form credentials are taken as well.
    secret = key.removeprefix(f"qrt_{key_id}_")
    await post(locked, "/token", 200, data="grant_type=client_credentials",
               headers=basic(key_id, secret))  # fmt: skip
    form = {"grant_type": "client_credentials", "client_id": key_id, "client_secret": key}
    await post(locked, "/token", 200, data=form)


@pytest.mark.parametrize(
    ("data", "who", "status", "error"),
    [
        ("grant_type=client_credentials", None, 401, "invalid_client"),
        ("grant_type=client_credentials", ("0123456789abcdef", "nope"), 401, "invalid_client"),
        ("grant_type=password", "key", 400, "unsupported_grant_type"),
        ("", "key", 400, "invalid_request"),
    ],
)
async def test_token_errors_have_oauth2_s_shape(locked: Harness, data, who, status, error):
    key, key_id = await a_key(locked)
    headers = dict(SDK_HEADERS)
    if who == "key":
        headers = basic(key_id, key)
    elif who is not None:
        headers = basic(*who)
    body = await post(locked, "/token", status, data=data, headers=headers)
    assert body["error"] == error and body["error_description"]


async def test_another_key_s_id_with_a_good_secret_is_refused(locked: Harness):
    key, _ = await a_key(locked)
    _, other_id = await a_key(locked)
    body = await post(locked, "/token", 401, data="grant_type=client_credentials",
                      headers=basic(other_id, key))  # fmt: skip
    assert body["error"] == "invalid_client"


async def test_iam_apikey_grant_gives_a_jwt_and_refuses_in_iam_s_shape(locked: Harness):
    key, key_id = await a_key(locked)
    form = {"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": key,
            "response_type": "cloud_iam"}  # fmt: skip
    answer = await post(locked, "/identity/token", 200, data=form)
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["kid"] == key_id and {"exp", "iat"} <= set(claims)
    assert answer["expiration"] == claims["exp"] and answer["token_type"] == "Bearer"
    await locked.call("GET", "/jobs", headers={"Authorization": f"Bearer {answer['access_token']}"})
    wrong = await post(locked, "/identity/token", 400, data={**form, "apikey": key[:-2] + "xx"})
    assert wrong["errorCode"] == "BXNIM0415E" and "could not be found" in wrong["errorMessage"]


async def test_a_token_dies_with_its_key_and_a_forged_or_expired_one_is_refused(locked: Harness):
    key, key_id = await a_key(locked)
    form = {"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": key}
    token = (await post(locked, "/identity/token", 200, data=form))["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode({**claims, "sub": "root"}, "another secret" * 3, algorithm="HS256")
    signing_key = locked.client.app[AUTHENTICATOR].signing_key
    expired = jwt.encode({**claims, "exp": int(time.time()) - 1}, signing_key)
    for bad, detail in ((forged, "neither an API key nor a valid access token"),
                        (expired, "has expired")):  # fmt: skip
        async with locked.client.get("/jobs", headers={"Authorization": f"Bearer {bad}"}) as r:
            assert r.status == 401 and detail in (await r.json())["detail"]
    await AccountAdmin(locked.store, PEPPER.encode()).revoke_key(key_id)
    async with locked.client.get("/jobs", headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 401
        assert (await r.json())["detail"] == (
            f"the API key {key_id} behind the access token is revoked"
        )


async def test_without_keys_the_exchanges_hand_out_a_placeholder(gw: Harness):
    body = await post(gw, "/token", 200, data="grant_type=client_credentials",
                      headers=basic("any", "thing"))  # fmt: skip
    assert body["access_token"] == "qrt-single-user" and body["expires_in"] > 120
