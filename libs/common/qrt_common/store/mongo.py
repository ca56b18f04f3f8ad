"""The production job store: MongoDB through PyMongo's asyncio API.

Collections (all in the URL's database, `qrt` when the URL names none):

- `jobs`: one document per job, `_id` = job id; the job's fields as `job_to_dict` gives them (exact
  timestamps as ISO text), plus `created_us` / `ended_us` (epoch microseconds) for sorting, ranges
  and retention, and `schema`, the layout version that wrote it.
- `logs` and `interims`: one document per log chunk / interim result, unique on (job, attempt, seq),
  so a job's output never grows one document.
- `results`: one document per final result, `_id` = job id; the text inline when it fits a
  document comfortably, else the id of a GridFS file in the `results` bucket (`results.files`,
  `results.chunks`).
- `programs`: one document per uploaded program, `_id` = program id; its fields as
  `program_to_dict` gives them, its zip archive (`archive`, binary; `QRT_MAX_PROGRAM_BYTES` keeps it
  well under a document's 16 MiB), unique on (owner, name).
- `users` (`_id` = name), `api_keys` (`_id` = key id; the key's HMAC digest, never the key),
  `instances` (`_id` = hub/group/project) and `members` (unique on instance and user).
- `sessions` (`_id` = session id; the session's fields as `session_to_dict` gives them) and
  `stages` (one document per job timeline entry, unique on job, attempt, stage and time).
- `meta`: `{"_id": "schema", "version": n}`, moved forward by the start-up migrations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import (
    AutoReconnect,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
)

from ..accounts import (
    ApiKey,
    Instance,
    Membership,
    Role,
    User,
    key_from_dict,
    key_to_dict,
    user_from_dict,
    user_to_dict,
)
from ..archives import ProgramArchive
from ..errors import AccountExists, ProgramNameTaken, StoreSetupError, StoreUnavailable
from ..jobs import Job, JobStatus, epoch_us, from_iso, job_from_dict, job_to_dict
from ..programs import Program, program_from_dict, program_to_dict
from ..retry import Backoff
from ..sessions import JobTimes, Session, session_from_dict, session_to_dict
from ..timeline import StageRecord, stage_from_dict, stage_to_dict
from .base import Interim, JobQuery, JobStore, LogChunk, PartKey, WriteHealth

SCHEMA_VERSION = 5
"""The layout this code writes; `meta.schema` says which layout the database holds."""

INLINE_RESULT_BYTES = 8 * 1024 * 1024
"""Results up to this size live in their `results` document (MongoDB caps documents at 16 MiB)."""

GRIDFS_CHUNK_BYTES = 255 * 1024
"""GridFS's default chunk size."""

RESULTS_BUCKET = "results"

CANNOT_WRITE_CODES = {
    14031: "the disk is full (OutOfDiskSpace)",
    64: "the write concern failed",
    100: "the write concern cannot be satisfied",
    50: "the operation ran out of time",
    262: "the operation ran out of time",
    24: "a lock timed out",
    46: "a lock is busy",
    112: "a write conflicted with another",
    91: "the server is shutting down",
    11600: "the server is shutting down",
    11602: "the replica set is changing its primary",
    189: "the primary stepped down",
    10107: "the server is no longer the primary",
    13435: "the server is no longer the primary",
    13436: "the server is no longer the primary",
}
"""MongoDB error codes that say the database cannot take writes now, whatever they write."""

_TRANSIENT_RETRIES = Backoff(0.1, 1.0, factor=3.0, tries=3)
"""Pauses (0.1, 0.3, 0.9 s) before each retry of an operation that met a transient error (a
primary stepping down, a dropped connection); the operation then fails as StoreUnavailable."""

logger = logging.getLogger("qrt.store")

Document = dict[str, Any]
T = TypeVar("T")


def _job_document(job: Job) -> Document:
    doc = job_to_dict(job)
    doc.update(
        _id=doc.pop("id"),
        schema=SCHEMA_VERSION,
        created_us=epoch_us(job.created),
        ended_us=None if job.ended is None else epoch_us(job.ended),
    )
    return doc


def _job_from_document(doc: Mapping[str, Any], params: str | None = None) -> Job:
    """The job of `doc`; with `params`, a document read without them (a projection)."""
    if params is None:
        return job_from_dict({**doc, "id": doc["_id"]})
    return job_from_dict({**doc, "id": doc["_id"], "params": params})


def _program_document(program: Program, archive: ProgramArchive | None) -> Document:
    """The document of `program`, with `archive` (and its digest) when one is given."""
    if archive is not None:
        program = replace(program, digest=archive.digest)
    doc = program_to_dict(program)
    doc.update(_id=doc.pop("id"), schema=SCHEMA_VERSION)
    if archive is not None:
        doc["archive"] = archive.data
    return doc


def _program_from_document(doc: Mapping[str, Any]) -> Program:
    return program_from_dict({**doc, "id": doc["_id"]})


Migration = Callable[[AsyncDatabase[Document]], Awaitable[None]]


async def _create_indexes(db: AsyncDatabase[Document]) -> None:
    """Schema 1: the indexes behind every query the API and the scheduler make."""
    jobs = db["jobs"]
    newest = ("created_us", DESCENDING)
    await jobs.create_index([newest, ("_id", ASCENDING)], name="by_created")
    await jobs.create_index([("status", ASCENDING), newest], name="by_status")
    await jobs.create_index([("program_id", ASCENDING), newest], name="by_program")
    await jobs.create_index(
        [("hub", ASCENDING), ("group", ASCENDING), ("project", ASCENDING), newest],
        name="by_instance",
    )
    await jobs.create_index([("backend", ASCENDING), newest], name="by_backend")
    await jobs.create_index([("tags", ASCENDING), newest], name="by_tags")
    await jobs.create_index([("session_id", ASCENDING), newest], name="by_session", sparse=True)
    await jobs.create_index([("ended_us", ASCENDING)], name="by_ended", sparse=True)
    for name in ("logs", "interims"):
        await db[name].create_index(
            [("job_id", ASCENDING), ("attempt", ASCENDING), ("seq", ASCENDING)],
            name="by_job",
            unique=True,
        )
    await db["logs"].create_index([("created_us", ASCENDING)], name="by_created")
    files, chunks = db[f"{RESULTS_BUCKET}.files"], db[f"{RESULTS_BUCKET}.chunks"]
    # The indexes the GridFS specification asks for, plus one to find a job's files.
    await files.create_index([("filename", ASCENDING), ("uploadDate", ASCENDING)])
    await files.create_index([("metadata.job_id", ASCENDING)], name="by_job")
    await chunks.create_index([("files_id", ASCENDING), ("n", ASCENDING)], unique=True)


async def _create_program_indexes(db: AsyncDatabase[Document]) -> None:
    """Schema 2: uploaded programs, found by id (`_id`), by owner and name, and public ones."""
    programs = db["programs"]
    await programs.create_index(
        [("owner", ASCENDING), ("name", ASCENDING)], name="by_owner", unique=True
    )
    await programs.create_index([("is_public", ASCENDING), ("name", ASCENDING)], name="public")


async def _create_idempotency_index(db: AsyncDatabase[Document]) -> None:
    """Schema 3: a job's idempotency key, unique while it is kept (null once forgotten)."""
    await db["jobs"].create_index(
        [("idempotency_key", ASCENDING)],
        name="by_idempotency_key",
        unique=True,
        partialFilterExpression={"idempotency_key": {"$type": "string"}},
    )


async def _create_account_indexes(db: AsyncDatabase[Document]) -> None:
    """Schema 4: accounts; keys by user, memberships unique per instance and user, and by user."""
    await db["api_keys"].create_index([("user", ASCENDING), ("created", ASCENDING)], name="by_user")
    members = db["members"]
    await members.create_index(
        [("instance", ASCENDING), ("user", ASCENDING)], name="by_instance", unique=True
    )
    await members.create_index([("user", ASCENDING), ("instance", ASCENDING)], name="by_user")


async def _create_stage_indexes(db: AsyncDatabase[Document]) -> None:
    """Schema 5: job timelines, one entry per (job, attempt, stage, time)."""
    await db["stages"].create_index(
        [("job_id", ASCENDING), ("attempt", ASCENDING), ("stage", ASCENDING), ("at_us", ASCENDING)],
        name="by_job",
        unique=True,
    )


MIGRATIONS: dict[int, Migration] = {
    1: _create_indexes,
    2: _create_program_indexes,
    3: _create_idempotency_index,
    4: _create_account_indexes,
    5: _create_stage_indexes,
}
"""Step `n` brings a database from schema `n - 1` to `n`; every step is idempotent, so two
services starting together may both run it."""


class MongoStore(JobStore):
    """A JobStore in MongoDB; every job write is a single-document compare-and-set or insert."""

    def __init__(
        self,
        url: str,
        *,
        client: Any = None,
        inline_result_bytes: int = INLINE_RESULT_BYTES,
        timeout: float = 5.0,
    ) -> None:
        """`client` replaces the AsyncMongoClient the URL would make (tests pass a double)."""
        self.url = url
        self.inline_result_bytes = inline_result_bytes
        self._client: Any = client or AsyncMongoClient(
            url, tz_aware=True, serverSelectionTimeoutMS=int(timeout * 1000)
        )
        self._owns_client = client is None
        self._db: Any = self._client[urlsplit(url).path.strip("/") or "qrt"]
        self._timeout = timeout
        self._opened = False
        self._health = WriteHealth()

    async def open(self) -> None:
        version = await self._retrying(self._schema_version)
        if version > SCHEMA_VERSION:
            raise StoreSetupError(
                f"the database holds schema {version}, newer than this qrt's {SCHEMA_VERSION}:"
                " upgrade qrt"
            )
        for step in range(version + 1, SCHEMA_VERSION + 1):
            logger.info("migrating the store to schema %d", step)
            await self._retrying(partial(MIGRATIONS[step], self._db))
            await self._retrying(partial(self._set_schema_version, step))
        self._opened = True

    async def close(self) -> None:
        self._opened = False
        if self._owns_client:
            await self._client.close()

    async def is_ready(self) -> bool:
        """True when MongoDB answers and no write failed because it could not write (a full
        disk) since the last one that worked."""
        if not self._opened:
            return False
        try:
            await asyncio.wait_for(self._client.admin.command("ping"), self._timeout)
        except (PyMongoError, TimeoutError):
            return False
        return self._health.failure is None

    async def _schema_version(self) -> int:
        doc = await self._db["meta"].find_one({"_id": "schema"})
        return int(doc["version"]) if doc else 0

    async def _set_schema_version(self, version: int) -> None:
        await self._db["meta"].update_one(
            {"_id": "schema"}, {"$max": {"version": version}}, upsert=True
        )

    async def _retrying(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation`, again after a transient error; StoreUnavailable once retries run out.

        Only idempotent operations come here: inserts keyed on their identity, compare-and-sets
        and deletes.
        """
        for pause in (*_TRANSIENT_RETRIES, None):
            try:
                return await operation()
            except ServerSelectionTimeoutError as exc:
                # The driver has waited its whole timeout for a server already.
                raise StoreUnavailable(f"MongoDB is unreachable: {exc}") from exc
            except AutoReconnect as exc:  # a dropped connection, NotPrimary, NetworkTimeout
                if pause is None:
                    raise StoreUnavailable(f"MongoDB: {exc}") from exc
                logger.warning("store operation failed, retrying in %.1f s: %s", pause, exc)
                await asyncio.sleep(pause)
            except (OperationFailure, WriteConcernError) as exc:
                reason = _cannot_write(exc)
                if reason is None:
                    raise  # about what was written (a duplicate key): the caller's
                self._health.failed(reason)
                raise StoreUnavailable(f"MongoDB cannot write: {reason} ({exc})") from exc
        raise AssertionError("unreachable")

    def _collection(self, name: str) -> Any:
        if not self._opened:
            raise StoreUnavailable("the store is not open yet (waiting for MongoDB)")
        return self._db[name]

    async def _insert_once(self, name: str, key: Document, doc: Document) -> bool:
        """Insert `doc` unless a document matches `key` (its unique fields); True if inserted.

        A retry after a lost acknowledgement finds its own first try in place: that still
        counts as inserted when the stored document is the one we meant to write.
        """
        collection = self._collection(name)
        tries = 0

        async def insert() -> bool:
            nonlocal tries
            tries += 1
            outcome = await collection.update_one(key, {"$setOnInsert": doc}, upsert=True)
            self._health.succeeded()
            if outcome.upserted_id is not None or tries == 1:
                return outcome.upserted_id is not None
            stored = await collection.find_one(key)
            return stored is not None and all(stored.get(k) == v for k, v in doc.items())

        return bool(await self._retrying(insert))

    # jobs

    async def add_job(self, job: Job) -> Job:
        jobs = self._collection("jobs")
        for _ in range(2):
            try:
                await self._insert_once("jobs", {"_id": job.id}, _job_document(job))
                return job
            except DuplicateKeyError:
                if job.idempotency_key is None:
                    raise
            where = {"idempotency_key": job.idempotency_key}
            doc = await self._retrying(partial(jobs.find_one, where))
            if doc is not None:
                return _job_from_document(doc)
        # The job holding the key was deleted twice while this one looked it up.
        raise StoreUnavailable(f"job {job.id} could not be stored: its key kept changing hands")

    async def get_job(self, job_id: str) -> Job | None:
        jobs = self._collection("jobs")
        doc = await self._retrying(partial(jobs.find_one, {"_id": job_id}))
        return None if doc is None else _job_from_document(doc)

    async def list_jobs(self, query: JobQuery) -> tuple[list[Job], int]:
        jobs = self._collection("jobs")
        if query.instances is not None and not query.instances:
            return [], 0
        where = _job_filter(query)
        total = int(await self._retrying(partial(jobs.count_documents, where)))
        if query.offset >= total:
            return [], total

        async def page() -> list[Document]:
            # Without params a listing leaves them in the database: megabytes a job, maybe.
            projection = None if query.with_params else {"params": False}
            cursor = (
                jobs.find(where, projection)
                .sort(
                    [
                        ("created_us", ASCENDING if query.oldest_first else DESCENDING),
                        ("_id", ASCENDING),
                    ]
                )
                .skip(query.offset)
                .limit(query.limit)
            )
            return list(await cursor.to_list(length=query.limit))

        params = None if query.with_params else ""
        return [_job_from_document(doc, params) for doc in await self._retrying(page)], total

    async def replace_job(
        self, job: Job, *, expected: JobStatus, stage: StageRecord | None = None
    ) -> bool:
        jobs = self._collection("jobs")
        fields = _job_document(job)
        del fields["_id"], fields["params"]  # set once, by add_job
        tries = 0

        async def compare_and_set() -> bool:
            nonlocal tries
            tries += 1
            before = await jobs.find_one_and_update(
                {"_id": job.id, "status": expected.value},
                {"$set": fields},
                projection={"_id": True},
                return_document=ReturnDocument.BEFORE,
            )
            self._health.succeeded()
            if before is not None or tries == 1:
                return before is not None
            # A retry whose first try landed: the job is now exactly what we wrote.
            now = await jobs.find_one({"_id": job.id}, projection={"params": False})
            return now is not None and _job_from_document(now, job.params) == job

        if not await self._retrying(compare_and_set):
            return False
        if stage is not None:
            try:
                await self.add_stage(job.id, stage)
            except Exception as exc:  # the timeline loses its entry, never the change
                where = {"job_id": job.id, "stage": stage.stage.value}
                logger.warning("timeline entry not stored: %s", exc, extra=where)
        return True

    async def delete_job(self, job_id: str) -> bool:
        jobs = self._collection("jobs")
        # The job document goes first, so a crash half-way leaves no visible job with missing
        # parts; the leftovers go with the next delete of the same id.
        deleted = await self._retrying(partial(jobs.delete_one, {"_id": job_id}))
        await self._delete_parts([job_id])
        return bool(deleted.deleted_count)

    async def _delete_parts(self, job_ids: list[str]) -> None:
        ids = {"$in": job_ids}
        for name in ("logs", "interims", "stages"):
            await self._retrying(partial(self._collection(name).delete_many, {"job_id": ids}))
        await self._retrying(partial(self._collection("results").delete_many, {"_id": ids}))
        await self._delete_files({"metadata.job_id": ids})

    # logs and interim results

    async def append_log(self, job_id: str, attempt: int, seq: int, text: str) -> bool:
        key = {"job_id": job_id, "attempt": attempt, "seq": seq}
        doc = {**key, "text": text, "created_us": epoch_us(datetime.now(UTC))}
        return await self._insert_once("logs", key, doc)

    async def log_chunks(
        self,
        job_id: str,
        *,
        attempt: int | None = None,
        after: PartKey | None = None,
        limit: int | None = None,
    ) -> list[LogChunk]:
        docs = await self._sorted_parts("logs", job_id, attempt, after, limit)
        return [LogChunk(attempt=d["attempt"], seq=d["seq"], text=d["text"]) for d in docs]

    async def add_interim(self, job_id: str, attempt: int, index: int, data: str) -> bool:
        key = {"job_id": job_id, "attempt": attempt, "seq": index}
        return await self._insert_once("interims", key, {**key, "data": data})

    async def list_interims(
        self,
        job_id: str,
        *,
        attempt: int | None = None,
        after: PartKey | None = None,
        limit: int | None = None,
    ) -> list[Interim]:
        docs = await self._sorted_parts("interims", job_id, attempt, after, limit)
        return [Interim(attempt=d["attempt"], index=d["seq"], data=d["data"]) for d in docs]

    async def last_interim(self, job_id: str, *, attempt: int | None = None) -> Interim | None:
        docs = await self._sorted_parts("interims", job_id, attempt, None, 1, newest=True)
        return Interim(docs[0]["attempt"], docs[0]["seq"], docs[0]["data"]) if docs else None

    async def _sorted_parts(
        self,
        name: str,
        job_id: str,
        attempt: int | None,
        after: PartKey | None,
        limit: int | None,
        *,
        newest: bool = False,
    ) -> list[Document]:
        collection = self._collection(name)
        where: Document = {"job_id": job_id}
        if attempt is not None:
            where["attempt"] = attempt
        if after is not None:
            later, seq = after
            where["$or"] = [{"attempt": {"$gt": later}}, {"attempt": later, "seq": {"$gt": seq}}]
        order = DESCENDING if newest else ASCENDING

        async def read() -> list[Document]:
            cursor = collection.find(where, {"_id": False}).sort(
                [("attempt", order), ("seq", order)]
            )
            if limit is not None:
                cursor = cursor.limit(limit)
            return list(await cursor.to_list(length=limit))

        return await self._retrying(read)

    # final results

    async def set_result(self, job_id: str, data: str) -> bool:
        encoded = data.encode()
        if len(encoded) <= self.inline_result_bytes:
            return await self._insert_once("results", {"_id": job_id}, {"data": data})
        results = self._collection("results")
        if await self._retrying(partial(results.find_one, {"_id": job_id}, {"_id": True})):
            return False  # the first result is in; spare writing a file only to delete it
        file_id = await self._write_file(job_id, encoded)
        if await self._insert_once("results", {"_id": job_id}, {"file_id": file_id}):
            return True
        await self._delete_files({"_id": file_id})  # another writer's result came first
        return False

    async def get_result(self, job_id: str) -> str | None:
        results = self._collection("results")
        doc = await self._retrying(partial(results.find_one, {"_id": job_id}))
        if doc is None:
            return None
        if "file_id" in doc:
            return (await self._read_file(doc["file_id"])).decode()
        return str(doc["data"])

    # GridFS. PyMongo's AsyncGridFSBucket refuses any database but a real AsyncDatabase, so no
    # test double can stand in for it; these three methods write and read the GridFS layout of
    # the specification (files + chunks), which mongofiles and every driver's GridFS API read.
    # The tests against a real server read these files back through AsyncGridFSBucket.

    async def _write_file(self, job_id: str, data: bytes) -> ObjectId:
        file_id = ObjectId()
        for n, start in enumerate(range(0, len(data), GRIDFS_CHUNK_BYTES)):
            key = {"files_id": file_id, "n": n}
            chunk = {**key, "data": data[start : start + GRIDFS_CHUNK_BYTES]}
            await self._insert_once(f"{RESULTS_BUCKET}.chunks", key, chunk)
        # The files document last: a file is complete once it is visible.
        entry = {
            "length": len(data),
            "chunkSize": GRIDFS_CHUNK_BYTES,
            "uploadDate": datetime.now(UTC),
            "filename": f"{job_id}.json",
            "metadata": {"job_id": job_id},
        }
        await self._insert_once(f"{RESULTS_BUCKET}.files", {"_id": file_id}, entry)
        return file_id

    async def _read_file(self, file_id: ObjectId) -> bytes:
        files = self._collection(f"{RESULTS_BUCKET}.files")
        chunks = self._collection(f"{RESULTS_BUCKET}.chunks")
        entry = await self._retrying(partial(files.find_one, {"_id": file_id}))
        if entry is None:
            raise StoreUnavailable(f"result file {file_id} is missing from GridFS")

        async def read_chunks() -> list[Document]:
            cursor = chunks.find({"files_id": file_id}).sort("n", ASCENDING)
            return list(await cursor.to_list(length=None))

        data = b"".join(bytes(chunk["data"]) for chunk in await self._retrying(read_chunks))
        if len(data) != entry["length"]:
            raise StoreUnavailable(f"result file {file_id} is incomplete in GridFS")
        return data

    async def _delete_files(self, where: Document) -> None:
        files = self._collection(f"{RESULTS_BUCKET}.files")
        chunks = self._collection(f"{RESULTS_BUCKET}.chunks")

        async def file_ids() -> list[Any]:
            return [d["_id"] for d in await files.find(where, {"_id": True}).to_list(length=None)]

        ids = await self._retrying(file_ids)
        if ids:
            await self._retrying(partial(files.delete_many, {"_id": {"$in": ids}}))
            await self._retrying(partial(chunks.delete_many, {"files_id": {"$in": ids}}))

    # uploaded programs

    async def add_program(self, program: Program, archive: ProgramArchive) -> None:
        doc = _program_document(program, archive)
        try:
            inserted = await self._insert_once("programs", {"_id": program.id}, doc)
        except DuplicateKeyError as exc:
            raise ProgramNameTaken(str(exc)) from None
        if not inserted:
            raise ProgramNameTaken(f"program id {program.id} is taken")

    async def get_program(self, program_id: str) -> Program | None:
        programs = self._collection("programs")
        find = partial(programs.find_one, {"_id": program_id}, {"archive": False})
        doc = await self._retrying(find)
        return None if doc is None else _program_from_document(doc)

    async def program_archive(self, program_id: str) -> ProgramArchive | None:
        programs = self._collection("programs")
        find = partial(programs.find_one, {"_id": program_id}, {"digest": True, "archive": True})
        doc = await self._retrying(find)
        return None if doc is None else ProgramArchive(doc["digest"], bytes(doc["archive"]))

    async def list_programs(self, owner: str) -> list[Program]:
        programs = self._collection("programs")

        async def read() -> list[Document]:
            cursor = programs.find(
                {"$or": [{"owner": owner}, {"is_public": True}]}, {"archive": False}
            ).sort([("name", ASCENDING), ("_id", ASCENDING)])
            return list(await cursor.to_list(length=None))

        return [_program_from_document(doc) for doc in await self._retrying(read)]

    async def update_program(self, program: Program, archive: ProgramArchive | None = None) -> bool:
        programs = self._collection("programs")
        fields = _program_document(program, archive)
        del fields["_id"]
        update = partial(programs.update_one, {"_id": program.id}, {"$set": fields})
        try:
            outcome = await self._retrying(update)
        except DuplicateKeyError as exc:
            raise ProgramNameTaken(str(exc)) from None
        return bool(outcome.matched_count)

    async def delete_program(self, program_id: str) -> bool:
        programs = self._collection("programs")
        deleted = await self._retrying(partial(programs.delete_one, {"_id": program_id}))
        return bool(deleted.deleted_count)

    # accounts

    async def _insert_new(self, name: str, doc: Document, what: str) -> None:
        try:
            inserted = await self._insert_once(name, {"_id": doc["_id"]}, doc)
        except DuplicateKeyError:
            inserted = False
        if not inserted:
            raise AccountExists(f"{what} exists already")

    async def _find(self, name: str, where: Document, sort: list[tuple[str, int]]) -> list[Any]:
        collection = self._collection(name)

        async def read() -> list[Document]:
            return list(await collection.find(where).sort(sort).to_list(length=None))

        return await self._retrying(read)

    async def add_user(self, user: User) -> None:
        doc = user_to_dict(user)
        doc["_id"] = doc.pop("name")
        await self._insert_new("users", doc, f"user {user.name!r}")

    async def get_user(self, name: str) -> User | None:
        users = self._collection("users")
        doc = await self._retrying(partial(users.find_one, {"_id": name}))
        return None if doc is None else user_from_dict({**doc, "name": doc["_id"]})

    async def list_users(self) -> list[User]:
        docs = await self._find("users", {}, [("_id", ASCENDING)])
        return [user_from_dict({**doc, "name": doc["_id"]}) for doc in docs]

    async def set_admin(self, name: str, admin: bool) -> bool:
        users = self._collection("users")
        update = partial(users.update_one, {"_id": name}, {"$set": {"admin": admin}})
        return bool((await self._retrying(update)).matched_count)

    async def delete_user(self, name: str) -> bool:
        users = self._collection("users")
        deleted = await self._retrying(partial(users.delete_one, {"_id": name}))
        for collection in ("api_keys", "members"):
            delete = partial(self._collection(collection).delete_many, {"user": name})
            await self._retrying(delete)
        return bool(deleted.deleted_count)

    async def add_key(self, key: ApiKey) -> None:
        doc = key_to_dict(key)
        doc["_id"] = doc.pop("id")
        await self._insert_new("api_keys", doc, f"key {key.id}")

    async def get_key(self, key_id: str) -> ApiKey | None:
        keys = self._collection("api_keys")
        doc = await self._retrying(partial(keys.find_one, {"_id": key_id}))
        return None if doc is None else key_from_dict({**doc, "id": doc["_id"]})

    async def list_keys(self, user: str | None = None) -> list[ApiKey]:
        where = {} if user is None else {"user": user}
        docs = await self._find("api_keys", where, [("created", ASCENDING), ("_id", ASCENDING)])
        return [key_from_dict({**doc, "id": doc["_id"]}) for doc in docs]

    async def revoke_key(self, key_id: str, at: datetime) -> bool:
        keys = self._collection("api_keys")
        first = partial(
            keys.update_one, {"_id": key_id, "revoked": None}, {"$set": {"revoked": at.isoformat()}}
        )
        if (await self._retrying(first)).matched_count:
            return True
        return await self._retrying(partial(keys.find_one, {"_id": key_id})) is not None

    async def key_used(self, key_id: str, at: datetime) -> None:
        keys = self._collection("api_keys")
        update = partial(keys.update_one, {"_id": key_id}, {"$set": {"last_used": at.isoformat()}})
        await self._retrying(update)

    async def add_instance(self, instance: Instance) -> None:
        doc = {"_id": instance.name, "created": instance.created.isoformat()}
        await self._insert_new("instances", doc, f"instance {instance.name!r}")

    async def get_instance(self, name: str) -> Instance | None:
        instances = self._collection("instances")
        doc = await self._retrying(partial(instances.find_one, {"_id": name}))
        return None if doc is None else _instance(doc)

    async def list_instances(self) -> list[Instance]:
        docs = await self._find("instances", {}, [("_id", ASCENDING)])
        return [_instance(doc) for doc in docs]

    async def delete_instance(self, name: str) -> bool:
        instances = self._collection("instances")
        deleted = await self._retrying(partial(instances.delete_one, {"_id": name}))
        members = self._collection("members")
        await self._retrying(partial(members.delete_many, {"instance": name}))
        return bool(deleted.deleted_count)

    async def set_role(self, instance: str, user: str, role: Role) -> None:
        members = self._collection("members")
        key = {"instance": instance, "user": user}
        update = partial(members.update_one, key, {"$set": {"role": role.value}}, upsert=True)
        try:
            await self._retrying(update)
        except DuplicateKeyError:  # two upserts raced: the other inserted, this one updates
            await self._retrying(update)

    async def remove_member(self, instance: str, user: str) -> bool:
        members = self._collection("members")
        delete = partial(members.delete_one, {"instance": instance, "user": user})
        return bool((await self._retrying(delete)).deleted_count)

    async def memberships(
        self, *, user: str | None = None, instance: str | None = None
    ) -> list[Membership]:
        where: Document = {}
        if user is not None:
            where["user"] = user
        if instance is not None:
            where["instance"] = instance
        docs = await self._find("members", where, [("instance", ASCENDING), ("user", ASCENDING)])
        return [Membership(doc["instance"], doc["user"], Role(doc["role"])) for doc in docs]

    # retention

    async def purge(
        self,
        *,
        ended_before: datetime | None,
        logs_before: datetime | None,
        keys_before: datetime | None = None,
    ) -> int:
        purged = 0
        if ended_before is not None:
            jobs = self._collection("jobs")
            cutoff = epoch_us(ended_before)

            async def expired() -> list[str]:
                cursor = jobs.find({"ended_us": {"$ne": None, "$lt": cutoff}}, {"_id": True})
                return [d["_id"] for d in await cursor.to_list(length=None)]

            ids = await self._retrying(expired)
            if ids:
                await self._retrying(partial(jobs.delete_many, {"_id": {"$in": ids}}))
                await self._delete_parts(ids)
                purged = len(ids)
        if logs_before is not None:
            old = {"created_us": {"$lt": epoch_us(logs_before)}}
            await self._retrying(partial(self._collection("logs").delete_many, old))
        if keys_before is not None:
            kept = {
                "idempotency_key": {"$type": "string"},
                "created_us": {"$lt": epoch_us(keys_before)},
            }
            forget = {"$set": {"idempotency_key": None}}
            await self._retrying(partial(self._collection("jobs").update_many, kept, forget))
        return purged

    async def set_job_tags(self, job_id: str, tags: Sequence[str]) -> bool:
        jobs = self._collection("jobs")
        update = partial(jobs.update_one, {"_id": job_id}, {"$set": {"tags": list(tags)}})
        return bool((await self._retrying(update)).matched_count)

    # sessions and timelines

    async def add_session(self, session: Session) -> None:
        doc = session_to_dict(session)
        doc.update(_id=doc.pop("id"), schema=SCHEMA_VERSION)
        await self._insert_once("sessions", {"_id": session.id}, doc)

    async def get_session(self, session_id: str) -> Session | None:
        sessions = self._collection("sessions")
        doc = await self._retrying(partial(sessions.find_one, {"_id": session_id}))
        return None if doc is None else session_from_dict({**doc, "id": doc["_id"]})

    async def replace_session(self, session: Session) -> bool:
        doc = session_to_dict(session)
        doc.update(_id=doc.pop("id"), schema=SCHEMA_VERSION)
        sessions = self._collection("sessions")
        outcome = await self._retrying(partial(sessions.replace_one, {"_id": session.id}, doc))
        return bool(outcome.matched_count)

    async def session_job_times(self, session_id: str) -> list[JobTimes]:
        jobs = self._collection("jobs")
        fields = {"status": 1, "started": 1, "ended": 1}

        async def read() -> list[Document]:
            found = jobs.find({"session_id": session_id}, fields)
            return list(await found.to_list(length=None))

        return [
            JobTimes(JobStatus(d["status"]), from_iso(d.get("started")), from_iso(d.get("ended")))
            for d in await self._retrying(read)
        ]

    async def add_stage(self, job_id: str, record: StageRecord) -> bool:
        doc = {"job_id": job_id, **stage_to_dict(record)}
        key = {k: doc[k] for k in ("job_id", "attempt", "stage", "at_us")}
        return await self._insert_once("stages", key, doc)

    async def job_stages(self, job_id: str) -> list[StageRecord]:
        docs = await self._find(
            "stages", {"job_id": job_id}, [("at_us", ASCENDING), ("attempt", ASCENDING)]
        )
        return [stage_from_dict(doc) for doc in docs]

    async def set_instance_limits(
        self, name: str, *, max_active_jobs: int | None, submits_per_minute: int | None
    ) -> bool:
        instances = self._collection("instances")
        caps = {"max_active_jobs": max_active_jobs, "submits_per_minute": submits_per_minute}
        update = partial(instances.update_one, {"_id": name}, {"$set": caps})
        return bool((await self._retrying(update)).matched_count)

    async def job_with_idempotency_key(self, key: str) -> Job | None:
        jobs = self._collection("jobs")
        doc = await self._retrying(partial(jobs.find_one, {"idempotency_key": key}))
        return None if doc is None else _job_from_document(doc)

    async def active_jobs_of(self, submitter: str | None) -> int:
        return await self._count_active({"submitter": submitter})

    async def active_jobs_in(self, instance: str) -> int:
        hub, group, project = instance.split("/", 2)
        return await self._count_active({"hub": hub, "group": group, "project": project})

    async def _count_active(self, where: Document) -> int:
        jobs = self._collection("jobs")
        active = {"status": {"$in": [JobStatus.QUEUED.value, JobStatus.RUNNING.value]}, **where}
        return int(await self._retrying(partial(jobs.count_documents, active)))


def _datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _cannot_write(error: PyMongoError) -> str | None:
    """Why `error` says MongoDB cannot take writes now, or None (a duplicate key, a document
    too large: about the write itself)."""
    if isinstance(error, DuplicateKeyError):
        return None
    if isinstance(error, WriteConcernError):
        return CANNOT_WRITE_CODES.get(error.code or 0, "the write concern failed")
    code = error.code if isinstance(error, OperationFailure) else None
    return CANNOT_WRITE_CODES.get(code or 0)


def _instance(doc: Mapping[str, Any]) -> Instance:
    return Instance(
        doc["_id"],
        _datetime(doc["created"]),
        doc.get("max_active_jobs"),
        doc.get("submits_per_minute"),
    )


def _job_filter(query: JobQuery) -> Document:
    where: Document = {}
    if query.statuses:
        where["status"] = {"$in": [status.value for status in query.statuses]}
    for key, value in (
        ("program_id", query.program_id),
        ("backend", query.backend),
        ("hub", query.hub),
        ("group", query.group),
        ("project", query.project),
        ("session_id", query.session_id),
    ):
        if value is not None:
            where[key] = value
    if query.tags:
        where["tags"] = {"$all": list(query.tags)}
    if query.instances is not None:
        where["$or"] = [
            dict(zip(("hub", "group", "project"), name.split("/", 2), strict=True))
            for name in query.instances
        ]
    created: Document = {}
    if query.created_after is not None:
        created["$gt"] = epoch_us(query.created_after)
    if query.created_before is not None:
        created["$lt"] = epoch_us(query.created_before)
    if created:
        where["created_us"] = created
    return where
