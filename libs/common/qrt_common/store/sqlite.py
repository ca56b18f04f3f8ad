"""The embedded job store: one SQLite file, for `qrt dev` and single-node installs."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from ..accounts import ApiKey, Instance, Membership, Role, User
from ..archives import ProgramArchive
from ..errors import AccountExists, ProgramNameTaken, StoreSetupError, StoreUnavailable
from ..jobs import Job, JobStatus, epoch_us, from_iso, job_from_dict, job_to_dict, utcnow
from ..programs import Program, program_from_dict, program_to_dict
from ..sessions import JobTimes, Session, session_from_dict, session_to_dict
from ..timeline import StageRecord, stage_from_dict
from .base import (
    AddInterim,
    AddStage,
    AppendLog,
    Interim,
    JobQuery,
    JobStep,
    JobStore,
    LogChunk,
    PartKey,
    ReplaceJob,
    WriteHealth,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 8
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

_SCHEMA_4 = """
ALTER TABLE jobs ADD COLUMN idempotency_key TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_idempotency_key ON jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
"""

_SCHEMA_5 = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, admin INTEGER NOT NULL, created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    digest TEXT NOT NULL,
    created TEXT NOT NULL,
    expires TEXT,
    revoked TEXT,
    last_used TEXT,
    label TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_by_user ON api_keys (user, created);
CREATE TABLE IF NOT EXISTS instances (name TEXT PRIMARY KEY, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    instance TEXT NOT NULL, user TEXT NOT NULL, role TEXT NOT NULL,
    PRIMARY KEY (instance, user)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_user ON members (user, instance);
"""

_SCHEMA_6 = """
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stages (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    stage TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    executor_id TEXT,
    detail TEXT,
    PRIMARY KEY (job_id, attempt, stage, at_us)
) WITHOUT ROWID;
"""

_SCHEMA_7 = """
ALTER TABLE instances ADD COLUMN max_active_jobs INTEGER;
ALTER TABLE instances ADD COLUMN submits_per_minute INTEGER;
"""

# A job's params in a table of their own: a listing never reads them, and a status change
# rewrites the job's row (SQLite rewrites a whole row on UPDATE), not its params.
_SCHEMA_8 = """
CREATE TABLE IF NOT EXISTS job_params (job_id TEXT PRIMARY KEY, params TEXT NOT NULL);
INSERT OR IGNORE INTO job_params (job_id, params)
    SELECT id, coalesce(json_extract(doc, '$.params'), '') FROM jobs;
UPDATE jobs SET doc = json_remove(doc, '$.params')
"""

MIGRATIONS = {
    1: _SCHEMA_1, 2: _SCHEMA_2, 3: _SCHEMA_3, 4: _SCHEMA_4, 5: _SCHEMA_5, 6: _SCHEMA_6,
    7: _SCHEMA_7, 8: _SCHEMA_8,
}  # fmt: skip
"""Step `n` brings a file from schema `n - 1` to `n`, in one transaction."""


Statement = Callable[[sqlite3.Connection], Any]
"""One unit of work inside a write transaction; what it returns goes to its caller."""

INLINE_WRITE_BYTES = 64 * 1024
"""Largest write (its arguments' text and bytes) made on the event loop's thread."""
CHECKPOINT_EVERY = 500
"""Writes made on the event loop's thread between two checkpoints in the writer thread."""


class SQLiteStore(JobStore):
    """A JobStore in one SQLite database file.

    A small write, and a read of a job or a program's archive by key, run on the
    event loop's own connection: in WAL mode with synchronous=NORMAL they take tens of
    microseconds, less than handing them to a thread and back, which under load costs a service
    more CPU than the statement itself.
    That connection never waits: when another process (or this one's writer thread) holds the
    write lock, the write goes to the writer thread instead, where it waits for the lock.

    Everything else (large payloads, a job's output, which may be large and is read in pages,
    scans, purges) goes through a connection each for reads and writes, in a thread of their
    own, so the event loop never blocks on the file. Writes
    there are group-committed: the writes that arrive while a transaction is being committed go
    into the next one together. Several processes (gateway, scheduler) share the file; each
    write transaction takes the file's write lock once, and under load that is once per batch
    rather than once per statement.

    The loop's connection never checkpoints (which copies the log into the file and syncs it);
    the writer thread does, after every CHECKPOINT_EVERY writes made on the loop.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: _Connection | None = None
        self._reader: _Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._inline_writes = 0
        self._checkpointing: asyncio.Task[None] | None = None
        self._batch: list[tuple[Statement, asyncio.Future[Any]]] = []
        self._committing: asyncio.Task[None] | None = None
        self._health = WriteHealth()

    async def open(self) -> None:
        _make_private(self.path)
        try:
            self._writer = await _Connection.open(self.path, "qrt-sqlite-writer")
            await self._writer.run(_migrate, self.path)
            self._reader = await _Connection.open(self.path, "qrt-sqlite-reader")
            self._inline = _connect(self.path, busy_timeout=0, checkpoints=False)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for task in (self._committing, self._checkpointing):
            if task is not None:
                with contextlib.suppress(Exception):
                    await task
        for connection in (self._reader, self._writer):
            if connection is not None:
                await connection.close()
        if self._inline is not None:
            self._inline.close()
        self._reader = self._writer = self._inline = None

    def _connection(self, connection: _Connection | None) -> _Connection:
        if connection is None:
            raise RuntimeError("SQLiteStore used before open()")
        return connection

    async def is_ready(self) -> bool:
        """True when a small write works and no write failed for want of space (or another
        reason the file cannot be written) since the last one that worked."""
        if self._inline is None:
            return False
        probe = "INSERT OR REPLACE INTO meta (key, value) VALUES ('ready_probe', ?)"
        try:
            _commit_one(self._inline, lambda db: db.execute(probe, (str(time.time()),)))
        except sqlite3.Error as exc:
            if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                return self._health.failure is None  # another writer holds the file: it writes
            if self._unavailable(exc) is None:
                raise
            return False
        return self._health.failure is None

    def _unavailable(self, error: BaseException) -> StoreUnavailable | None:
        """The StoreUnavailable `error` means when the file cannot be written (a full disk, an
        I/O error, a read-only file system), remembered for `is_ready`; None for other errors
        (a constraint, a bug), which are the caller's."""
        reason = _cannot_write(error)
        if reason is None:
            return None
        self._health.failed(reason)
        return StoreUnavailable(f"the store cannot write to {self.path}: {reason}")

    async def _transact(self, statement: Statement) -> Any:
        """Run `statement` in the next write transaction; its result once that committed.
        Raises StoreUnavailable when the file cannot be written."""
        writer = self._connection(self._writer)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._batch.append((statement, future))
        if self._committing is None or self._committing.done():
            self._committing = asyncio.create_task(self._commit_batches(writer))
        try:
            outcome = await future
        except (sqlite3.Error, OSError) as exc:
            unavailable = self._unavailable(exc)
            if unavailable is None:
                raise
            raise unavailable from exc
        self._health.succeeded()
        return outcome

    async def _commit_batches(self, writer: _Connection) -> None:
        while self._batch:
            batch, self._batch = self._batch, []
            try:
                outcomes = await writer.run(_commit, [statement for statement, _ in batch])
            except Exception as exc:  # every waiting caller gets it
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        """Run one write statement; its row count. Raises StoreUnavailable when the file
        cannot be written (a full disk), and the statement's own errors (a constraint)."""

        def statement(db: sqlite3.Connection) -> int:
            return db.execute(sql, args).rowcount

        return int(await self._write_unit(statement, _size(args)))

    async def _write_unit(self, statement: Statement, size: int) -> Any:
        """Run `statement` (one or several writes that belong together) in a transaction of
        its own; what it returns. `size`: the text and bytes it writes, which decide whether
        it runs on the loop's connection. Raises as `_write` does."""
        if self._inline is not None and size <= INLINE_WRITE_BYTES:
            try:
                outcome = _commit_one(self._inline, statement)
            except sqlite3.Error as exc:
                if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                    return await self._transact(statement)
                unavailable = self._unavailable(exc)
                if unavailable is None:
                    raise
                raise unavailable from exc
            self._after_inline_write()
            self._health.succeeded()
            return outcome
        return await self._transact(statement)

    def _after_inline_write(self) -> None:
        self._inline_writes += 1
        if self._inline_writes < CHECKPOINT_EVERY or self._writer is None:
            return
        if self._checkpointing is None or self._checkpointing.done():
            self._inline_writes = 0
            self._checkpointing = asyncio.create_task(self._checkpoint(self._writer))

    async def _checkpoint(self, writer: _Connection) -> None:
        try:
            await writer.run(_checkpoint)
        except (sqlite3.Error, StoreUnavailable):
            # The next one will copy what this one could not; the log only grows meanwhile.
            logger.warning("checkpoint of %s failed", self.path, exc_info=True)

    async def _read(self, sql: str, args: Any = ()) -> list[Any]:
        reader = self._connection(self._reader)
        try:
            rows: list[Any] = await reader.run(lambda db: db.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            unavailable = _unreadable(exc, self.path)
            if unavailable is None:
                raise
            raise unavailable from exc
        return rows

    async def _look_up(self, sql: str, args: Any) -> list[Any]:
        """Rows of a query by key, run on the event loop's connection (see the class).

        In WAL mode a reader takes no lock. A large result takes longer to read than a job, but
        no longer than sending it on, which the loop does next. Should the file be busy after
        all (a recovery), the query waits in the reader's thread instead.
        """
        if self._inline is None:
            raise RuntimeError("SQLiteStore used before open()")
        try:
            return self._inline.execute(sql, args).fetchall()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                unavailable = _unreadable(exc, self.path)
                if unavailable is None:
                    raise
                raise unavailable from exc
        return await self._read(sql, args)

    async def add_job(self, job: Job) -> Job:
        for _ in range(2):
            stored = await self._add_job(job)
            if stored is not None:
                return stored
        # The job holding the key was deleted twice while this one looked it up.
        raise StoreUnavailable(f"job {job.id} could not be stored: its key kept changing hands")

    async def _add_job(self, job: Job) -> Job | None:
        """`job` stored, or the job that holds its idempotency key; None if that one went
        between the two looks."""
        row = (
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
            job.idempotency_key,
            _job_doc(job),
        )

        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO jobs (id, program_id, backend, status, hub, grp, project, created,"
                " session_id, ended, idempotency_key, doc)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            db.execute(
                "INSERT INTO job_params (job_id, params) VALUES (?, ?)", (job.id, job.params)
            )

        try:
            await self._write_unit(insert, _size(row) + len(job.params))
        except sqlite3.IntegrityError:
            if job.idempotency_key is None:
                raise
            return await self.job_with_idempotency_key(job.idempotency_key)
        return job

    async def get_job(self, job_id: str) -> Job | None:
        rows = await self._look_up(f"{_SELECT_JOB} WHERE jobs.id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    async def list_jobs(self, query: JobQuery) -> tuple[list[Job], int]:
        where: list[str] = []
        args: list[Any] = []
        if query.instances is not None:
            if not query.instances:
                return [], 0
            triples = ", ".join("(?, ?, ?)" for _ in query.instances)
            where.append(f"(hub, grp, project) IN (VALUES {triples})")
            args.extend(part for name in query.instances for part in name.split("/", 2))
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
        order = "ASC" if query.oldest_first else "DESC"
        # Without params the listing reads the jobs table alone: params may be megabytes a job.
        select = _SELECT_JOB if query.with_params else "SELECT doc, '' FROM jobs"
        sql = f"{select}{clause} ORDER BY created {order}, id LIMIT ? OFFSET ?"
        rows = await self._read(sql, [*args, query.limit, query.offset])
        return [_job(row) for row in rows], total

    async def replace_job(
        self, job: Job, *, expected: JobStatus, stage: StageRecord | None = None
    ) -> bool:
        done: list[bool] = await self.write_steps(job.id, [ReplaceJob(job, expected, stage)])
        return done[0]

    async def write_steps(self, job_id: str, steps: Sequence[JobStep]) -> list[bool]:
        # All in one transaction: a job's events of one message (its start, log, result and
        # end, for a short job) cost one commit, not one each.
        rows = [_step_row(job_id, step) for step in steps]

        def write(db: sqlite3.Connection) -> list[bool]:
            done: list[bool] = []
            for step, (sql, args) in zip(steps, rows, strict=True):
                if not isinstance(step, ReplaceJob):
                    done.append(db.execute(sql, args).rowcount == 1)
                    continue
                if db.execute(sql, args).rowcount != 1:
                    done.append(False)
                    break
                if step.stage is not None:
                    db.execute(_INSERT_STAGE, _stage_row(job_id, step.stage))
                done.append(True)
            return done

        done: list[bool] = await self._write_unit(write, sum(_size(args) for _, args in rows))
        return done

    async def delete_job(self, job_id: str) -> bool:
        return await self._delete_jobs("id = ?", (job_id,)) == 1

    async def _delete_jobs(self, where: str, args: tuple[Any, ...]) -> int:
        """Delete the jobs matching `where` and all they produced, in one transaction."""

        def delete(db: sqlite3.Connection) -> int:
            db.execute(f"CREATE TEMP TABLE doomed AS SELECT id FROM jobs WHERE {where}", args)
            try:
                deleted = db.execute("DELETE FROM jobs WHERE id IN doomed").rowcount
                for table in ("job_params", "logs", "interims", "results", "stages"):
                    db.execute(f"DELETE FROM {table} WHERE job_id IN doomed")
            finally:
                db.execute("DROP TABLE doomed")
            return deleted

        deleted: int = await self._transact(delete)
        return deleted

    async def append_log(self, job_id: str, attempt: int, seq: int, text: str) -> bool:
        args = (job_id, attempt, seq, text, epoch_us(utcnow()))
        return await self._write(_INSERT_LOG, args) == 1

    async def log_chunks(
        self,
        job_id: str,
        *,
        attempt: int | None = None,
        after: PartKey | None = None,
        limit: int | None = None,
    ) -> list[LogChunk]:
        rows = await self._parts("logs", "seq", "text", job_id, attempt, after, limit)
        return [LogChunk(attempt=r[0], seq=r[1], text=r[2]) for r in rows]

    async def _parts(
        self,
        table: str,
        seq: str,
        data: str,
        job_id: str,
        attempt: int | None,
        after: PartKey | None,
        limit: int | None,
        *,
        newest: bool = False,
    ) -> list[Any]:
        """Rows (attempt, seq, data) of a job's log chunks or interim results, in order (or
        newest first), as `JobStore.log_chunks` chooses them."""
        where: list[str] = ["job_id = ?"]
        args: list[Any] = [job_id]
        if attempt is not None:
            where.append("attempt = ?")
            args.append(attempt)
        if after is not None:
            where.append(f"(attempt, {seq}) > (?, ?)")
            args.extend(after)
        order = "DESC" if newest else "ASC"
        matching = f"FROM {table} WHERE {' AND '.join(where)}"
        # Most asks (every results stream opens with one, and asks again once the job ended)
        # find nothing: a look on the loop's connection, which reads one key, costs less
        # than the hop to the reader's thread and back.
        if not await self._look_up(f"SELECT 1 {matching} LIMIT 1", args):
            return []
        sql = f"SELECT attempt, {seq}, {data} {matching} ORDER BY attempt {order}, {seq} {order}"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        # In the reader's thread: a job's output may be large, and however many ask for it,
        # the event loop only waits for the rows to arrive.
        return await self._read(sql, args)

    async def add_interim(self, job_id: str, attempt: int, index: int, data: str) -> bool:
        return await self._write(_INSERT_INTERIM, (job_id, attempt, index, data)) == 1

    async def list_interims(
        self,
        job_id: str,
        *,
        attempt: int | None = None,
        after: PartKey | None = None,
        limit: int | None = None,
    ) -> list[Interim]:
        rows = await self._parts("interims", "idx", "data", job_id, attempt, after, limit)
        return [Interim(attempt=r[0], index=r[1], data=r[2]) for r in rows]

    async def last_interim(self, job_id: str, *, attempt: int | None = None) -> Interim | None:
        rows = await self._parts("interims", "idx", "data", job_id, attempt, None, 1, newest=True)
        return Interim(attempt=rows[0][0], index=rows[0][1], data=rows[0][2]) if rows else None

    async def set_result(self, job_id: str, data: str) -> bool:
        return await self._write(_INSERT_RESULT, (job_id, data)) == 1

    async def get_result(self, job_id: str) -> str | None:
        # In the reader's thread: a result may be tens of megabytes.
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
        # Asked for every job (most of which run bundled programs, absent here): a lookup.
        sql = "SELECT digest, archive FROM programs WHERE id = ?"
        rows = await self._look_up(sql, (program_id,))
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

    async def purge(
        self,
        *,
        ended_before: datetime | None,
        logs_before: datetime | None,
        keys_before: datetime | None = None,
    ) -> int:
        purged = 0
        if ended_before is not None:
            purged = await self._delete_jobs("ended < ?", (_sortable(ended_before),))
        if logs_before is not None:
            # A scan that may delete any number of rows: in the writer's thread, off the loop.
            sql, args = "DELETE FROM logs WHERE written < ?", (epoch_us(logs_before),)
            await self._transact(lambda db: db.execute(sql, args).rowcount)
        if keys_before is not None:
            forget = (
                "UPDATE jobs SET idempotency_key = NULL,"
                " doc = json_set(doc, '$.idempotency_key', NULL)"
                " WHERE idempotency_key IS NOT NULL AND created < ?"
            )
            cutoff = (_sortable(keys_before),)
            await self._transact(lambda db: db.execute(forget, cutoff).rowcount)
        return purged

    async def set_job_tags(self, job_id: str, tags: Sequence[str]) -> bool:
        sql = "UPDATE jobs SET doc = json_set(doc, '$.tags', json(?)) WHERE id = ?"
        return await self._write(sql, (json.dumps(list(tags)), job_id)) == 1

    # accounts

    async def _insert_new(self, sql: str, args: tuple[Any, ...], what: str) -> None:
        try:
            await self._write(sql, args)
        except sqlite3.IntegrityError:
            raise AccountExists(f"{what} exists already") from None

    async def add_user(self, user: User) -> None:
        sql = "INSERT INTO users (name, admin, created) VALUES (?, ?, ?)"
        args = (user.name, int(user.admin), _sortable(user.created))
        await self._insert_new(sql, args, f"user {user.name!r}")

    async def get_user(self, name: str) -> User | None:
        rows = await self._look_up("SELECT name, admin, created FROM users WHERE name = ?", (name,))
        return _user(rows[0]) if rows else None

    async def list_users(self) -> list[User]:
        rows = await self._read("SELECT name, admin, created FROM users ORDER BY name")
        return [_user(row) for row in rows]

    async def set_admin(self, name: str, admin: bool) -> bool:
        sql = "UPDATE users SET admin = ? WHERE name = ?"
        return await self._write(sql, (int(admin), name)) == 1

    async def delete_user(self, name: str) -> bool:
        def delete(db: sqlite3.Connection) -> int:
            db.execute("DELETE FROM api_keys WHERE user = ?", (name,))
            db.execute("DELETE FROM members WHERE user = ?", (name,))
            return int(db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount)

        return int(await self._transact(delete)) == 1

    async def add_key(self, key: ApiKey) -> None:
        sql = (
            "INSERT INTO api_keys (id, user, digest, created, expires, revoked, last_used, label)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        args = (
            key.id,
            key.user,
            key.digest,
            _sortable(key.created),
            _maybe_sortable(key.expires),
            _maybe_sortable(key.revoked),
            _maybe_sortable(key.last_used),
            key.label,
        )
        await self._insert_new(sql, args, f"key {key.id}")

    async def get_key(self, key_id: str) -> ApiKey | None:
        rows = await self._look_up(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE id = ?", (key_id,))
        return _key(rows[0]) if rows else None

    async def list_keys(self, user: str | None = None) -> list[ApiKey]:
        sql = f"SELECT {_KEY_COLUMNS} FROM api_keys"
        args: tuple[Any, ...] = ()
        if user is not None:
            sql, args = sql + " WHERE user = ?", (user,)
        rows = await self._read(sql + " ORDER BY created, id", args)
        return [_key(row) for row in rows]

    async def revoke_key(self, key_id: str, at: datetime) -> bool:
        sql = "UPDATE api_keys SET revoked = coalesce(revoked, ?) WHERE id = ?"
        return await self._write(sql, (_sortable(at), key_id)) == 1

    async def key_used(self, key_id: str, at: datetime) -> None:
        await self._write("UPDATE api_keys SET last_used = ? WHERE id = ?", (_sortable(at), key_id))

    async def add_instance(self, instance: Instance) -> None:
        sql = "INSERT INTO instances (name, created) VALUES (?, ?)"
        args = (instance.name, _sortable(instance.created))
        await self._insert_new(sql, args, f"instance {instance.name!r}")

    async def get_instance(self, name: str) -> Instance | None:
        sql = f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE name = ?"
        rows = await self._look_up(sql, (name,))
        return _instance(rows[0]) if rows else None

    async def list_instances(self) -> list[Instance]:
        rows = await self._read(f"SELECT {_INSTANCE_COLUMNS} FROM instances ORDER BY name")
        return [_instance(row) for row in rows]

    async def delete_instance(self, name: str) -> bool:
        def delete(db: sqlite3.Connection) -> int:
            db.execute("DELETE FROM members WHERE instance = ?", (name,))
            return int(db.execute("DELETE FROM instances WHERE name = ?", (name,)).rowcount)

        return int(await self._transact(delete)) == 1

    async def set_role(self, instance: str, user: str, role: Role) -> None:
        sql = "INSERT OR REPLACE INTO members (instance, user, role) VALUES (?, ?, ?)"
        await self._write(sql, (instance, user, role.value))

    async def remove_member(self, instance: str, user: str) -> bool:
        sql = "DELETE FROM members WHERE instance = ? AND user = ?"
        return await self._write(sql, (instance, user)) == 1

    async def memberships(
        self, *, user: str | None = None, instance: str | None = None
    ) -> list[Membership]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("user", user), ("instance", instance)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT instance, user, role FROM members"
        if where:
            sql += " WHERE " + " AND ".join(where)
        # By key, on the loop's connection: asked on every authenticated request.
        rows = await self._look_up(sql + " ORDER BY instance, user", args)
        return [Membership(row[0], row[1], Role(row[2])) for row in rows]

    # sessions and timelines

    async def add_session(self, session: Session) -> None:
        doc = json.dumps(session_to_dict(session))
        await self._write("INSERT INTO sessions (id, doc) VALUES (?, ?)", (session.id, doc))

    async def get_session(self, session_id: str) -> Session | None:
        rows = await self._look_up("SELECT doc FROM sessions WHERE id = ?", (session_id,))
        return session_from_dict(json.loads(rows[0][0])) if rows else None

    async def replace_session(self, session: Session) -> bool:
        doc = json.dumps(session_to_dict(session))
        sql = "UPDATE sessions SET doc = ? WHERE id = ?"
        return await self._write(sql, (doc, session.id)) == 1

    async def session_job_times(self, session_id: str) -> list[JobTimes]:
        sql = (
            "SELECT status, json_extract(doc, '$.started'), json_extract(doc, '$.ended')"
            " FROM jobs WHERE session_id = ?"
        )
        rows = await self._read(sql, (session_id,))
        return [JobTimes(JobStatus(r[0]), from_iso(r[1]), from_iso(r[2])) for r in rows]

    async def add_stage(self, job_id: str, record: StageRecord) -> bool:
        return await self._write(_INSERT_STAGE, _stage_row(job_id, record)) == 1

    async def job_stages(self, job_id: str) -> list[StageRecord]:
        sql = (
            "SELECT attempt, stage, at_us, executor_id, detail FROM stages WHERE job_id = ?"
            " ORDER BY at_us, attempt"
        )
        rows = await self._read(sql, (job_id,))
        names = ("attempt", "stage", "at_us", "executor_id", "detail")
        return [stage_from_dict(dict(zip(names, row, strict=True))) for row in rows]

    async def set_instance_limits(
        self, name: str, *, max_active_jobs: int | None, submits_per_minute: int | None
    ) -> bool:
        sql = "UPDATE instances SET max_active_jobs = ?, submits_per_minute = ? WHERE name = ?"
        return await self._write(sql, (max_active_jobs, submits_per_minute, name)) == 1

    async def job_with_idempotency_key(self, key: str) -> Job | None:
        rows = await self._look_up(f"{_SELECT_JOB} WHERE idempotency_key = ?", (key,))
        return _job(rows[0]) if rows else None

    async def active_jobs_of(self, submitter: str | None) -> int:
        # The status index narrows to the active jobs, which the caps keep few.
        sql = (
            "SELECT count(*) FROM jobs WHERE status IN (?, ?)"
            " AND json_extract(doc, '$.submitter') IS ?"
        )
        rows = await self._look_up(sql, (*_ACTIVE, submitter))
        return int(rows[0][0])

    async def active_jobs_in(self, instance: str) -> int:
        hub, group, project = instance.split("/", 2)
        sql = (
            "SELECT count(*) FROM jobs WHERE status IN (?, ?) AND hub = ? AND grp = ?"
            " AND project = ?"
        )
        rows = await self._look_up(sql, (*_ACTIVE, hub, group, project))
        return int(rows[0][0])


_ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
_JSON = msgspec.json.Encoder()
_SELECT_JOB = "SELECT doc, params FROM jobs JOIN job_params ON job_params.job_id = jobs.id"
"""A job's row and its params: `_job`'s two columns (a WHERE clause follows)."""
_INSERT_LOG = (
    "INSERT OR IGNORE INTO logs (job_id, attempt, seq, text, written) VALUES (?, ?, ?, ?, ?)"
)
_INSERT_INTERIM = "INSERT OR IGNORE INTO interims (job_id, attempt, idx, data) VALUES (?, ?, ?, ?)"
_INSERT_RESULT = "INSERT OR IGNORE INTO results (job_id, data) VALUES (?, ?)"
_REPLACE_JOB = "UPDATE jobs SET status = ?, ended = ?, doc = ? WHERE id = ? AND status = ?"
_INSERT_STAGE = (
    "INSERT OR IGNORE INTO stages (job_id, attempt, stage, at_us, executor_id, detail)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


def _job_doc(job: Job) -> str:
    """The `doc` column of `job`: all of it but its params, which `job_params` holds."""
    doc = job_to_dict(job)
    del doc["params"]
    try:
        # msgspec's encoder: a job is written on each of its changes, and json.dumps took a
        # tenth of a no-op job's CPU in this process.
        return _JSON.encode(doc).decode()
    except UnicodeEncodeError:  # a lone surrogate (say, in a reason), which json escapes
        return json.dumps(doc)


def _job(row: Any) -> Job:
    """The job of a row (doc, params)."""
    try:
        doc = msgspec.json.decode(row[0])
    except msgspec.DecodeError:  # an escaped lone surrogate, as json.dumps writes one
        doc = json.loads(row[0])
    doc["params"] = row[1]
    return job_from_dict(doc)


def _step_row(job_id: str, step: JobStep) -> tuple[str, tuple[Any, ...]]:
    """The statement of `step` (a ReplaceJob's stage aside) and its arguments."""
    if isinstance(step, ReplaceJob):
        job = step.job
        ended = None if job.ended is None else _sortable(job.ended)
        return _REPLACE_JOB, (job.status.value, ended, _job_doc(job), job.id, step.expected.value)
    if isinstance(step, AddStage):
        return _INSERT_STAGE, _stage_row(job_id, step.record)
    if isinstance(step, AppendLog):
        return _INSERT_LOG, (job_id, step.attempt, step.seq, step.text, epoch_us(utcnow()))
    if isinstance(step, AddInterim):
        return _INSERT_INTERIM, (job_id, step.attempt, step.index, step.data)
    return _INSERT_RESULT, (job_id, step.data)


def _stage_row(job_id: str, record: StageRecord) -> tuple[Any, ...]:
    return (job_id, record.attempt, record.stage.value, record.at_us, record.executor_id,
            record.detail)  # fmt: skip


_INSTANCE_COLUMNS = "name, created, max_active_jobs, submits_per_minute"
_KEY_COLUMNS = "id, user, digest, created, expires, revoked, last_used, label"


def _instance(row: Any) -> Instance:
    return Instance(row[0], datetime.fromisoformat(row[1]), row[2], row[3])


def _user(row: Any) -> User:
    return User(row[0], bool(row[1]), datetime.fromisoformat(row[2]))


def _key(row: Any) -> ApiKey:
    times = [None if value is None else datetime.fromisoformat(value) for value in row[3:7]]
    created, expires, revoked, last_used = times
    assert created is not None
    return ApiKey(row[0], row[1], row[2], created, expires, revoked, last_used, row[7])


def _maybe_sortable(value: datetime | None) -> str | None:
    return None if value is None else _sortable(value)


def _program_columns(program: Program, archive: ProgramArchive | None) -> tuple[Any, ...]:
    """The columns of a `programs` row but its id (digest and archive None without `archive`)."""
    if archive is not None:
        program = dataclasses.replace(program, digest=archive.digest)
    doc = json.dumps(program_to_dict(program))
    digest, data = (None, None) if archive is None else (archive.digest, archive.data)
    return (program.owner, program.name, int(program.is_public), doc, digest, data)


_CANNOT_WRITE = {
    sqlite3.SQLITE_FULL: "the disk is full",
    sqlite3.SQLITE_IOERR: "the disk failed to read or write",
    sqlite3.SQLITE_READONLY: "the file or its file system is read-only",
    sqlite3.SQLITE_CANTOPEN: "the file cannot be opened",
}
"""SQLite's primary result codes that say the file cannot be written now, whatever the
statement (the extended codes, such as SQLITE_IOERR_WRITE, carry these in their low byte)."""
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}


def _cannot_write(error: BaseException) -> str | None:
    """Why `error` says the store cannot write now (with SQLite's own words), or None."""
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        reason = _CANNOT_WRITE.get(code & 0xFF) if isinstance(code, int) else None
        return f"{reason} ({error})" if reason else None
    if isinstance(error, OSError) and error.errno in _NO_SPACE:
        return f"{os.strerror(error.errno)} ({error})"
    return None


def _unreadable(error: sqlite3.Error, path: Path) -> StoreUnavailable | None:
    """The StoreUnavailable a read's `error` means when the file cannot be used (I/O)."""
    reason = _cannot_write(error)
    return None if reason is None else StoreUnavailable(f"the store cannot read {path}: {reason}")


def _is_busy(error: sqlite3.OperationalError) -> bool:
    """Whether `error` means another connection holds a lock the statement needed."""
    return error.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _size(args: tuple[Any, ...]) -> int:
    """The length of a statement's text and bytes arguments."""
    return sum(len(a) for a in args if isinstance(a, str | bytes))


def _checkpoint(db: sqlite3.Connection) -> None:
    # PASSIVE: copies what no reader still needs, without waiting for anyone.
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _sortable(value: datetime) -> str:
    """`value` as UTC ISO text with microseconds, so text order is time order."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the file to SCHEMA_VERSION, or refuse a file from a newer qrt."""
    # IMMEDIATE: a second process opening the same file waits, then sees the new version.
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        rows = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        version = int(rows[0][0]) if rows else 0
        if version > SCHEMA_VERSION:
            raise StoreSetupError(
                f"{path} holds schema {version}, newer than this qrt's {SCHEMA_VERSION}:"
                " upgrade qrt"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            # executescript would commit the open transaction: run statement by statement.
            for statement in filter(str.strip, MIGRATIONS[step].split(";")):
                db.execute(statement)
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(max(version, SCHEMA_VERSION)),),
        )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _commit(db: sqlite3.Connection, statements: list[Statement]) -> list[Any]:
    """Run `statements` in one transaction; each one's result, or the exception it raised.

    Each runs inside a savepoint, so a failing one (a constraint, say) undoes only itself.
    """
    outcomes: list[Any] = []
    db.execute("BEGIN IMMEDIATE")
    try:
        for statement in statements:
            db.execute("SAVEPOINT statement")
            try:
                outcomes.append(statement(db))
            except Exception as exc:  # its own caller's to handle
                db.execute("ROLLBACK TO statement")
                outcomes.append(exc)
            db.execute("RELEASE statement")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return outcomes


def _commit_one(db: sqlite3.Connection, statement: Statement) -> Any:
    """Run `statement` in a transaction of its own; what it returns. What it raises undoes it
    all and is raised (`_commit`'s savepoints are for statements that share a transaction)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        outcome = statement(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return outcome


def _make_private(path: Path) -> None:
    """Make the database's directory (mode 0700) and file (0600) where they are not there yet:
    the file holds every job's params and results and the API keys' digests, and SQLite makes
    its `-wal` and `-shm` files with the database file's mode. Existing ones keep theirs."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _connect(
    path: Path, busy_timeout: int = 10_000, checkpoints: bool = True
) -> sqlite3.Connection:
    # Autocommit (isolation_level None): transactions are begun explicitly, IMMEDIATE, so a
    # writer waits for the lock (busy_timeout, in ms) up front instead of failing at once with
    # "database is locked" when it upgrades a read to a write.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        # WAL with synchronous=NORMAL survives a crash of the process without an fsync per
        # write; several processes may share the file and wait for each other's locks.
        pragmas = ["journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={busy_timeout}"]
        if not checkpoints:
            pragmas.append("wal_autocheckpoint=0")
        for pragma in pragmas:
            db.execute(f"PRAGMA {pragma}").fetchall()
    except BaseException:
        db.close()
        raise
    return db


class _Connection:
    """A sqlite3 connection used from one thread of its own."""

    def __init__(self, db: sqlite3.Connection, thread: ThreadPoolExecutor) -> None:
        self._db = db
        self._thread = thread

    @classmethod
    async def open(cls, path: Path, name: str) -> _Connection:
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        try:
            db = await asyncio.get_running_loop().run_in_executor(thread, _connect, path)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        return cls(db, thread)

    async def run(self, work: Callable[..., Any], *args: Any) -> Any:
        """`work(db, *args)` in the connection's thread; raises StoreUnavailable when another
        process held the file's lock for the whole busy timeout (say, one that was frozen
        mid-write)."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, work, self._db, *args)
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            raise StoreUnavailable(
                f"the SQLite file stays locked by another process: {exc}"
            ) from exc

    async def close(self) -> None:
        await self.run(lambda db: db.close())
        self._thread.shutdown(wait=True)
