"""The warm pool and its zygote: real processes, including the zygote dying under it."""

from __future__ import annotations

import asyncio
import os
import signal

from qrt_executor.pool import WarmPool
from tests.support.waiting import eventually


async def idle(pool: WarmPool, count: int) -> None:
    await eventually(lambda: pool.idle, f"{count} processes wait", until=lambda n: n == count)


async def test_pool_keeps_processes_waiting_and_hands_out_each_once():
    pool = WarmPool(size=2)
    await pool.start()
    try:
        await idle(pool, 2)
        first, second = await pool.acquire(), await pool.acquire()
        assert first.pid != second.pid
        await idle(pool, 2)
        for proc in (first, second):
            proc.control.close()  # no job: the process exits quietly
            assert await asyncio.wait_for(proc.exited, 5) == 0
            proc.close()
    finally:
        await pool.close()


async def test_a_killed_process_reports_its_signal():
    pool = WarmPool(size=0)
    await pool.start()
    try:
        proc = await pool.acquire()
        proc.kill()
        assert await asyncio.wait_for(proc.exited, 5) == -signal.SIGKILL
        proc.close()
    finally:
        await pool.close()


async def test_pool_recovers_when_the_zygote_dies():
    pool = WarmPool(size=1)
    await pool.start()
    try:
        await idle(pool, 1)
        waiting = await pool.acquire()
        zygote = pool._zygote._process
        assert zygote is not None
        os.kill(zygote.pid, signal.SIGKILL)
        # The orphan is ended and its exit marked unknown, not left to run forever.
        assert await asyncio.wait_for(waiting.exited, 5) is None
        waiting.close()
        fresh = await pool.acquire()
        assert pool._zygote._process is not zygote
        fresh.control.close()
        assert await asyncio.wait_for(fresh.exited, 5) == 0
        fresh.close()
    finally:
        await pool.close()


async def test_close_ends_waiting_processes():
    pool = WarmPool(size=2)
    await pool.start()
    await idle(pool, 2)
    pids = [proc.pid for proc in pool._idle]
    await pool.close()
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"process {pid} outlived the pool")
