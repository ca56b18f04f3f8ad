"""What checking credentials costs a request: `Authenticator.principal` on its own (an API key,
an access token), and a whole `GET /backends` through the gateway with keys off and on, over
loopback, on the embedded SQLite store.

    python bench/auth.py [--requests 2000] [--quick]

The key's user is a member of 3 instances (no admin), so the memberships are read too. The
competitors run in turn, request by request (key, token, key, token ...; a gateway with keys
off, one with keys on, ...; both gateways up at once on free ports), so all see the same load.
Prints medians with their spread (p25-p75, p99) in microseconds and the load average; asserts
nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import load, summary  # noqa: E402
from qrt_common.account_admin import AccountAdmin  # noqa: E402
from qrt_common.accounts import Role  # noqa: E402
from qrt_common.bus.memory import InMemoryBus  # noqa: E402
from qrt_common.registry import ProgramRegistry  # noqa: E402
from qrt_common.settings import Settings  # noqa: E402
from qrt_common.store.sqlite import SQLiteStore  # noqa: E402
from qrt_gateway.app import create_app  # noqa: E402
from qrt_gateway.auth import Authenticator  # noqa: E402
from qrt_gateway.context import Gateway  # noqa: E402
from qrt_gateway.streams import StreamHub  # noqa: E402

PEPPER = b"bench pepper"


async def interleaved(
    actions: list[Callable[[], Awaitable[object]]], n: int, warmup: int = 100
) -> list[list[float]]:
    """Seconds of each of `actions`, awaited in turn (A B A B ...), `n` timed rounds after
    `warmup` untimed ones."""
    times: list[list[float]] = [[] for _ in actions]
    warmup = min(warmup, n)
    for round_ in range(warmup + n):
        for action, kept in zip(actions, times, strict=True):
            started = time.perf_counter()
            await action()
            if round_ >= warmup:
                kept.append(time.perf_counter() - started)
    return times


async def serve(store: SQLiteStore, auth: bool) -> tuple[web.AppRunner, str]:
    settings = Settings(auth=auth, key_pepper=PEPPER.decode(), port=0)
    gateway = Gateway(
        settings, store, InMemoryBus(), ProgramRegistry(ROOT / "programs"), StreamHub()
    )
    runner = web.AppRunner(create_app(gateway))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def main(requests: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        store = SQLiteStore(Path(scratch) / "qrt.db")
        await store.open()
        admin = AccountAdmin(store, PEPPER)
        await admin.add_user("bench")
        for n in range(3):
            await admin.add_instance(f"hub/group/p{n}")
            await admin.grant(f"hub/group/p{n}", "bench", Role.MEMBER)
        key, record = await admin.create_key("bench")
        checker = Authenticator(store, PEPPER, 3600)
        token, _, _ = checker.issue_token(record)
        by_key, by_token = await interleaved(
            [lambda: checker.principal(f"Bearer {key}"),
             lambda: checker.principal(f"Bearer {token}")],
            requests,
        )  # fmt: skip
        print(summary("Authenticator.principal, API key", by_key, "us"))
        print(summary("Authenticator.principal, access token", by_token, "us"))
        off, off_url = await serve(store, auth=False)
        on, on_url = await serve(store, auth=True)
        headers = {"Authorization": f"Bearer {key}"}
        async with (
            aiohttp.ClientSession(off_url) as plain,
            aiohttp.ClientSession(on_url, headers=headers) as keyed,
        ):

            async def get(http: aiohttp.ClientSession) -> None:
                async with http.get("/backends") as response:
                    assert response.status == 200, await response.text()
                    await response.read()

            keys_off, keys_on = await interleaved(
                [lambda: get(plain), lambda: get(keyed)], requests
            )
        print(summary("GET /backends, keys off", keys_off, "us"))
        print(summary("GET /backends, keys on", keys_on, "us"))
        await off.cleanup()
        await on.cleanup()
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="rounds of each comparison")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: does it still run")
    args = parser.parse_args()
    print(f"{load()} at the start")
    asyncio.run(main(20 if args.quick else args.requests))
    print(f"{load()} at the end")
