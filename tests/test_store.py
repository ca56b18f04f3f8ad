"""The contract every JobStore meets; each implementation runs the same tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from qrt_common.jobs import Job, JobStatus, transition
from qrt_common.sqlite_store import SQLiteStore
from qrt_common.store import JobQuery, JobStore

Reopen = Callable[[], Awaitable[JobStore]]


@pytest.fixture(params=["sqlite"])
async def stores(request, tmp_path: Path) -> AsyncIterator[tuple[JobStore, Reopen]]:
    """A fresh store, and a way to close it and open the same data again (a restart)."""
    opened: list[JobStore] = []

    async def open_one() -> JobStore:
        store = SQLiteStore(tmp_path / "qrt.db")
        await store.open()
        opened.append(store)
        return store

    async def reopen() -> JobStore:
        await opened[-1].close()
        return await open_one()

    yield await open_one(), reopen
    await opened[-1].close()


@pytest.fixture
async def store(stores: tuple[JobStore, Reopen]) -> JobStore:
    return stores[0]


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_job(n: int, **fields) -> Job:
    values = dict(id=f"job-{n:03d}", program_id="prog", backend="aer_simulator", params="{}",
                  max_execution_time=60, created=T0 + timedelta(seconds=n))  # fmt: skip
    values.update(fields)
    return Job(**values)  # type: ignore[arg-type]


async def test_add_get_and_missing(store: JobStore):
    job = make_job(1, tags=("a", "b"), params='{"x": [1, 2]}')
    await store.add_job(job)
    assert await store.get_job(job.id) == job
    assert await store.get_job("nope") is None


async def test_list_newest_first_with_total_and_pages(store: JobStore):
    for n in range(25):
        await store.add_job(make_job(n))
    page, total = await store.list_jobs(JobQuery(limit=10, offset=10))
    assert total == 25
    assert [j.id for j in page] == [f"job-{n:03d}" for n in range(14, 4, -1)]
    empty, total = await store.list_jobs(JobQuery(limit=10, offset=100))
    assert (empty, total) == ([], 25)


async def test_list_filters(store: JobStore):
    await store.add_job(make_job(1, program_id="a", backend="b1", hub="h1", tags=("x",)))
    await store.add_job(make_job(2, program_id="b", backend="b2", hub="h2", tags=("x", "y")))
    await store.add_job(make_job(3, program_id="a", backend="b2", project="p9"))
    await store.replace_job(transition(make_job(3, program_id="a", backend="b2", project="p9"),
                                       JobStatus.RUNNING), expected=JobStatus.QUEUED)  # fmt: skip

    async def ids(**query) -> list[str]:
        jobs, total = await store.list_jobs(JobQuery(**query))
        assert total == len(jobs)
        return sorted(j.id[-1] for j in jobs)

    assert await ids(program_id="a") == ["1", "3"]
    assert await ids(backend="b2") == ["2", "3"]
    assert await ids(hub="h2") == ["2"]
    assert await ids(project="p9") == ["3"]
    assert await ids(tags=["x"]) == ["1", "2"]
    assert await ids(tags=["x", "y"]) == ["2"]
    assert await ids(statuses=[JobStatus.RUNNING]) == ["3"]
    assert await ids(statuses=[JobStatus.QUEUED, JobStatus.RUNNING]) == ["1", "2", "3"]
    assert await ids(program_id="a", statuses=[JobStatus.QUEUED]) == ["1"]


async def test_replace_is_compare_and_set(store: JobStore):
    job = make_job(1)
    await store.add_job(job)
    running = transition(job, JobStatus.RUNNING)
    assert await store.replace_job(running, expected=JobStatus.QUEUED)
    assert not await store.replace_job(transition(job, JobStatus.CANCELLED),
                                       expected=JobStatus.QUEUED)  # fmt: skip
    assert (await store.get_job(job.id)) == running
    assert not await store.replace_job(make_job(2), expected=JobStatus.QUEUED)


async def test_concurrent_status_changes_have_one_winner(store: JobStore):
    job = make_job(1)
    await store.add_job(job)
    running = transition(job, JobStatus.RUNNING)
    await store.replace_job(running, expected=JobStatus.QUEUED)
    endings = [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED] * 10
    outcomes = await asyncio.gather(
        *(store.replace_job(transition(running, s), expected=JobStatus.RUNNING) for s in endings)
    )
    assert outcomes.count(True) == 1
    winner = endings[outcomes.index(True)]
    assert (await store.get_job(job.id)).status is winner  # type: ignore[union-attr]


async def test_logs_are_ordered_and_idempotent(store: JobStore):
    await store.add_job(make_job(1))
    assert await store.append_log("job-001", 1, 1, "b\n")
    assert await store.append_log("job-001", 1, 0, "a\n")
    assert not await store.append_log("job-001", 1, 0, "a again\n")
    assert await store.append_log("job-001", 2, 0, "second attempt\n")
    assert await store.read_log("job-001") == "a\nb\nsecond attempt\n"
    assert [(c.attempt, c.seq) for c in await store.log_chunks("job-001")] == [
        (1, 0), (1, 1), (2, 0),
    ]  # fmt: skip
    assert await store.read_log("unknown") == ""


async def test_large_logs_and_results(store: JobStore):
    await store.add_job(make_job(1))
    chunk = "x" * 65_535 + "\n"
    for seq in range(64):  # 4 MiB of log
        await store.append_log("job-001", 1, seq, chunk)
    assert len(await store.read_log("job-001")) == 64 * 65_536
    big = '"' + "y" * (20 * 1024 * 1024) + '"'
    assert await store.set_result("job-001", big)
    assert await store.get_result("job-001") == big


async def test_interims_are_ordered_and_idempotent(store: JobStore):
    await store.add_job(make_job(1))
    for index in (1, 0, 1):
        await store.add_interim("job-001", 1, index, f'"i{index}"')
    interims = await store.list_interims("job-001")
    assert [(i.index, i.data) for i in interims] == [(0, '"i0"'), (1, '"i1"')]


async def test_first_result_wins(store: JobStore):
    await store.add_job(make_job(1))
    assert await store.get_result("job-001") is None
    assert await store.set_result("job-001", '"first"')
    assert not await store.set_result("job-001", '"second"')
    assert await store.get_result("job-001") == '"first"'


async def test_delete_removes_everything(store: JobStore):
    await store.add_job(make_job(1))
    await store.add_job(make_job(2))
    await store.append_log("job-001", 1, 0, "log\n")
    await store.add_interim("job-001", 1, 0, "1")
    await store.set_result("job-001", "2")
    assert await store.delete_job("job-001")
    assert not await store.delete_job("job-001")
    assert await store.get_job("job-001") is None
    assert (await store.read_log("job-001"), await store.list_interims("job-001")) == ("", [])
    assert await store.get_result("job-001") is None
    assert await store.get_job("job-002") is not None


async def test_everything_survives_a_restart(stores: tuple[JobStore, Reopen]):
    store, reopen = stores
    job = transition(make_job(1), JobStatus.RUNNING)
    await store.add_job(make_job(1))
    await store.replace_job(job, expected=JobStatus.QUEUED)
    await store.append_log("job-001", 1, 0, "log\n")
    await store.add_interim("job-001", 1, 0, "1")
    await store.set_result("job-001", "2")
    store = await reopen()
    assert await store.get_job("job-001") == job
    assert await store.read_log("job-001") == "log\n"
    assert [i.data for i in await store.list_interims("job-001")] == ["1"]
    assert await store.get_result("job-001") == "2"


async def test_two_processes_share_the_sqlite_file(tmp_path: Path):
    """The gateway and the scheduler write the same file from two processes."""
    import sys

    writer = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from qrt_common.jobs import Job, JobStatus, transition\n"
        "from qrt_common.sqlite_store import SQLiteStore\n"
        "async def main():\n"
        "    store = SQLiteStore(Path(sys.argv[1])); await store.open()\n"
        "    for i in range(300):\n"
        "        job = Job(id=f'{sys.argv[2]}-{i}', program_id='p', backend='b', params='{}',\n"
        "                  max_execution_time=5)\n"
        "        await store.add_job(job)\n"
        "        await store.get_job(job.id)\n"
        "        await store.replace_job(transition(job, JobStatus.RUNNING), expected=JobStatus.QUEUED)\n"
        "        await store.append_log(job.id, 1, 0, 'x')\n"
        "    await store.close()\n"
        "asyncio.run(main())\n"
    )
    db = tmp_path / "shared.db"
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", writer, str(db), name, stderr=asyncio.subprocess.PIPE
        )
        for name in "abc"
    ]
    for process in processes:
        _, stderr = await process.communicate()
        assert process.returncode == 0, stderr.decode()
    store = SQLiteStore(db)
    await store.open()
    _, total = await store.list_jobs(JobQuery(statuses=[JobStatus.RUNNING]))
    await store.close()
    assert total == 900
