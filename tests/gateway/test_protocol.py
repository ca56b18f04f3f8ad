"""The gateway's connections: what aiohttp refuses before any route runs is answered as JSON
naming the problem, and logged without an ERROR traceback (the client is at fault)."""

from __future__ import annotations

import gzip
import logging

import pytest

from qrt_gateway.protocol import MAX_HEADER_FIELD, MAX_HEADERS, MAX_REQUEST_LINE
from tests.support.raw_http import exchange

JOB = b'{"programId": "noop"}'


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert not any(r.exc_info for r in caplog.records)


def post(headers: str, body: bytes) -> bytes:
    head = f"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


async def test_a_body_in_brotli_is_415_naming_the_coding(served, caplog):
    answer = await exchange(served, post("Content-Encoding: br\r\n", b"\x1b\x00"))
    assert answer.status == 415
    body = answer.json()
    assert body["field"] == "Content-Encoding"
    assert body["detail"].startswith("request body's Content-Encoding is not supported (")
    assert "(br)" in body["detail"] and "install" not in body["detail"]
    no_errors_logged(caplog)
    assert any("request refused: 415" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("coding", ["compress", "gzip, gzip", "x-unknown"])
async def test_a_body_in_a_coding_not_decoded_is_415_naming_it(served, caplog, coding):
    answer = await exchange(served, post(f"Content-Encoding: {coding}\r\n", JOB))
    assert (answer.status, answer.json()) == (415, {
        "detail": f"request body's Content-Encoding {coding!r} is not supported; send the "
        "body uncompressed, or compressed with gzip or deflate",
        "field": "Content-Encoding",
    })  # fmt: skip
    no_errors_logged(caplog)


async def test_a_gzip_body_is_still_read(served):
    answer = await exchange(served, post("Content-Encoding: gzip\r\n", gzip.compress(JOB)))
    assert answer.status == 200 and answer.json()["id"]


async def test_a_body_that_is_not_gzip_as_declared_is_400_and_logs_no_error(served, caplog):
    request = post("Content-Encoding: gzip\r\n", b"not gzip at all" * 10)
    # The server drains what is left of the body after answering: wait for it to end.
    answer = await exchange(served, request, until_closed=True)
    assert answer.status == 400 and answer.json()["field"] == "Content-Encoding"
    no_errors_logged(caplog)


async def test_a_request_target_over_the_limit_is_414(served, caplog):
    path = "/jobs/" + "x" * 10_000
    answer = await exchange(served, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    assert (answer.status, answer.json()) == (414, {
        "detail": f"request target is longer than {MAX_REQUEST_LINE} bytes", "field": None,
    })  # fmt: skip
    no_errors_logged(caplog)


async def test_a_request_target_at_the_limit_is_read(served):
    path = "/jobs/" + "x" * (MAX_REQUEST_LINE - len("/jobs/"))
    answer = await exchange(served, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    assert answer.status == 404 and answer.json()["detail"].endswith("not found")


@pytest.mark.parametrize(
    "header",
    [f"X-Long: {'v' * 10_000}", f"X-{'n' * 10_000}: v"],
    ids=["value", "name"],
)
async def test_a_header_over_the_limit_is_431(served, caplog, header):
    answer = await exchange(
        served, f"GET /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}\r\n\r\n".encode()
    )
    assert (answer.status, answer.json()) == (431, {
        "detail": f"a request header is longer than {MAX_HEADER_FIELD} bytes", "field": None,
    })  # fmt: skip
    no_errors_logged(caplog)


async def test_too_many_headers_is_431(served, caplog):
    headers = "".join(f"X-H{i}: v\r\n" for i in range(MAX_HEADERS + 1))
    answer = await exchange(
        served, f"GET /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()
    )
    assert (answer.status, answer.json()) == (431, {
        "detail": f"request has more than {MAX_HEADERS} headers", "field": None,
    })  # fmt: skip
    no_errors_logged(caplog)


async def test_a_request_that_is_no_http_is_400_json(served, caplog):
    answer = await exchange(served, b"GET /jobs HTTP/1.1\r\nHost qrt\r\n\r\n")
    assert answer.status == 400
    assert answer.json()["detail"].startswith("malformed HTTP request: ")
    no_errors_logged(caplog)
