"""The contract every JobStore meets; each implementation runs the same tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mongomock_motor import AsyncMongoMockClient
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect, WriteError

from qrt_common.accounts import ApiKey, Instance, Membership, Role, User
from qrt_common.archives import ProgramArchive, archive_digest
from qrt_common.errors import AccountExists, ProgramNameTaken, StoreUnavailable
from qrt_common.jobs import Job, JobStatus, transition
from qrt_common.programs import Program, ProgramKind
from qrt_common.retry import Backoff
from qrt_common.store import sqlite as sqlite_store
from qrt_common.store.base import (
    FIRST_PAGE,
    PAGE_BYTES,
    AddInterim,
    AppendLog,
    JobQuery,
    JobStep,
    JobStore,
    ReplaceJob,
    SetResult,
)
from qrt_common.store.mongo import MongoStore
from qrt_common.store.sqlite import SCHEMA_VERSION as SQLITE_SCHEMA
from qrt_common.store.sqlite import SQLiteStore
from qrt_common.timeline import Stage, StageRecord
from tests.support.disks import small_disk
from tests.support.waiting import eventually

Reopen = Callable[[], Awaitable[JobStore]]

MONGODB_URL = os.environ.get("QRT_TEST_MONGODB_URL")
"""A real MongoDB server to run the contract against as well (each test uses its own database)."""

STORES = [
    "sqlite",
    "mongomock",
    pytest.param(
        "mongodb",
        marks=pytest.mark.skipif(not MONGODB_URL, reason="QRT_TEST_MONGODB_URL is not set"),
    ),
]

SMALL_INLINE_LIMIT = 64 * 1024
"""The Mongo stores under test keep results inline only up to this, so GridFS gets exercised."""


def real_mongodb_database_url() -> str:
    assert MONGODB_URL
    base, _, query = MONGODB_URL.partition("?")
    return f"{base.rstrip('/')}/qrt_test_{secrets.token_hex(4)}" + (f"?{query}" if query else "")


@pytest.fixture(params=STORES)
async def stores(request, tmp_path: Path) -> AsyncIterator[tuple[JobStore, Reopen]]:
    """A fresh store, and a way to close it and open the same data again (a restart)."""
    opened: list[JobStore] = []
    kind = request.param
    mock_server: Any = AsyncMongoMockClient(tz_aware=True)
    mongodb_url = real_mongodb_database_url() if kind == "mongodb" else ""

    def make() -> JobStore:
        if kind == "sqlite":
            return SQLiteStore(tmp_path / "qrt.db")
        if kind == "mongomock":
            return MongoStore(
                "mongodb://mock/qrt", client=mock_server, inline_result_bytes=SMALL_INLINE_LIMIT
            )
        return MongoStore(mongodb_url, inline_result_bytes=SMALL_INLINE_LIMIT)

    async def open_one() -> JobStore:
        store = make()
        await store.open()
        opened.append(store)
        return store

    async def reopen() -> JobStore:
        await opened[-1].close()
        return await open_one()

    yield await open_one(), reopen
    await opened[-1].close()
    if kind == "mongodb":
        client: AsyncMongoClient[dict] = AsyncMongoClient(mongodb_url)
        await client.drop_database(client.get_default_database())
        await client.close()


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
    job = make_job(1, tags=("a", "b"), params='{"x": [1, 2]}', submitter="alice")
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
    assert await ids(instances=["h1/open/main", "ibm-q/open/p9"]) == ["1", "3"]
    assert await ids(instances=["h2/open/main"], tags=["y"]) == ["2"]
    assert await ids(instances=["h1/open/p9", "ibm-q/h1/main"]) == []  # whole names only
    assert await ids(instances=[]) == []


async def test_replace_is_compare_and_set(store: JobStore):
    job = make_job(1)
    await store.add_job(job)
    running = transition(job, JobStatus.RUNNING)
    assert await store.replace_job(running, expected=JobStatus.QUEUED)
    assert not await store.replace_job(transition(job, JobStatus.CANCELLED),
                                       expected=JobStatus.QUEUED)  # fmt: skip
    assert (await store.get_job(job.id)) == running
    assert not await store.replace_job(make_job(2), expected=JobStatus.QUEUED)


async def test_a_listing_without_params_leaves_them_out_and_unchanged(store: JobStore):
    job = make_job(1, params='{"big": "' + "x" * 100_000 + '"}', tags=("t",))
    await store.add_job(job)
    (listed,), total = await store.list_jobs(JobQuery(with_params=False))
    assert total == 1
    assert listed == replace(job, params="")
    assert (await store.list_jobs(JobQuery()))[0] == [job]
    # A job read without its params and written back keeps them: params are written once.
    running = transition(listed, JobStatus.RUNNING)
    assert await store.replace_job(running, expected=JobStatus.QUEUED)
    assert await store.get_job(job.id) == replace(running, params=job.params)
    assert (await store.list_jobs(JobQuery(tags=["t"])))[0][0].params == job.params


async def test_a_status_change_stores_its_timeline_entry_with_it(store: JobStore):
    job = make_job(1)
    await store.add_job(job)
    running = transition(job, JobStatus.RUNNING, executor_id="ex")
    entry = StageRecord(1, Stage.RUNNING, T0 + timedelta(seconds=5), "ex")
    assert await store.replace_job(running, expected=JobStatus.QUEUED, stage=entry)
    assert await store.job_stages(job.id) == [entry]
    # A change that does not happen adds no entry either.
    late = StageRecord(1, Stage.FINISHED, T0 + timedelta(seconds=6), "ex", "Cancelled")
    done = transition(job, JobStatus.CANCELLED)
    assert not await store.replace_job(done, expected=JobStatus.QUEUED, stage=late)
    assert await store.job_stages(job.id) == [entry]
    assert (await store.get_job(job.id)) == running


async def test_steps_are_made_in_order_up_to_a_status_change_that_found_the_job_moved(
    store: JobStore,
):
    job = make_job(1)
    await store.add_job(job)
    running = transition(job, JobStatus.RUNNING, executor_id="ex")
    done = transition(running, JobStatus.COMPLETED)
    start = StageRecord(1, Stage.RUNNING, T0 + timedelta(seconds=5), "ex")
    steps: list[JobStep] = [ReplaceJob(running, JobStatus.QUEUED, start), AppendLog(1, 0, "hi\n"),
             AddInterim(1, 0, "1"), SetResult('"r"'), ReplaceJob(done, JobStatus.RUNNING)]  # fmt: skip
    assert await store.write_steps(job.id, steps) == [True] * 5
    assert await store.get_job(job.id) == done and await store.job_stages(job.id) == [start]
    assert await store.read_log(job.id) == "hi\n" and await store.get_result(job.id) == '"r"'
    # Made again: the first step finds the job moved on, and nothing after it is made.
    again: list[JobStep] = [ReplaceJob(running, JobStatus.QUEUED), AppendLog(1, 1, "more\n")]
    assert await store.write_steps(job.id, again) == [False]
    assert await store.read_log(job.id) == "hi\n"
    assert await store.write_steps(job.id, [AppendLog(1, 0, "hi\n"), SetResult("2")]) == [
        False, False,
    ]  # fmt: skip


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


async def test_output_is_read_in_pages_in_order(store: JobStore):
    await store.add_job(make_job(1))
    await store.add_job(make_job(2))
    keys = [(1, seq) for seq in range(7)] + [(2, seq) for seq in range(5)]
    for attempt, seq in reversed(keys):
        await store.append_log("job-001", attempt, seq, f"{attempt}.{seq}\n")
        await store.add_interim("job-001", attempt, seq, f'"{attempt}.{seq}"')
    await store.add_interim("job-002", 1, 0, '"other job"')
    log_pages = [[c.key for c in page] async for page in store.log_pages("job-001", page=5)]
    assert log_pages == [keys[0:5], keys[5:10], keys[10:12]]
    interim_pages = [
        [i.data for i in page] async for page in store.interim_pages("job-001", page=4)
    ]
    assert [i for page in interim_pages for i in page] == [f'"{a}.{s}"' for a, s in keys]
    assert [len(page) for page in interim_pages] == [4, 4, 4]
    second = [[c.text for c in p] async for p in store.log_pages("job-001", attempt=2, page=3)]
    assert second == [["2.0\n", "2.1\n", "2.2\n"], ["2.3\n", "2.4\n"]]
    after = await store.list_interims("job-001", after=(1, 5), limit=3)
    assert [i.key for i in after] == [(1, 6), (2, 0), (2, 1)]
    assert (await store.last_interim("job-001")).key == (2, 4)  # type: ignore[union-attr]
    assert (await store.last_interim("job-001", attempt=1)).data == '"1.6"'  # type: ignore[union-attr]
    assert await store.last_interim("job-001", attempt=3) is None
    assert [p async for p in store.interim_pages("unknown")] == []


async def test_pages_of_large_pieces_hold_fewer(store: JobStore):
    await store.add_job(make_job(1))
    for seq in range(70):
        await store.add_interim("job-001", 1, seq, '"' + "x" * 100_000 + '"')
    sizes = [len(page) async for page in store.interim_pages("job-001")]
    assert sizes[0] == FIRST_PAGE and sum(sizes) == 70
    assert max(sizes[1:]) * 100_000 <= 2 * PAGE_BYTES


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


async def test_of_racing_deletes_of_a_job_exactly_one_is_true(store: JobStore):
    await store.add_job(make_job(1))
    deleted = await asyncio.gather(*(store.delete_job("job-001") for _ in range(10)))
    assert sorted(deleted) == [False] * 9 + [True]


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
        "from qrt_common.store.sqlite import SQLiteStore\n"
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


async def test_list_by_session_and_creation_time(store: JobStore):
    for n in range(6):
        await store.add_job(make_job(n, session_id="s1" if n % 2 else None))
    jobs, total = await store.list_jobs(JobQuery(session_id="s1"))
    assert (total, [j.id for j in jobs]) == (3, ["job-005", "job-003", "job-001"])
    window = JobQuery(
        created_after=T0 + timedelta(seconds=1), created_before=T0 + timedelta(seconds=4)
    )
    assert [j.id for j in (await store.list_jobs(window))[0]] == ["job-003", "job-002"]
    micro = JobQuery(created_after=T0 + timedelta(seconds=2, microseconds=1))
    assert (await store.list_jobs(micro))[1] == 3


async def test_purge_removes_old_finished_jobs_and_old_logs(store: JobStore):
    now = datetime.now(UTC)
    old = transition(transition(make_job(1), JobStatus.RUNNING), JobStatus.COMPLETED,
                     at=now - timedelta(days=10))  # fmt: skip
    recent = transition(transition(make_job(2), JobStatus.RUNNING), JobStatus.FAILED, at=now)
    running = transition(make_job(3), JobStatus.RUNNING)
    for job in (old, recent, running):
        await store.add_job(make_job(int(job.id[-1])))
        await store.replace_job(job, expected=JobStatus.QUEUED)
        await store.append_log(job.id, 1, 0, "log\n")
        await store.add_interim(job.id, 1, 0, "1")
        await store.set_result(job.id, '"r"' if job is not old else '"' + "z" * 100_000 + '"')
    assert await store.purge(ended_before=now - timedelta(days=1), logs_before=None) == 1
    assert await store.get_job(old.id) is None
    assert await store.get_result(old.id) is None and await store.list_interims(old.id) == []
    assert [j.id for j in (await store.list_jobs(JobQuery()))[0]] == [running.id, recent.id]
    assert await store.read_log(recent.id) == "log\n"
    # Logs are kept by age alone: every chunk here is older than a moment from now.
    await store.purge(ended_before=None, logs_before=datetime.now(UTC) + timedelta(seconds=1))
    assert await store.read_log(recent.id) == await store.read_log(running.id) == ""
    assert await store.get_job(running.id) == running
    assert await store.get_result(recent.id) == '"r"'


async def test_a_job_of_a_known_idempotency_key_is_the_first_one(store: JobStore):
    first = make_job(1, idempotency_key="a/b/c k1", request_digest="sha256:1")
    assert await store.add_job(first) == first
    retry = make_job(2, idempotency_key="a/b/c k1", request_digest="sha256:other")
    assert await store.add_job(retry) == first  # whatever the retry asked for
    assert await store.get_job("job-002") is None
    other_caller = make_job(3, idempotency_key="x/y/z k1")
    no_key = make_job(4)
    assert await store.add_job(other_caller) == other_caller
    assert await store.add_job(no_key) == no_key
    assert (await store.list_jobs(JobQuery()))[1] == 3


async def test_an_idempotency_key_is_freed_by_deleting_its_job_or_its_retention(store: JobStore):
    await store.add_job(make_job(1, idempotency_key="a/b/c k"))
    assert await store.delete_job("job-001")
    again = make_job(2, idempotency_key="a/b/c k")
    assert await store.add_job(again) == again
    # Keys of jobs created before the cut-off are forgotten; the jobs stay.
    assert await store.purge(ended_before=None, logs_before=None, keys_before=T0) == 0
    assert await store.add_job(make_job(3, idempotency_key="a/b/c k")) == again
    await store.purge(ended_before=None, logs_before=None, keys_before=T0 + timedelta(days=1))
    newer = make_job(4, idempotency_key="a/b/c k")
    assert await store.add_job(newer) == newer
    assert await store.get_job("job-002") is not None


async def test_a_store_refuses_a_newer_schema(stores: tuple[JobStore, Reopen]):
    store, reopen = stores
    if isinstance(store, SQLiteStore):
        await store._write("UPDATE meta SET value = '999' WHERE key = 'schema_version'", ())
    else:
        await store._db["meta"].update_one({"_id": "schema"}, {"$set": {"version": 999}})  # type: ignore[attr-defined]
    with pytest.raises(Exception, match="schema 999, newer than this qrt"):
        await reopen()


async def test_sqlite_keeps_a_job_whose_text_json_alone_can_write(tmp_path: Path):
    store = SQLiteStore(tmp_path / "qrt.db")
    await store.open()
    try:
        job = make_job(1, reason="lone \udc80 surrogate", tags=("é",))
        await store.add_job(job)
        assert await store.get_job(job.id) == job
        (listed,), _ = await store.list_jobs(JobQuery(with_params=False))
        assert listed == replace(job, params="")
    finally:
        await store.close()


async def test_sqlite_schema_1_is_migrated(tmp_path: Path):
    import sqlite3

    from qrt_common.jobs import job_to_dict
    from qrt_common.store.sqlite import MIGRATIONS

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[1])
    job = make_job(1, tags=("t",))
    old.execute(
        "INSERT INTO jobs (id, program_id, backend, status, hub, grp, project, created, doc)"
        " VALUES (?, 'prog', 'aer_simulator', 'Queued', 'ibm-q', 'open', 'main', ?, ?)",
        (job.id, job.created.isoformat(), json.dumps(job_to_dict(job))),
    )
    old.execute("INSERT INTO logs VALUES (?, 1, 0, 'kept\n')", (job.id,))
    old.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    old.commit()
    old.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        assert await store.get_job(job.id) == job
        assert await store.read_log(job.id) == "kept\n"
        assert (await store.list_jobs(JobQuery(tags=["t"])))[1] == 1
        await store.add_job(make_job(2, session_id="s"))
        assert [j.id for j in (await store.list_jobs(JobQuery(session_id="s")))[0]] == ["job-002"]
        rows = await store._read("SELECT value FROM meta WHERE key = 'schema_version'")
        assert rows[0][0] == str(SQLITE_SCHEMA)
        await store.add_program(make_program(1), ProgramArchive.of(b"zip 1"))
        assert await store.list_programs("x/y/z") == []
    finally:
        await store.close()


async def test_mongo_schema_1_is_migrated_and_migrations_are_idempotent():
    from qrt_common.store.mongo import MIGRATIONS
    from qrt_common.store.mongo import SCHEMA_VERSION as MONGO_SCHEMA

    client: Any = AsyncMongoMockClient(tz_aware=True)
    await MIGRATIONS[1](client["qrt"])
    await client["qrt"]["meta"].insert_one({"_id": "schema", "version": 1})
    store = MongoStore("mongodb://mock/qrt", client=client)
    await store.open()
    await MIGRATIONS[2](client["qrt"])  # a second service starting at the same time
    indexes = await client["qrt"]["programs"].index_information()
    assert indexes["by_owner"]["unique"] and "public" in indexes
    assert (await client["qrt"]["meta"].find_one({"_id": "schema"}))["version"] == MONGO_SCHEMA
    await store.add_program(make_program(1, name="n"), ProgramArchive.of(b"zip 1"))
    with pytest.raises(ProgramNameTaken):
        await store.add_program(make_program(2, name="n"), ProgramArchive.of(b"zip 2"))


async def test_mongo_store_without_a_server_is_not_ready_and_says_so():
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = MongoStore(f"mongodb://127.0.0.1:{port}/qrt", timeout=0.3)
    try:
        assert not await store.is_ready()
        with pytest.raises(StoreUnavailable, match="not open yet"):
            await store.get_job("x")
        with pytest.raises(StoreUnavailable, match="MongoDB is unreachable"):
            await store.open()
        assert not await store.is_ready()
    finally:
        await store.close()


async def test_mongo_writes_whose_acknowledgement_was_lost_count_once(monkeypatch):
    """The first try lands but its reply is lost (AutoReconnect): the retry must report the
    write as ours, not as someone else's, and must not write twice."""
    store = MongoStore("mongodb://mock/qrt", client=AsyncMongoMockClient(tz_aware=True))
    await store.open()
    collection_type = type(store._db["jobs"])
    for method in ("update_one", "find_one_and_update"):
        real = getattr(collection_type, method)
        lost: set[tuple[str, str]] = set()

        async def lose_first_reply(self, *args, _real=real, _method=method, _lost=lost, **kwargs):
            result = await _real(self, *args, **kwargs)
            if (self.name, _method) not in _lost:
                _lost.add((self.name, _method))
                raise AutoReconnect("connection closed before the reply")
            return result

        monkeypatch.setattr(collection_type, method, lose_first_reply)
    monkeypatch.setattr("qrt_common.store.mongo._TRANSIENT_RETRIES", Backoff(0.0, 0.0, tries=3))
    job = make_job(1)
    await store.add_job(job)
    assert await store.get_job(job.id) == job
    running = transition(job, JobStatus.RUNNING)
    assert await store.replace_job(running, expected=JobStatus.QUEUED)
    assert await store.append_log(job.id, 1, 0, "once\n")
    assert not await store.append_log(job.id, 1, 0, "twice\n")
    assert await store.add_interim(job.id, 1, 0, "1")
    assert await store.set_result(job.id, '"r"')
    assert not await store.set_result(job.id, '"s"')
    assert await store.read_log(job.id) == "once\n"
    assert await store.get_job(job.id) == running


@pytest.mark.skipif(not MONGODB_URL, reason="QRT_TEST_MONGODB_URL is not set")
async def test_large_results_are_gridfs_files_other_drivers_read():
    from gridfs import AsyncGridFSBucket

    url = real_mongodb_database_url()
    store = MongoStore(url, inline_result_bytes=SMALL_INLINE_LIMIT)
    await store.open()
    client: AsyncMongoClient[dict] = AsyncMongoClient(url)
    try:
        await store.add_job(make_job(1))
        big = '"' + "g" * 3_000_000 + '"'
        assert await store.set_result("job-001", big)
        bucket = AsyncGridFSBucket(client.get_default_database(), bucket_name="results")
        stream = await bucket.open_download_stream_by_name("job-001.json")
        assert (await stream.read()).decode() == big
    finally:
        await client.drop_database(client.get_default_database())
        await client.close()
        await store.close()


def make_program(n: int, owner: str = "hub/group/project", **fields) -> Program:
    values: dict[str, Any] = dict(
        id=f"prog-{n:03d}", name=f"program {n}", module="program", owner=owner,
        digest=archive_digest(b"zip %d" % n), created=T0, updated=T0 + timedelta(seconds=n),
        parameters=[{"name": "x", "type": "int", "required": True}], is_public=False,
    )  # fmt: skip
    values.update(fields)
    return Program(**values)


async def test_programs_by_id_and_owner_with_public_ones(store: JobStore):
    mine = make_program(1, name="b", description="mine")
    other = make_program(2, owner="h/g/other", name="a", kind=ProgramKind.ONE_SHOT,
                         command=("python3", "main.py"))  # fmt: skip
    shared = make_program(3, owner="h/g/other", name="c", is_public=True)
    for program in (mine, other, shared):
        await store.add_program(program, ProgramArchive.of(b"zip %d" % int(program.id[-1])))
    assert await store.get_program(mine.id) == mine
    assert await store.get_program(other.id) == other
    assert await store.get_program("nope") is None
    assert await store.program_archive(mine.id) == ProgramArchive.of(b"zip 1")
    assert await store.program_archive("nope") is None
    assert await store.list_programs("hub/group/project") == [mine, shared]
    assert await store.list_programs("h/g/other") == [other, shared]
    assert await store.list_programs("x/y/z") == [shared]


async def test_a_program_name_is_unique_per_owner(store: JobStore):
    await store.add_program(make_program(1, name="same"), ProgramArchive.of(b"zip 1"))
    with pytest.raises(ProgramNameTaken):
        await store.add_program(make_program(2, name="same"), ProgramArchive.of(b"zip 2"))
    await store.add_program(make_program(3, name="same", owner="h/g/p"), ProgramArchive.of(b"3"))
    await store.add_program(make_program(4, name="other"), ProgramArchive.of(b"zip 4"))
    with pytest.raises(ProgramNameTaken):
        await store.update_program(make_program(4, name="same"))
    assert (await store.get_program("prog-004")).name == "other"  # type: ignore[union-attr]
    assert await store.get_program("prog-002") is None


async def test_update_and_delete_a_program(stores: tuple[JobStore, Reopen]):
    store, reopen = stores
    original = make_program(1)
    await store.add_program(replace(original, digest=None), ProgramArchive.of(b"zip 1"))
    assert await store.get_program(original.id) == original  # the digest is the archive's
    renamed = replace(original, name="renamed", is_public=True, description="new")
    assert await store.update_program(renamed)
    assert await store.get_program(original.id) == renamed
    assert await store.program_archive(original.id) == ProgramArchive.of(b"zip 1")
    recoded = replace(renamed, digest=archive_digest(b"v2"), kind=ProgramKind.PYTHON_TEMPLATE)
    assert await store.update_program(replace(recoded, digest=None), ProgramArchive.of(b"v2"))
    assert not await store.update_program(make_program(9))
    store = await reopen()
    assert await store.get_program(original.id) == recoded
    assert await store.program_archive(original.id) == ProgramArchive.of(b"v2")
    assert await store.list_programs("x/y/z") == [recoded]
    assert await store.delete_program(original.id)
    assert not await store.delete_program(original.id)
    assert await store.get_program(original.id) is None
    assert await store.program_archive(original.id) is None
    assert await store.list_programs(original.owner or "") == []
    # The name is free again.
    await store.add_program(replace(original, id="prog-again"), ProgramArchive.of(b"v3"))


async def test_large_program_archives(store: JobStore):
    archive = ProgramArchive.of(os.urandom(8 * 1024 * 1024))
    program = make_program(1, digest=archive.digest)
    await store.add_program(program, archive)
    assert await store.program_archive(program.id) == archive
    assert await store.list_programs(program.owner or "") == [program]


@contextlib.contextmanager
def write_lock_held(path: Path) -> Iterator[None]:
    """The file's write lock, taken by a connection of another (here: the test's own) client."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_writes_wait_off_the_event_loop_while_another_process_holds_the_lock(
    tmp_path: Path,
):
    store = SQLiteStore(tmp_path / "qrt.db")
    await store.open()
    try:
        with write_lock_held(tmp_path / "qrt.db"):
            adding = asyncio.create_task(store.add_job(make_job(1)))
            started = asyncio.get_running_loop().time()

            def in_the_writer_thread() -> bool:
                committing = store._committing
                return committing is not None and not committing.done() and not store._batch

            await eventually(in_the_writer_thread, "the write is handed to the writer thread")
            # The loop went on (the write waits in the writer thread), and so does the write:
            # it cannot end while this test holds the lock.
            assert asyncio.get_running_loop().time() - started < 1
            assert not adding.done()
            assert await store.get_job("job-001") is None
        await asyncio.wait_for(adding, 10)
        assert await store.get_job("job-001") == make_job(1)
    finally:
        await store.close()


async def test_a_job_without_output_is_answered_without_the_reader_thread(tmp_path: Path):
    """Asking for the interim results or the log of a job that has none (every results stream
    asks, twice) is answered on the loop; a job that has some is read in the reader's thread."""
    store = SQLiteStore(tmp_path / "qrt.db")
    await store.open()
    released = threading.Event()
    try:
        await store.add_job(make_job(1))
        await store.add_job(make_job(2))
        await store.add_interim("job-002", 1, 0, "[1]")
        reader = store._reader
        assert reader is not None
        occupied = asyncio.ensure_future(reader.run(lambda db: released.wait(60)))
        try:
            empty = asyncio.gather(
                store.list_interims("job-001"),
                store.log_chunks("job-001", after=(1, 0), limit=5),
                store.last_interim("job-001"),
            )
            await asyncio.wait([empty], timeout=60)
            assert empty.done()
            interims, chunks, last = empty.result()
            assert (interims, chunks, last) == ([], [], None)
            stored = asyncio.ensure_future(store.list_interims("job-002"))
            await asyncio.sleep(0.05)
            assert not stored.done()  # it waits for the reader's thread
        finally:
            released.set()
            await occupied
        assert [i.data for i in await stored] == ["[1]"]
        assert [i.data for i in await store.list_interims("job-002", after=(1, 0))] == []
    finally:
        released.set()
        await store.close()


async def test_writes_made_on_the_event_loop_are_checkpointed(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_EVERY", 3)
    path = tmp_path / "qrt.db"
    store = SQLiteStore(path)
    await store.open()

    def in_the_database_file() -> int:
        # immutable: the main file alone, without what still sits in the write-ahead log
        with contextlib.closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as db:
            if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchall():
                return 0  # even the schema is still in the log only
            return int(db.execute("SELECT count(*) FROM jobs").fetchone()[0])

    try:
        for n in (1, 2):
            await store.add_job(make_job(n))
        # Writes on the loop schedule a checkpoint as they return: none is, and none ran.
        assert store._checkpointing is None
        assert in_the_database_file() == 0
        await store.add_job(make_job(3))
        await eventually(in_the_database_file, "3 jobs checkpointed", until=lambda n: n == 3)
    finally:
        await store.close()


async def test_a_failing_write_fails_alone_among_writes_made_at_once(tmp_path: Path, monkeypatch):
    commit = sqlite_store._commit
    batches: list[int] = []  # sizes of the transactions begun, in whichever thread

    def recorded(db: sqlite3.Connection, statements: list[sqlite_store.Statement]) -> list[Any]:
        batches.append(len(statements))
        return commit(db, statements)

    monkeypatch.setattr(sqlite_store, "_commit", recorded)
    store = SQLiteStore(tmp_path / "qrt.db")
    await store.open()
    try:
        await store.add_job(make_job(1))
        with write_lock_held(tmp_path / "qrt.db"):  # so that they queue up for one transaction
            writes = asyncio.gather(
                store.add_job(make_job(2)),
                store.add_job(make_job(1)),  # already there: fails, and only itself
                store.append_log("job-002", 1, 0, "log\n"),
                store.add_job(make_job(3)),
                return_exceptions=True,
            )
            await eventually(lambda: 4 in batches, "the 4 writes wait as one transaction")
        outcomes = await writes
        added = [o.id if isinstance(o, Job) else o for o in outcomes]
        assert (added[0], added[3], outcomes[2]) == ("job-002", "job-003", True)
        assert isinstance(outcomes[1], sqlite3.IntegrityError)
        _, total = await store.list_jobs(JobQuery())
        assert total == 3
        assert await store.read_log("job-002") == "log\n"
    finally:
        await store.close()


async def test_a_full_disk_makes_writes_unavailable_and_the_store_not_ready(tmp_path: Path):
    with small_disk(tmp_path / "disk") as disk:
        store = SQLiteStore(disk.path / "qrt.db")
        await store.open()
        try:
            await store.add_job(make_job(1))
            assert await store.is_ready()
            disk.fill()
            with pytest.raises(StoreUnavailable, match=r"cannot write .* the disk is full"):
                for seq in range(1000):  # what the write-ahead log still had room for goes in
                    await store.append_log("job-001", 1, seq, "x" * 4096)
            with pytest.raises(StoreUnavailable, match="the disk is full"):
                await store.add_job(make_job(2))
            assert not await store.is_ready()
            assert await store.get_job("job-001") is not None  # reads go on
            disk.free()
            assert await store.append_log("job-001", 1, 5000, "room again\n")
            assert await store.is_ready()
            assert (await store.add_job(make_job(2))).id == "job-002"
        finally:
            await store.close()


async def test_a_mongodb_that_cannot_write_is_unavailable_and_not_ready(monkeypatch):
    client: Any = AsyncMongoMockClient(tz_aware=True)
    store = MongoStore("mongodb://mock/qrt", client=client)
    await store.open()
    await store.add_job(make_job(1))
    assert await store.is_ready()

    async def out_of_disk(*args: Any, **kwargs: Any) -> Any:
        raise WriteError("OutOfDiskSpace: 1 GB needed", 14031, {"code": 14031})

    # The server's own answer when its disk is full (mongomock cannot run out of space).
    monkeypatch.setattr(type(client["qrt"]["jobs"]), "update_one", out_of_disk)
    with pytest.raises(StoreUnavailable, match=r"cannot write: the disk is full \(OutOfDiskSpace"):
        await store.add_job(make_job(2))
    assert not await store.is_ready()
    monkeypatch.undo()
    await store.add_job(make_job(2))
    assert await store.is_ready()
    await store.close()


# accounts


async def test_users_are_unique_listed_by_name_and_made_admins(store: JobStore):
    await store.add_user(User("bob", created=T0))
    await store.add_user(User("alice", admin=True, created=T0))
    with pytest.raises(AccountExists, match="bob"):
        await store.add_user(User("bob"))
    assert [u.name for u in await store.list_users()] == ["alice", "bob"]
    assert await store.get_user("alice") == User("alice", True, T0)
    assert await store.get_user("nobody") is None
    assert await store.set_admin("bob", True)
    assert not await store.set_admin("nobody", True)
    assert (await store.get_user("bob")) == User("bob", True, T0)


async def test_keys_keep_digests_expiry_revocation_and_last_use(store: JobStore):
    await store.add_user(User("bob"))
    first = ApiKey("00000000000000a1", "bob", "d1", T0, expires=T0 + timedelta(days=1), label="ci")
    second = ApiKey("00000000000000a2", "bob", "d2", T0 + timedelta(seconds=1))
    await store.add_key(first)
    await store.add_key(second)
    with pytest.raises(AccountExists):
        await store.add_key(first)
    assert await store.get_key(first.id) == first
    assert await store.get_key("ffffffffffffffff") is None
    assert await store.list_keys("bob") == [first, second]
    assert await store.list_keys("alice") == []
    assert await store.revoke_key(first.id, T0 + timedelta(hours=1))
    assert await store.revoke_key(first.id, T0 + timedelta(hours=2))  # keeps the first time
    assert not await store.revoke_key("ffffffffffffffff", T0)
    await store.key_used(second.id, T0 + timedelta(minutes=5))
    revoked, used = await store.list_keys()
    assert revoked.revoked == T0 + timedelta(hours=1)
    assert revoked.problem(T0) == "revoked"
    assert used.last_used == T0 + timedelta(minutes=5)
    assert used.problem(T0) is None


async def test_instances_and_memberships(store: JobStore):
    for name in ("bob", "carol"):
        await store.add_user(User(name))
    await store.add_instance(Instance("hub/b/p", T0))
    await store.add_instance(Instance("hub/a/p", T0))
    with pytest.raises(AccountExists, match="hub/a/p"):
        await store.add_instance(Instance("hub/a/p"))
    assert [i.name for i in await store.list_instances()] == ["hub/a/p", "hub/b/p"]
    assert await store.get_instance("hub/a/p") == Instance("hub/a/p", T0)
    await store.set_role("hub/a/p", "bob", Role.READER)
    await store.set_role("hub/a/p", "bob", Role.ADMIN)  # replaces the role
    await store.set_role("hub/b/p", "bob", Role.MEMBER)
    await store.set_role("hub/a/p", "carol", Role.MEMBER)
    assert await store.memberships(user="bob") == [
        Membership("hub/a/p", "bob", Role.ADMIN),
        Membership("hub/b/p", "bob", Role.MEMBER),
    ]
    assert [m.user for m in await store.memberships(instance="hub/a/p")] == ["bob", "carol"]
    assert len(await store.memberships()) == 3
    assert await store.remove_member("hub/a/p", "carol")
    assert not await store.remove_member("hub/a/p", "carol")
    assert await store.delete_instance("hub/b/p")
    assert not await store.delete_instance("hub/b/p")
    assert await store.memberships(user="bob") == [Membership("hub/a/p", "bob", Role.ADMIN)]


async def test_deleting_a_user_takes_their_keys_and_memberships(stores: tuple[JobStore, Reopen]):
    store, reopen = stores
    await store.add_user(User("bob"))
    await store.add_instance(Instance("hub/a/p"))
    await store.set_role("hub/a/p", "bob", Role.MEMBER)
    await store.add_key(ApiKey("00000000000000b1", "bob", "d"))
    store = await reopen()  # accounts survive a restart
    assert await store.get_key("00000000000000b1") is not None
    assert await store.delete_user("bob")
    assert not await store.delete_user("bob")
    assert await store.list_keys() == []
    assert await store.memberships() == []
    assert await store.get_instance("hub/a/p") is not None


async def test_list_oldest_first(store: JobStore):
    for n in range(5):
        await store.add_job(make_job(n))
    page, total = await store.list_jobs(JobQuery(limit=2, offset=1, oldest_first=True))
    assert total == 5 and [j.id for j in page] == ["job-001", "job-002"]


async def test_set_job_tags_changes_only_the_tags(store: JobStore):
    job = transition(make_job(1, tags=("old",)), JobStatus.RUNNING)
    await store.add_job(make_job(1, tags=("old",)))
    assert await store.replace_job(job, expected=JobStatus.QUEUED)
    assert await store.set_job_tags(job.id, ["new", "newer"])
    assert await store.get_job(job.id) == replace(job, tags=("new", "newer"))
    assert [j.id for j in (await store.list_jobs(JobQuery(tags=["newer"])))[0]] == [job.id]
    assert not (await store.list_jobs(JobQuery(tags=["old"])))[0]
    assert await store.set_job_tags(job.id, [])
    assert await store.get_job(job.id) == replace(job, tags=())
    assert not await store.set_job_tags("no-such-job", ["x"])


async def test_instance_caps_are_kept_and_survive_a_restart(stores: tuple[JobStore, Reopen]):
    store, reopen = stores
    await store.add_instance(Instance("hub/a/p", T0))
    assert await store.set_instance_limits("hub/a/p", max_active_jobs=5, submits_per_minute=None)
    assert not await store.set_instance_limits("no/such/p", max_active_jobs=1, submits_per_minute=1)
    store = await reopen()
    assert await store.get_instance("hub/a/p") == Instance("hub/a/p", T0, 5, None)
    assert await store.set_instance_limits("hub/a/p", max_active_jobs=None, submits_per_minute=9)
    assert await store.list_instances() == [Instance("hub/a/p", T0, None, 9)]


async def test_active_jobs_are_counted_by_submitter_and_by_instance(store: JobStore):
    def job(submitter: str | None, project: str = "p") -> Job:
        return Job(
            secrets.token_hex(8), "noop", "aer", "{}", 60, "h", "g", project, submitter=submitter
        )

    jobs = [job("alice"), job("alice", "q"), job("bob"), job(None), job(None, "q")]
    for each in jobs:
        await store.add_job(each)
    ended = transition(transition(jobs[1], JobStatus.RUNNING), JobStatus.COMPLETED)
    assert await store.replace_job(
        transition(jobs[1], JobStatus.RUNNING), expected=JobStatus.QUEUED
    )
    assert await store.active_jobs_of("alice") == 2  # Running counts
    assert await store.replace_job(ended, expected=JobStatus.RUNNING)
    assert await store.active_jobs_of("alice") == 1
    assert await store.active_jobs_of(None) == 2  # jobs submitted without keys
    assert await store.active_jobs_of("carol") == 0
    assert await store.active_jobs_in("h/g/p") == 3
    assert await store.active_jobs_in("h/g/q") == 1


async def test_a_job_is_found_by_its_idempotency_key(store: JobStore):
    job = Job("j1", "noop", "aer", "{}", 60, idempotency_key="alice k1")
    await store.add_job(job)
    found = await store.job_with_idempotency_key("alice k1")
    assert found is not None and found.id == "j1"
    assert await store.job_with_idempotency_key("alice k2") is None


async def test_a_new_sqlite_store_is_readable_by_its_owner_only(tmp_path: Path):
    # Found by a tester: qrt.db and its -wal and -shm were 0644 in a 0755 directory, so any
    # local user read every job's params and results.
    path = tmp_path / "data" / "qrt.db"
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.add_job(
            Job(id="j", program_id="p", backend="b", params="{}", max_execution_time=60)
        )
        made = [path.parent, path, *path.parent.glob("qrt.db-*")]
        assert {p.name for p in made} >= {"data", "qrt.db", "qrt.db-wal", "qrt.db-shm"}
        assert {p.name: oct(p.stat().st_mode & 0o777) for p in made} == {
            "data": "0o700",
            **{p.name: "0o600" for p in made[1:]},
        }
    finally:
        await store.close()
