"""The warm pool and its zygote: real processes, including the zygote dying under it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import pytest

from qrt_executor import landlock
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


async def test_a_fork_given_up_before_the_zygote_answers_harms_no_running_job():
    """A fork cancelled while the zygote forks (a job cancelled, or the pool closed, while it
    waited for a process): the late answer ends the unwanted process, and the zygote and the
    job processes in use go on (it used to end the channel's reader, and every job with it)."""
    pool = WarmPool(size=0)
    await pool.start()
    try:
        running = await pool.acquire()
        zygote = pool._zygote
        forking = asyncio.create_task(zygote.fork())
        await asyncio.sleep(0)  # the request is on its way
        forking.cancel()
        # Answers come in order: once this fork is answered, the cancelled one was too.
        after = await pool.acquire()
        assert pool._zygote is zygote and zygote.alive
        assert not running.exited.done() and not after.exited.done()
        unwanted = [pid for pid in zygote._exits if pid not in (running.pid, after.pid)]
        assert len(unwanted) <= 1
        for pid in unwanted:  # its exit, if the zygote reported it yet, is a kill
            exited = zygote._exits[pid]
            assert await asyncio.wait_for(exited, 5) == -signal.SIGKILL
        for proc in (running, after):
            proc.control.close()
            assert await asyncio.wait_for(proc.exited, 5) == 0
            proc.close()
    finally:
        await pool.close()


async def test_answers_the_zygote_sends_together_each_reach_their_fork():
    """Forks asked for at once are answered back to back, often several to one read of the
    channel: each fork gets its own process, and each exit reaches its process."""
    pool = WarmPool(size=0)
    await pool.start()
    try:
        zygote = pool._zygote
        procs = await asyncio.wait_for(asyncio.gather(*(zygote.fork() for _ in range(6))), 60)
        assert len({proc.pid for proc in procs}) == 6
        for proc in procs:
            proc.control.close()
        codes = await asyncio.wait_for(asyncio.gather(*(proc.exited for proc in procs)), 60)
        assert codes == [0] * 6 and zygote.alive
        for proc in procs:
            proc.close()
    finally:
        await pool.close()


def _fds(pid: int) -> list[str]:
    """What the open file descriptors of process `pid` point to."""
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            found.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return found


@pytest.mark.skipif(not landlock.fs_access(), reason="needs Landlock's file rules")
async def test_a_waiting_process_fills_its_landlock_ruleset_before_its_job_comes():
    """The system's ~220 rules go into the job process's ruleset while it waits (so its job
    does not wait for them), and the paths the zygote opened for them are closed by then."""
    pool = WarmPool(size=0)
    await pool.start()
    try:
        proc = await pool.acquire()
        fds = await eventually(
            lambda: _fds(proc.pid),
            "the waiting process fills its ruleset",
            until=lambda fds: "anon_inode:[landlock-ruleset]" in fds,
        )
        # Its three sockets, stdin, the ruleset: none of the zygote's O_PATH fds of the rules.
        assert len(fds) < 10, fds
        proc.control.close()
        assert await asyncio.wait_for(proc.exited, 5) == 0
        proc.close()
    finally:
        await pool.close()
