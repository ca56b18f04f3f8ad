"""The embedded job store: one SQLite file, for `qrt dev` and single-node installs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiosqlite

from .jobs import Job, JobStatus, job_from_dict, job_to_dict
from .store import Interim, JobQuery, JobStore, LogChunk

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    program_id TEXT NOT NULL,
    backend TEXT NOT NULL,
    status TEXT NOT NULL,
    hub TEXT NOT NULL,
    grp TEXT NOT NULL,
    project TEXT NOT NULL,
    created TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created);
CREATE INDEX IF NOT EXISTS jobs_by_program ON jobs (program_id, created);
CREATE INDEX IF NOT EXISTS jobs_by_instance ON jobs (hub, grp, project, created);
CREATE INDEX IF NOT EXISTS jobs_by_backend ON jobs (backend, created);
CREATE TABLE IF NOT EXISTS logs (
    job_id TEXT NOT NULL, attempt INTEGER NOT NULL, seq INTEGER NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS interims (
    job_id TEXT NOT NULL, attempt INTEGER NOT NULL, idx INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS results (job_id TEXT PRIMARY KEY, data TEXT NOT NULL);
"""


class SQLiteStore(JobStore):
    """A JobStore in one SQLite database file, written through one connection."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._transaction_lock = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("SQLiteStore used before open()")
        return self._db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: each statement is its own transaction and waits for the write lock
        # (busy_timeout); Python's implicit deferred transactions could instead fail at once
        # with "database is locked" when another process (gateway, scheduler) writes.
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        # WAL with synchronous=NORMAL survives a crash of the process without an fsync per write.
        # Several processes (gateway, scheduler) may share the file: wait for each other's locks.
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=10000"):
            # A pragma's result row must be read: an unfinished statement would hold a read
            # snapshot open, and every later write would fail once another process committed.
            async with self.db.execute(f"PRAGMA {pragma}") as cursor:
                await cursor.fetchall()
        await self.db.executescript(_SCHEMA)
        await self.db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        async with self._transaction_lock, self.db.execute(sql, args) as cursor:
            return cursor.rowcount

    async def _read(self, sql: str, args: Any = ()) -> list[Any]:
        # One call into the connection's thread: no statement stays open across an await, so
        # another coroutine's write never runs inside this read's (by then stale) snapshot,
        # which SQLite refuses at once with SQLITE_BUSY_SNAPSHOT.
        rows = await self.db.execute_fetchall(sql, args)
        return list(rows)

    async def add_job(self, job: Job) -> None:
        await self._write(
            "INSERT INTO jobs (id, program_id, backend, status, hub, grp, project, created, doc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.id,
                job.program_id,
                job.backend,
                job.status.value,
                job.hub,
                job.group,
                job.project,
                job.created.isoformat(),
                json.dumps(job_to_dict(job)),
            ),
        )

    async def get_job(self, job_id: str) -> Job | None:
        rows = await self._read("SELECT doc FROM jobs WHERE id = ?", (job_id,))
        return job_from_dict(json.loads(rows[0][0])) if rows else None

    async def list_jobs(self, query: JobQuery) -> tuple[list[Job], int]:
        where: list[str] = []
        args: list[Any] = []
        if query.statuses:
            where.append(f"status IN ({','.join('?' * len(query.statuses))})")
            args.extend(s.value for s in query.statuses)
        for column, value in (
            ("program_id", query.program_id),
            ("backend", query.backend),
            ("hub", query.hub),
            ("grp", query.group),
            ("project", query.project),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        for tag in query.tags:
            where.append("EXISTS (SELECT 1 FROM json_each(jobs.doc, '$.tags') WHERE value = ?)")
            args.append(tag)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        total = int((await self._read(f"SELECT count(*) FROM jobs{clause}", args))[0][0])
        sql = f"SELECT doc FROM jobs{clause} ORDER BY created DESC, id LIMIT ? OFFSET ?"
        rows = await self._read(sql, [*args, query.limit, query.offset])
        return [job_from_dict(json.loads(r[0])) for r in rows], total

    async def replace_job(self, job: Job, *, expected: JobStatus) -> bool:
        changed = await self._write(
            "UPDATE jobs SET status = ?, doc = ? WHERE id = ? AND status = ?",
            (job.status.value, json.dumps(job_to_dict(job)), job.id, expected.value),
        )
        return changed == 1

    async def delete_job(self, job_id: str) -> bool:
        # Holding the lock keeps other coroutines' writes out of this transaction.
        async with self._transaction_lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                cursor = await self.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
                for table in ("logs", "interims", "results"):
                    await self.db.execute(f"DELETE FROM {table} WHERE job_id = ?", (job_id,))
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")
            return cursor.rowcount == 1

    async def append_log(self, job_id: str, attempt: int, seq: int, text: str) -> bool:
        sql = "INSERT OR IGNORE INTO logs (job_id, attempt, seq, text) VALUES (?, ?, ?, ?)"
        return await self._write(sql, (job_id, attempt, seq, text)) == 1

    async def log_chunks(self, job_id: str) -> list[LogChunk]:
        sql = "SELECT attempt, seq, text FROM logs WHERE job_id = ? ORDER BY attempt, seq"
        rows = await self._read(sql, (job_id,))
        return [LogChunk(attempt=r[0], seq=r[1], text=r[2]) for r in rows]

    async def add_interim(self, job_id: str, attempt: int, index: int, data: str) -> bool:
        sql = "INSERT OR IGNORE INTO interims (job_id, attempt, idx, data) VALUES (?, ?, ?, ?)"
        return await self._write(sql, (job_id, attempt, index, data)) == 1

    async def list_interims(self, job_id: str) -> list[Interim]:
        sql = "SELECT attempt, idx, data FROM interims WHERE job_id = ? ORDER BY attempt, idx"
        rows = await self._read(sql, (job_id,))
        return [Interim(attempt=r[0], index=r[1], data=r[2]) for r in rows]

    async def set_result(self, job_id: str, data: str) -> bool:
        sql = "INSERT OR IGNORE INTO results (job_id, data) VALUES (?, ?)"
        return await self._write(sql, (job_id, data)) == 1

    async def get_result(self, job_id: str) -> str | None:
        rows = await self._read("SELECT data FROM results WHERE job_id = ?", (job_id,))
        return str(rows[0][0]) if rows else None


def open_store(url: str) -> JobStore:
    """The store for a `sqlite:///path` URL."""
    if url.startswith("sqlite:///"):
        return SQLiteStore(Path(url.removeprefix("sqlite:///")))
    raise ValueError(f"unsupported store URL {url!r}: use sqlite:///path")
