"""The HTTP plumbing every route shares: each error answered as JSON with its status, request
bodies read as JSON, validated bodies naming the field at fault, and query parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from pydantic import BaseModel, Field

from qrt_common.errors import (
    ArchiveTooLarge,
    BusUnavailable,
    Conflict,
    CqasmError,
    DeviceRefused,
    DeviceUnavailable,
    Forbidden,
    IllegalTransition,
    InvalidArchive,
    InvalidInput,
    InvalidProgram,
    NotFound,
    ProgramNameTaken,
    QrtError,
    StoreUnavailable,
    TooLarge,
    Unavailable,
)
from qrt_gateway.plumbing import (
    bool_query,
    int_query,
    json_errors,
    parse_json,
    read_json,
    time_query,
    validated,
)
from tests.support.raw_http import exchange

LIMIT = 1024
"""The body limit of the application under test (the smallest the settings allow)."""


class Raiser:
    """The error the next request's handler raises."""

    error: BaseException = RuntimeError("unset")


@pytest.fixture
def raiser() -> Raiser:
    return Raiser()


@pytest.fixture
async def client(raiser: Raiser) -> AsyncIterator[TestClient]:
    async def fail(request: web.Request) -> web.Response:
        raise raiser.error

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"got": await read_json(request)})

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    app = web.Application(client_max_size=LIMIT, middlewares=[json_errors(LIMIT)])
    app.router.add_get("/fail", fail)
    app.router.add_post("/echo", echo)
    app.router.add_get("/redirect", redirect)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def answer(client: TestClient, raiser: Raiser, error: BaseException) -> tuple[int, Any]:
    raiser.error = error
    async with client.get("/fail") as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("bad shots"), 400),
        (InvalidProgram("no main()"), 400),
        (InvalidArchive("not a zip"), 400),
        (CqasmError("unknown gate", line=3), 400),
        (Forbidden("not yours"), 403),
        (NotFound("no such job"), 404),
        (Conflict("already ended"), 409),
        (IllegalTransition("j", "Completed", "Running"), 409),
        (ProgramNameTaken("taken"), 409),
        (TooLarge("too big"), 413),
        (ArchiveTooLarge("archive too big"), 413),
        (DeviceRefused("no"), 500),
        (QrtError("odd"), 500),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
async def test_each_kind_of_error_answers_its_status_with_its_message(
    client, raiser, error, status
):
    assert await answer(client, raiser, error) == (status, {"detail": str(error), "field": None})


@pytest.mark.parametrize(
    "error",
    [Unavailable("the store is down"), StoreUnavailable("the store is down"),
     BusUnavailable("the store is down"), DeviceUnavailable("the store is down")],
    ids=lambda e: type(e).__name__,
)  # fmt: skip
async def test_unavailable_answers_503_saying_the_service_is_unavailable(client, raiser, error):
    assert await answer(client, raiser, error) == (
        503,
        {"detail": "service unavailable: the store is down", "field": None},
    )


async def test_an_error_about_a_field_names_it(client, raiser):
    error = InvalidInput("params.shots must be an int", field="params.shots")
    assert await answer(client, raiser, error) == (
        400,
        {"detail": "params.shots must be an int", "field": "params.shots"},
    )
    archive = ArchiveTooLarge("data: over the limit", field="data")
    assert await answer(client, raiser, archive) == (
        413,
        {"detail": "data: over the limit", "field": "data"},
    )


async def test_an_unexpected_error_answers_500_json(client, raiser):
    status, body = await answer(client, raiser, RuntimeError("a bug"))
    assert status == 500 and set(body) == {"detail", "field"}


async def test_an_unknown_route_and_method_answer_json(client):
    async with client.get("/nowhere") as response:
        assert response.status == 404
        assert await response.json() == {"detail": "Not Found", "field": None}
    async with client.put("/fail") as response:
        assert response.status == 405
        assert await response.json() == {"detail": "Method Not Allowed", "field": None}


async def test_a_redirect_is_not_turned_into_an_error(client):
    async with client.get("/redirect", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == "/elsewhere"


async def test_a_body_over_the_limit_answers_413_naming_the_limit(client):
    async with client.post("/echo", data=b"[" + b"1," * LIMIT + b"1]") as response:
        assert response.status == 413
        assert await response.json() == {
            "detail": f"request body is larger than the limit of {LIMIT} bytes",
            "field": None,
        }


async def test_a_json_body_is_read(client):
    async with client.post("/echo", data=b'{"a": [1, 2]}') as response:
        assert await response.json() == {"got": {"a": [1, 2]}}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "request body is empty; send a JSON object"),
        (b"{nope", "request body is not valid JSON: "),
        (b"\xff\xfe", "request body is not valid JSON: "),
    ],
)
async def test_a_body_that_is_not_json_answers_400_saying_why(client, body, detail):
    async with client.post("/echo", data=body) as response:
        assert response.status == 400
        assert (await response.json())["detail"].startswith(detail)


def test_parse_json_refuses_a_body_nested_too_deeply():
    with pytest.raises(InvalidInput, match=r"^request body is nested too deeply$"):
        parse_json(b"[" * 100_000 + b"]" * 100_000)
    assert parse_json(b"null") is None and parse_json(b'"x"') == "x"


class Shot(BaseModel):
    count: int = Field(gt=0)


class Order(BaseModel):
    name: str = Field(min_length=1)
    shots: list[Shot] = []


def refusal(body: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        validated(Order, body)
    return caught.value


def test_validated_gives_the_model():
    assert validated(Order, {"name": "n", "shots": [{"count": 2}]}) == Order(
        name="n", shots=[Shot(count=2)]
    )


def test_validated_names_the_first_field_at_fault():
    missing = refusal({})
    assert (missing.field, str(missing)) == ("name", "name: Field required")
    nested = refusal({"name": "n", "shots": [{"count": 1}, {"count": 0}]})
    assert nested.field == "shots.1.count"
    assert str(nested) == "shots.1.count: Input should be greater than 0"


def test_validated_names_no_field_when_the_body_itself_is_wrong():
    assert refusal({"name": ""}).field == "name"
    bare = refusal("text")
    assert (
        bare.field is None and str(bare) == "the request body must be a JSON object, not a string"
    )


def request(query: str) -> web.Request:
    return make_mocked_request("GET", f"/jobs?{query}")


def query_refusal(read: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        read()
    return caught.value


def test_int_query_reads_an_integer_in_range_or_the_default():
    assert int_query(request(""), "limit", 200, 1, 1000) == 200
    assert int_query(request("limit=1"), "limit", 200, 1, 1000) == 1
    assert int_query(request("limit=1000"), "limit", 200, 1, 1000) == 1000


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ("abc", "query parameter 'limit' must be an integer"),
        ("1.5", "query parameter 'limit' must be an integer"),
        ("", "query parameter 'limit' must be an integer"),
        ("0", "query parameter 'limit' must be between 1 and 1000"),
        ("1001", "query parameter 'limit' must be between 1 and 1000"),
    ],
)
def test_int_query_refuses_naming_the_parameter(raw, said):
    error = query_refusal(lambda: int_query(request(f"limit={raw}"), "limit", 200, 1, 1000))
    assert (str(error), error.field) == (said, "limit")


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("TRUE", True), ("False", False)])
def test_bool_query_reads_true_or_false(raw, value):
    assert bool_query(request(f"pending={raw}"), "pending") is value


def test_bool_query_is_none_when_absent_and_refuses_anything_else():
    assert bool_query(request(""), "pending") is None
    for raw in ("1", "yes", ""):
        error = query_refusal(lambda raw=raw: bool_query(request(f"pending={raw}"), "pending"))
        assert (str(error), error.field) == (
            "query parameter 'pending' must be true or false",
            "pending",
        )


def test_time_query_reads_iso_8601_in_utc_when_it_has_no_offset():
    assert time_query(request(""), "created_after") is None
    naive = time_query(request("created_after=2026-01-02T03:04:05"), "created_after")
    assert naive == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    offset = time_query(request("created_after=2026-01-02T03:04:05%2B02:00"), "created_after")
    assert offset == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert offset is not None and offset.utcoffset() == timedelta(hours=2)
    assert time_query(request("t=2026-01-02"), "t") == datetime(2026, 1, 2, tzinfo=UTC)


def test_time_query_refuses_naming_the_parameter():
    error = query_refusal(lambda: time_query(request("created_before=yesterday"), "created_before"))
    assert error.field == "created_before"
    assert str(error) == "query parameter 'created_before' must be an ISO 8601 time"


async def test_a_body_declared_over_the_limit_is_413_before_it_is_read(served):
    # The gateway of `served` takes bodies up to 1024 bytes; this one never sends the rest.
    request = (b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: 99999999999\r\n\r\n{}")  # fmt: skip
    answer = await exchange(served, request)
    assert (answer.status, answer.json()) == (413, {
        "detail": "request body is larger than the limit of 1024 bytes", "field": None,
    })  # fmt: skip


async def test_a_body_declared_over_the_limit_on_ibms_api_is_413_in_ibms_shape(served):
    request = (b"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Length: 99999999999\r\n\r\n{}")  # fmt: skip
    answer = await exchange(served, request)
    assert answer.status == 413
    assert answer.json()["errors"][0]["code"] == "payload_too_large"


async def test_a_body_declared_at_the_limit_is_read(served):
    job = b'{"programId": "noop"}'
    body = job + b" " * (1024 - len(job))  # JSON may end in white space
    request = (b"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Content-Length: 1024\r\n\r\n" + body)  # fmt: skip
    answer = await exchange(served, request)
    assert answer.status == 200 and answer.json()["id"]


async def test_a_coding_not_decoded_on_ibms_api_is_415_naming_the_header(served):
    request = (b"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Encoding: compress\r\n"
               b"Content-Length: 2\r\n\r\n{}")  # fmt: skip
    answer = await exchange(served, request)
    assert answer.status == 415
    error = answer.json()["errors"][0]
    assert error["code"] == "unsupported_media_type"
    assert error["target"] == {"type": "header", "name": "Content-Encoding"}
