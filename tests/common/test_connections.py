"""However many clients connect and then say nothing, a qrt process keeps serving: idle and
unfinished connections close, and beyond its connection limit new ones are closed at once.
(Each case runs in a process of its own: the count of connections is the process's.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

SERVER = """
import asyncio, json, socket, time
from aiohttp import web
from qrt_common import connections

connections.KEEPALIVE_SECONDS = {keepalive}
connections.connection_limit = lambda: {limit}


async def ping(request):
    return web.Response(text="pong")


async def slow(request):
    await asyncio.sleep(3)
    return web.Response(text="slow")


def ask(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /ping HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
        return sock.recv(4096).split(b"\\r\\n", 1)[0].decode()


def closed(sock, seconds):
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def main():
    app = web.Application()
    app.router.add_get("/ping", ping)
    app.router.add_get("/slow", slow)
    runner = {runner}(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    found = await asyncio.to_thread(check, port)
    await runner.cleanup()
    print(json.dumps(found))


def check(port):
{check}


asyncio.run(main())
"""

RUNNERS = {
    "ops": "connections.CappedRunner",
    "gateway": "__import__('qrt_gateway.protocol').protocol.GatewayRunner",
}


def run(check: str, *, limit: int = 1000, keepalive: float = 75.0) -> dict:
    found = {}
    for name, runner in RUNNERS.items():
        script = SERVER.format(
            keepalive=keepalive, limit=limit, runner=runner, check=textwrap.indent(check, "    ")
        )
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        found[name] = json.loads(done.stdout.splitlines()[-1])
    return found


def test_at_the_limit_a_new_connection_closes_the_oldest_idle_one():
    """Silent connections cannot keep out a client that asks something: at the limit the new
    connection closes the one idle the longest (a request head never finished counts as idle),
    and a connection busy with a request is never closed for it."""
    check = """
slow = socket.create_connection(("127.0.0.1", port))
slow.sendall(b"GET /slow HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")  # in progress for 3 s
time.sleep(0.3)
silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
time.sleep(0.3)
served = ask(port)  # a fourth connection: the oldest silent one makes way
first_closed, second_open = closed(silent[0], 5), not closed(silent[1], 0.3)
slow_answer = slow.recv(4096).split(b"\\r\\n", 1)[0].decode()
return {"served": served, "first_closed": first_closed, "second_open": second_open,
        "slow_answer": slow_answer}
"""
    for found in run(check, limit=3).values():
        assert found == {
            "served": "HTTP/1.1 200 OK",
            "first_closed": True,
            "second_open": True,
            "slow_answer": "HTTP/1.1 200 OK",
        }


def test_when_every_connection_is_busy_a_new_one_is_closed_at_once():
    check = """
busy = []
for _ in range(2):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /slow HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
    busy.append(sock)
time.sleep(0.5)
extra = socket.create_connection(("127.0.0.1", port))
refused = closed(extra, 2.5)
answers = [sock.recv(4096).split(b"\\r\\n", 1)[0].decode() for sock in busy]
return {"refused": refused, "answers": answers, "served_after": ask(port)}
"""
    for found in run(check, limit=2).values():
        assert found == {
            "refused": True,
            "answers": ["HTTP/1.1 200 OK"] * 2,
            "served_after": "HTTP/1.1 200 OK",
        }


def test_a_connection_that_never_finishes_its_request_is_closed():
    check = """
silent = socket.create_connection(("127.0.0.1", port))
slow = socket.create_connection(("127.0.0.1", port))
slow.sendall(b"GET /ping HTTP/1.1\\r\\nHost: x\\r\\n")  # never the blank line
started = time.monotonic()
gone = [closed(silent, 20), closed(slow, 20)]
return {"gone": gone, "within": time.monotonic() - started < 15, "served": ask(port)}
"""
    for found in run(check, keepalive=1.0).values():
        assert found == {"gone": [True, True], "within": True, "served": "HTTP/1.1 200 OK"}
