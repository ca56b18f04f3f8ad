"""A client that hangs up in the middle of a large answer: the gateway counts the answer as
given (200), logs no error (any user could otherwise fill the log with tracebacks), and goes
on serving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sqlite3
import struct
from pathlib import Path

import aiohttp
import pytest

from qrt_common.jobs import Job, JobStatus
from qrt_common.metrics import HTTP_REQUESTS
from qrt_common.store.sqlite import SQLiteStore
from tests.support.waiting import eventually

PIECES = 1500
PIECE = "x" * 8191 + "\n"
"""12 MB of log and as many interim results: far more than the sockets' buffers hold."""
CRN = "crn:v1:qrt:private:quantum-computing:local:a/qrt:ibm-q/open/main::"


async def huge_job(database: Path) -> str:
    """An ended planqk-starter job with 12 MB of log and of interim results, in the store at
    `database` (the served gateway's)."""
    store = SQLiteStore(database)
    await store.open()
    try:
        job = Job(id="huge", program_id="planqk-starter", backend="aer_simulator",
                  params="{}", max_execution_time=60, status=JobStatus.COMPLETED)  # fmt: skip
        await store.add_job(job)
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.executemany(
            "INSERT INTO logs (job_id, attempt, seq, text, written) VALUES (?, 1, ?, ?, 0)",
            ((job.id, n, PIECE) for n in range(PIECES)),
        )
        db.executemany(
            "INSERT INTO interims (job_id, attempt, idx, data) VALUES (?, 1, ?, ?)",
            ((job.id, n, f'{{"pad": "{PIECE[:-1]}"}}') for n in range(PIECES)),
        )
    return job.id


async def hang_up_while_reading(host: str, port: int, path: str) -> None:
    """Ask for `path`, read the first bytes of the answer, then reset the connection."""
    sock = socket.socket()
    # A small window, set before connecting: the answer cannot all fit in the sockets' buffers.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock)
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nService-CRN: {CRN}\r\n\r\n"
    writer.write(request.encode())
    await writer.drain()
    first = await reader.read(4096)
    assert first.startswith(b"HTTP/1.1 200"), first[:200]
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    writer.close()


def answers(route: str) -> dict[str, float]:
    """The gateway's count of answers on `route` by status (qrt_http_requests_total)."""
    return {
        status: HTTP_REQUESTS.labels(route, "GET", status)._value.get() for status in ("200", "500")
    }


@pytest.mark.parametrize("route", [
    "/jobs/{job_id}/logs", "/services/{program_id}/{execution_id}/log",
    "/services/{program_id}/{execution_id}/interim-results",
])  # fmt: skip
async def test_a_client_hanging_up_mid_download_is_no_error(
    served: tuple[str, int], tmp_path: Path, caplog: pytest.LogCaptureFixture, route: str
):
    host, port = served
    job_id = await huge_job(tmp_path / "qrt.db")  # the served gateway's store
    caplog.set_level(logging.INFO)
    before = answers(route)
    path = route.format(job_id=job_id, program_id="planqk-starter", execution_id=job_id)
    await hang_up_while_reading(host, port, path)

    def ended() -> float:
        return sum(answers(route).values()) - sum(before.values())

    # The gateway is done with the answer once it counted it, however it ended.
    await eventually(ended, "the gateway is done with the answer", until=lambda n: n == 1)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert answers(route)["200"] - before["200"] == 1, [r.getMessage() for r in errors]
    assert errors == [], [(r.name, r.getMessage()) for r in errors]
    # It goes on serving, the same route included.
    url = f"http://{host}:{port}/jobs/{job_id}"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200


async def test_a_client_hanging_up_mid_upload_is_no_error(
    served: tuple[str, int], caplog: pytest.LogCaptureFixture
):
    host, port = served
    caplog.set_level(logging.INFO)
    _, writer = await asyncio.open_connection(host, port)
    head = f"POST /jobs HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    writer.write(f"{head}Content-Length: 1000\r\n\r\n".encode() + b'{"programId": "no')
    await writer.drain()
    sock = writer.get_extra_info("socket")
    await asyncio.sleep(0.2)  # the gateway is reading the body
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    writer.close()

    def hung_up() -> list[str]:
        return [r.getMessage() for r in caplog.records if "closed the connection" in r.getMessage()]

    await eventually(hung_up, "the gateway saw the client go", until=bool)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [(r.name, r.getMessage()) for r in errors]
    async with aiohttp.ClientSession() as http, http.get(f"http://{host}:{port}/jobs") as response:
        assert response.status == 200
