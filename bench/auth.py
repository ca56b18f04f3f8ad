"""What checking credentials costs a request: `Authenticator.principal` on its own (an API key,
an access token), and a whole `GET /backends` through the gateway with keys off and on, over
loopback, on the embedded SQLite store.

    python bench/auth.py [--requests 2000]

The key's user is a member of 3 instances (no admin), so the memberships are read too. Prints
p50/p99 in microseconds; asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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


def quantiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100)
    return f"p50 {cuts[49] * 1e6:7.1f} us   p99 {cuts[98] * 1e6:7.1f} us"


async def timed(work, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await work()
        samples.append(time.perf_counter() - started)
    return samples


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
        for name, credential in (("API key", key), ("access token", token)):
            header = f"Bearer {credential}"
            samples = await timed(lambda h=header: checker.principal(h), requests)
            print(f"Authenticator.principal, {name:12}  {quantiles(samples)}")
        for auth in (False, True, False, True):
            runner, url = await serve(store, auth)
            headers = {"Authorization": f"Bearer {key}"} if auth else {}
            async with aiohttp.ClientSession(url, headers=headers) as http:

                async def get() -> None:
                    async with http.get("/backends") as response:
                        assert response.status == 200, await response.text()
                        await response.read()

                await timed(get, 100)  # warm up
                samples = await timed(get, requests)
            print(f"GET /backends, keys {'on ' if auth else 'off'}          {quantiles(samples)}")
            await runner.cleanup()
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    asyncio.run(main(parser.parse_args().requests))
