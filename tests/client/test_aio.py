"""The asynchronous client's verbs against a running `qrt dev`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qrt_client import (
    AsyncClient,
    Conflict,
    Interim,
    InvalidInput,
    JobCancelled,
    JobFailed,
    Log,
    NotFound,
    Result,
    TransportError,
    WaitTimeout,
)
from tests.support.dev import DevServer
from tests.support.mesh import free_port
from tests.support.waiting import eventually


@pytest.fixture
async def aclient(qrt_dev: DevServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(qrt_dev.url) as opened:
        yield opened


async def test_run_wait_result_and_logs(aclient: AsyncClient):
    job = await aclient.run("hello-quantum", {"greeting": "hi async"})
    assert (await job.wait(timeout=60)).status == "Completed"
    counts = await job.result()
    assert sum(counts.values()) == 1024
    assert await job.status() == "Completed"
    assert "hi async" in await job.logs()
    assert "hi async" in await job.logs(attempt=1)


async def test_stream_gives_interim_results_the_log_and_the_result_last(aclient: AsyncClient):
    job = await aclient.run("sleeper", {"seconds": 1.5, "ticks": 3})
    events = [event async for event in job.stream()]
    assert [e for e in events if not isinstance(e, Log)] == [
        Interim({"tick": 0}), Interim({"tick": 1}), Interim({"tick": 2}), Result("woke up"),
    ]  # fmt: skip
    assert "tick 1\n" in "".join(e.text for e in events if isinstance(e, Log))


async def test_interim_results_arrive_while_the_job_runs(aclient: AsyncClient):
    job = await aclient.run("sleeper", {"seconds": 600, "ticks": 2})
    stream = job.stream(logs=False)
    try:
        assert await anext(stream) == Interim({"tick": 0})
        assert await job.status() == "Running"
    finally:
        await stream.aclose()
        await job.cancel()
    with pytest.raises(JobCancelled):
        await job.result(timeout=60)


async def test_a_cancelled_job_says_so(aclient: AsyncClient):
    job = await aclient.run("sleeper", {"seconds": 600})
    await eventually(job.status, f"{job.id} runs", until=lambda s: s == "Running", timeout=60)
    with pytest.raises(WaitTimeout):
        await job.wait(timeout=0.3)
    await job.cancel()
    with pytest.raises(JobCancelled) as raised:
        await job.result(timeout=60)
    assert raised.value.status == "Cancelled"
    with pytest.raises(Conflict):
        await job.cancel()


async def test_a_failed_job_says_how_it_ended(aclient: AsyncClient):
    job = await aclient.run("failing")
    with pytest.raises(JobFailed) as raised:
        await job.result(timeout=60)
    assert raised.value.status == "Failed" and "boom" in (raised.value.reason or "")
    assert "ValueError: boom" in await job.logs()
    await job.delete()
    with pytest.raises(NotFound):
        await job.info()


async def test_a_job_that_ran_too_long_failed(aclient: AsyncClient):
    job = await aclient.run("sleeper", {"seconds": 600}, max_execution_time=1)
    with pytest.raises(JobFailed) as raised:
        await job.result(timeout=60)
    assert raised.value.status == "Cancelled - Ran too long"


async def test_errors_carry_the_servers_status_detail_and_field(aclient: AsyncClient):
    with pytest.raises(NotFound) as raised:
        await aclient.job("no-such-job").status()
    assert raised.value.status == 404 and "no-such-job" in raised.value.detail
    with pytest.raises(NotFound):
        [e async for e in aclient.job("no-such-job").stream()]
    with pytest.raises(NotFound) as raised:
        await aclient.run("no-such-program")
    assert raised.value.field == "programId"
    with pytest.raises(InvalidInput) as invalid:
        await aclient.run("hello-quantum", {"greeting": 3})
    assert invalid.value.field == "params.greeting"
    async with AsyncClient(f"http://127.0.0.1:{free_port()}", retries=0) as gone:
        with pytest.raises(TransportError):
            await gone.backends()


async def test_jobs_backends_and_programs(aclient: AsyncClient, tmp_path: Path):
    tag = f"t-{uuid.uuid4()}"
    jobs = await asyncio.gather(*(aclient.run("noop", tags=[tag]) for _ in range(3)))
    for job in jobs:
        await job.wait(60)
    page = await aclient.jobs(tags=[tag], status=["Completed"], program="noop")
    assert page.count == 3 and {j.id for j in page.jobs} == {j.id for j in jobs}
    assert "aer_simulator" in {b.name for b in await aclient.backends()}
    assert (await aclient.backend("aer_simulator")).simulator is True
    assert "sample-program" in {p.id for p in await aclient.programs.list()}
    (tmp_path / "program.py").write_text("def main(backend, user_messenger):\n    return 'up'\n")
    program = await aclient.programs.upload(tmp_path, name=f"up-{tag[2:10]}", max_execution_time=30)
    assert program.max_execution_time == 30
    assert await (await aclient.run(program.id)).result(timeout=60) == "up"
    assert (await aclient.programs.update(program.id, description="d")).description == "d"
    await aclient.programs.delete(program.id)
    with pytest.raises(NotFound):
        await aclient.programs.show(program.id)
