"""The embedded job store: one SQLite file, for `qrt dev` and single-node installs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from .archives import ProgramArchive
from .jobs import Job, JobStatus, epoch_us, job_from_dict, job_to_dict, utcnow
from .programs import Program, program_from_dict, program_to_dict
from .store import Interim, JobQuery, JobStore, LogChunk, ProgramNameTaken, StoreSetupError

SCHEMA_VERSION = 3
"""The layout this code writes; the `meta` table says which layout the file holds."""

_SCHEMA_1 = """
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

_SCHEMA_2 = """
ALTER TABLE jobs ADD COLUMN session_id TEXT;
CREATE INDEX IF NOT EXISTS jobs_by_session ON jobs (session_id, created);
ALTER TABLE jobs ADD COLUMN ended TEXT;
CREATE INDEX IF NOT EXISTS jobs_by_ended ON jobs (ended);
UPDATE jobs SET ended = json_extract(doc, '$.ended'),
    session_id = json_extract(doc, '$.session_id');
ALTER TABLE logs ADD COLUMN written INTEGER NOT NULL DEFAULT 0;
UPDATE logs SET written = CAST(strftime('%s', 'now') AS INTEGER) * 1000000;
CREATE INDEX IF NOT EXISTS logs_by_written ON logs (written);
"""

_SCHEMA_3 = """
CREATE TABLE IF NOT EXISTS programs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    is_public INTEGER NOT NULL,
    doc TEXT NOT NULL,
    digest TEXT NOT NULL,
    archive BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS programs_by_owner ON programs (owner, name);
CREATE INDEX IF NOT EXISTS programs_public ON programs (is_public, name);
"""

MIGRATIONS = {1: _SCHEMA_1, 2: _SCHEMA_2, 3: _SCHEMA_3}
"""Step `n` brings a file from schema `n - 1` to `n`, in one transaction."""


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
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def _migrate(self) -> None:
        async with self._transaction_lock:
            # IMMEDIATE: a second process opening the same file waits, then sees the new version.
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                await self.db.execute(
                    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
                )
                rows = await self._read("SELECT value FROM meta WHERE key = 'schema_version'")
                version = int(rows[0][0]) if rows else 0
                if version > SCHEMA_VERSION:
                    raise StoreSetupError(
                        f"{self.path} holds schema {version}, newer than this qrt's"
                        f" {SCHEMA_VERSION}: upgrade qrt"
                    )
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    # executescript would commit the open transaction: run statement by statement.
                    for statement in filter(str.strip, MIGRATIONS[step].split(";")):
                        await self.db.execute(statement)
                await self.db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(max(version, SCHEMA_VERSION)),),
                )
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

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
            "INSERT INTO jobs (id, program_id, backend, status, hub, grp, project, created,"
            " session_id, ended, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.id,
                job.program_id,
                job.backend,
                job.status.value,
                job.hub,
                job.group,
                job.project,
                _sortable(job.created),
                job.session_id,
                None if job.ended is None else _sortable(job.ended),
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
            ("session_id", query.session_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.created_after is not None:
            where.append("created > ?")
            args.append(_sortable(query.created_after))
        if query.created_before is not None:
            where.append("created < ?")
            args.append(_sortable(query.created_before))
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
            "UPDATE jobs SET status = ?, ended = ?, doc = ? WHERE id = ? AND status = ?",
            (
                job.status.value,
                None if job.ended is None else _sortable(job.ended),
                json.dumps(job_to_dict(job)),
                job.id,
                expected.value,
            ),
        )
        return changed == 1

    async def delete_job(self, job_id: str) -> bool:
        return await self._delete_jobs("id = ?", (job_id,)) == 1

    async def _delete_jobs(self, where: str, args: tuple[Any, ...]) -> int:
        """Delete the jobs matching `where` and all they produced, in one transaction."""
        # Holding the lock keeps other coroutines' writes out of this transaction.
        async with self._transaction_lock:
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                await self.db.execute(
                    f"CREATE TEMP TABLE doomed AS SELECT id FROM jobs WHERE {where}", args
                )
                cursor = await self.db.execute("DELETE FROM jobs WHERE id IN doomed")
                for table in ("logs", "interims", "results"):
                    await self.db.execute(f"DELETE FROM {table} WHERE job_id IN doomed")
                await self.db.execute("DROP TABLE doomed")
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")
            return cursor.rowcount

    async def append_log(self, job_id: str, attempt: int, seq: int, text: str) -> bool:
        sql = (
            "INSERT OR IGNORE INTO logs (job_id, attempt, seq, text, written)"
            " VALUES (?, ?, ?, ?, ?)"
        )
        return await self._write(sql, (job_id, attempt, seq, text, epoch_us(utcnow()))) == 1

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

    async def add_program(self, program: Program, archive: ProgramArchive) -> None:
        sql = (
            "INSERT INTO programs (id, owner, name, is_public, doc, digest, archive)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        await self._write_program(sql, (program.id, *_program_columns(program, archive)))

    async def _write_program(self, sql: str, args: tuple[Any, ...]) -> int:
        try:
            return await self._write(sql, args)
        except sqlite3.IntegrityError as exc:
            if "programs.owner, programs.name" not in str(exc):
                raise
            raise ProgramNameTaken(str(exc)) from None

    async def get_program(self, program_id: str) -> Program | None:
        rows = await self._read("SELECT doc FROM programs WHERE id = ?", (program_id,))
        return program_from_dict(json.loads(rows[0][0])) if rows else None

    async def program_archive(self, program_id: str) -> ProgramArchive | None:
        sql = "SELECT digest, archive FROM programs WHERE id = ?"
        rows = await self._read(sql, (program_id,))
        return ProgramArchive(rows[0][0], bytes(rows[0][1])) if rows else None

    async def list_programs(self, owner: str) -> list[Program]:
        # A UNION lets each half use its index, where an OR would scan the table.
        sql = (
            "SELECT doc, name, id FROM programs WHERE owner = ?"
            " UNION SELECT doc, name, id FROM programs WHERE is_public = 1 ORDER BY name, id"
        )
        return [program_from_dict(json.loads(r[0])) for r in await self._read(sql, (owner,))]

    async def update_program(self, program: Program, archive: ProgramArchive | None = None) -> bool:
        if archive is None:
            owner, name, is_public, doc, _, _ = _program_columns(program, None)
            sql = "UPDATE programs SET owner = ?, name = ?, is_public = ?, doc = ? WHERE id = ?"
            args: tuple[Any, ...] = (owner, name, is_public, doc, program.id)
        else:
            owner, name, is_public, doc, digest, data = _program_columns(program, archive)
            sql = (
                "UPDATE programs SET owner = ?, name = ?, is_public = ?, doc = ?, digest = ?,"
                " archive = ? WHERE id = ?"
            )
            args = (owner, name, is_public, doc, digest, data, program.id)
        return await self._write_program(sql, args) == 1

    async def delete_program(self, program_id: str) -> bool:
        return await self._write("DELETE FROM programs WHERE id = ?", (program_id,)) == 1

    async def purge(self, *, ended_before: datetime | None, logs_before: datetime | None) -> int:
        purged = 0
        if ended_before is not None:
            purged = await self._delete_jobs("ended < ?", (_sortable(ended_before),))
        if logs_before is not None:
            await self._write("DELETE FROM logs WHERE written < ?", (epoch_us(logs_before),))
        return purged


def _program_columns(program: Program, archive: ProgramArchive | None) -> tuple[Any, ...]:
    """The columns of a `programs` row but its id (digest and archive None without `archive`)."""
    if archive is not None:
        program = dataclasses.replace(program, digest=archive.digest)
    doc = json.dumps(program_to_dict(program))
    digest, data = (None, None) if archive is None else (archive.digest, archive.data)
    return (program.owner, program.name, int(program.is_public), doc, digest, data)


def _sortable(value: datetime) -> str:
    """`value` as UTC ISO text with microseconds, so text order is time order."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")
