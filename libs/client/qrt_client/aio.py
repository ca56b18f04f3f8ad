"""The asynchronous client: `AsyncClient`, its `AsyncJob` handles and `AsyncPrograms`.

async with AsyncClient("http://127.0.0.1:8000") as client:
    job = await client.run("hello-quantum", {"greeting": "hi"})
    print(await job.result(timeout=60))
"""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import AsyncGenerator, Awaitable, Collection, Mapping, Sequence
from datetime import datetime
from pathlib import PurePath
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from . import streams
from .codec import archive_of, decode, encode_params
from .errors import ApiError, JobCancelled, JobEnded, JobFailed, TooLarge
from .models import Backend, BackendDetail, Event, JobInfo, JobPage, Program
from .polling import poll_until
from .services import AsyncServices
from .transport import DEFAULT_RETRIES, FIRST_PAUSE, Transport


class AsyncJob:
    """A job on the platform, by its `id`. Every method asks the platform afresh."""

    def __init__(self, transport: Transport, job_id: str) -> None:
        self._transport, self.id = transport, job_id

    def __repr__(self) -> str:
        return f"<AsyncJob {self.id}>"

    async def info(self) -> JobInfo:
        """The job as the platform shows it now. Raises NotFound for an unknown job."""
        response = await self._transport.request("GET", f"/jobs/{self.id}", retry=True)
        return JobInfo.of(response.json())

    async def status(self) -> str:
        """ "Queued", "Running", "Completed", "Failed", "Cancelled" or "Cancelled - Ran too
        long"."""
        return (await self.info()).status

    # `timeout` as in qiskit-ibm-runtime's job.wait_for_final_state and result, not asyncio's.
    async def wait(self, timeout: float | None = None) -> JobInfo:  # noqa: ASYNC109
        """The job once it has ended, polling its status (from every 0.1 s up to every 2 s).
        Raises WaitTimeout if it has not ended within `timeout` seconds (None: no limit)."""
        return await poll_until(
            self.info,
            lambda info: info.ended_yet,
            lambda info: f"job {self.id} is still {info.status}",
            timeout,
        )

    async def result(self, timeout: float | None = None) -> Any:  # noqa: ASYNC109
        """The job's final result, decoded with RuntimeDecoder, once the job has ended (waiting
        up to `timeout` seconds; WaitTimeout after that). A job that ended without completing
        raises JobFailed ("Failed", "Cancelled - Ran too long") or JobCancelled, carrying its
        status and reason (and an error result, if the program left one)."""
        info = await self.wait(timeout)
        result = await self._stored_result()
        if info.status == "Completed":
            return None if result is _NONE else result
        kind: type[JobEnded] = JobCancelled if info.status == "Cancelled" else JobFailed
        raise kind(self.id, info.status, info.reason, None if result is _NONE else result)

    async def _stored_result(self) -> Any:
        try:
            response = await self._transport.request("GET", f"/jobs/{self.id}/results", retry=True)
        except ApiError as exc:
            if exc.status in (404, 409, 410):  # an ended job's answer for "no result"
                return _NONE
            raise
        if response.status_code == 204:
            return _NONE
        return decode(response.json())

    async def has_result(self) -> bool:
        """True once the platform holds the job's final result."""
        return await self._stored_result() is not _NONE

    async def logs(self, attempt: int | None = None) -> str:
        """The job's log (stdout, stderr and every publish) so far; `attempt`: only that
        attempt's."""
        params = {} if attempt is None else {"attempt": attempt}
        path = f"/jobs/{self.id}/logs"
        response = await self._transport.request("GET", path, retry=True, params=params)
        text: str = response.json()
        return text

    async def cancel(self) -> None:
        """Cancel the job (a running job's process is killed). Raises Conflict if it already
        ended."""
        await self._transport.request("POST", f"/jobs/{self.id}/cancel")

    async def delete(self) -> None:
        """Delete the ended job with its log and results. Raises Conflict while it is queued or
        running."""
        await self._transport.request("DELETE", f"/jobs/{self.id}")

    async def stream(self, logs: bool = True) -> AsyncGenerator[Event, None]:
        """The job live, from its start (a late caller first gets what was published so far):
        `Interim` results, `Log` pieces (unless `logs` is False), an `Attempt` notice when the
        job runs again, and `Result` last when the job has one. Ends when the job has ended.
        Raises StreamError if the platform closes a stream abnormally (4404: job deleted)."""
        base, headers = f"{self._transport.ws_url}/stream/jobs/{self.id}", self._transport.headers

        async def ended() -> bool:
            return (await self.info()).ended_yet

        sources = [streams.results(base, headers, ended, self.has_result)]
        if logs:
            sources.append(streams.logs(f"{base}/logs", headers))
        async for event in streams.merged(*sources):
            yield event


async def _archive(
    source: str | os.PathLike[str] | bytes, include: Collection[str | os.PathLike[str]]
) -> bytes:
    """`archive_of(source)`, off the event loop: a directory may take a while to read."""
    return await asyncio.to_thread(archive_of, source, include=include)


async def _sized(request: Awaitable[httpx.Response], data: bytes) -> httpx.Response:
    """The answer to `request`, which sends the archive `data`; a 413 says how big it was."""
    try:
        return await request
    except TooLarge as exc:
        detail = f"{exc.detail} (the archive is {len(data):,} bytes)"
        raise TooLarge(exc.status, detail, exc.field) from None


class _NoResult:
    pass


_NONE: Any = _NoResult()


class AsyncPrograms:
    """The platform's programs: `client.programs.list()`, `.show(id)`, `.upload(...)`, ..."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def list(self, owner: str | None = None) -> list[Program]:
        """Bundled and public programs, and the uploads of `owner` ("hub/group/project";
        default the default instance's)."""
        params = {} if owner is None else {"owner": owner}
        response = await self._transport.request("GET", "/programs", retry=True, params=params)
        return [Program.of(p) for p in response.json()["programs"]]

    async def show(self, program_id: str) -> Program:
        """One program. Raises NotFound for an unknown id."""
        response = await self._transport.request("GET", f"/programs/{program_id}", retry=True)
        return Program.of(response.json())

    async def upload(
        self,
        source: str | os.PathLike[str] | bytes,
        *,
        name: str | None = None,
        description: str | None = None,
        max_execution_time: int | None = None,
        is_public: bool | None = None,
        spec: Mapping[str, Any] | None = None,
        hub: str | None = None,
        group: str | None = None,
        project: str | None = None,
        include: Collection[str | os.PathLike[str]] = (),
    ) -> Program:
        """Upload a program and return it (its id is the name plus a random suffix). `source`
        is a directory (`program.py` with `main()`, or `planqk.json`, at its top; archived as
        `codec.archive_of` says: without `.git`, `.env` or other dot names unless `include`
        names them), a `.zip` file, or the zip's bytes; `name` defaults to the directory's or
        file's name. Raises InvalidInput naming the field at fault, Conflict if the name is
        taken, TooLarge (its detail says the archive's size), ArchiveError for a directory
        with a link leading out of it or an archive over `codec.MOST_ARCHIVE_BYTES`."""
        if name is None:
            if isinstance(source, bytes):
                raise ValueError("name is required when the archive is given as bytes")
            name = PurePath(os.fspath(source)).stem
        data = await _archive(source, include)
        body: dict[str, Any] = {
            "name": name,
            "data": base64.b64encode(data).decode(),
            **_given(description=description, maxExecutionTime=max_execution_time,
                     isPublic=is_public, spec=spec, hub=hub, group=group, project=project),
        }  # fmt: skip
        response = await _sized(self._transport.request("POST", "/programs", json=body), data)
        return await self.show(response.json()["id"])

    async def update(
        self,
        program_id: str,
        source: str | os.PathLike[str] | bytes | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        max_execution_time: int | None = None,
        is_public: bool | None = None,
        spec: Mapping[str, Any] | None = None,
        include: Collection[str | os.PathLike[str]] = (),
    ) -> Program:
        """Change an uploaded program: new code from `source` (as in `upload`, with `include`;
        new jobs run it)
        and the metadata given (what is left out stays). Returns the program as it now is.
        Raises Forbidden for a bundled program."""
        program: Program | None = None
        if source is not None:
            path = f"/programs/{program_id}/data"
            headers = {"Content-Type": "application/zip"}
            data = await _archive(source, include)
            response = await _sized(
                self._transport.request("PUT", path, content=data, headers=headers), data
            )
            program = Program.of(response.json())
        changes = _given(name=name, description=description, isPublic=is_public,
                         maxExecutionTime=max_execution_time, spec=spec)  # fmt: skip
        if changes or program is None:
            response = await self._transport.request(
                "PATCH", f"/programs/{program_id}", json=changes
            )
            program = Program.of(response.json())
        return program

    async def delete(self, program_id: str) -> None:
        """Delete an uploaded program. Raises Conflict while jobs of it are queued or running,
        Forbidden for a bundled one."""
        await self._transport.request("DELETE", f"/programs/{program_id}")


def _given(**values: Any) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in values.items() if v is not None}


def _query_time(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


class AsyncClient:
    """The platform at `url` (e.g. "http://127.0.0.1:8000"), as `key` (sent as
    `Authorization: Bearer <key>`; None: no header). Use it as an async context manager, or
    call `aclose()`.

    `timeout` is seconds per HTTP request; `retries` how often a call that is safe to repeat (a
    read, a submit with its Idempotency-Key) is tried again after a connection failure or a 503;
    `first_pause` the seconds before the first retry (the pause doubles, up to 4 s).
    """

    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = DEFAULT_RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
        first_pause: float = FIRST_PAUSE,
    ) -> None:
        self._transport = Transport(
            url, key, timeout=timeout, retries=retries, transport=transport, first_pause=first_pause
        )
        self.programs = AsyncPrograms(self._transport)
        self.services = AsyncServices(self._transport)
        """PlanQK's Service API: executions of every program."""

    @property
    def url(self) -> str:
        return self._transport.url

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._transport.close()

    async def run(
        self,
        program: str,
        params: Mapping[str, Any] | None = None,
        *,
        backend: str | None = None,
        hub: str | None = None,
        group: str | None = None,
        project: str | None = None,
        tags: Sequence[str] | None = None,
        session_id: str | None = None,
        priority: int | None = None,
        max_execution_time: int | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncJob:
        """Submit a job of `program` with `params` (keyword arguments of its `main`, encoded
        with RuntimeEncoder: circuits, arrays and complex numbers are fine) and return it.

        The submit is safe to retry: it carries an `Idempotency-Key` (`idempotency_key`, or a
        fresh UUID), so when the connection drops or the platform answers 503 it is sent again
        (with backoff, a bounded number of times) and the platform answers with the job the
        first try made, never a second one. Raises NotFound for an unknown program,
        InvalidInput naming the field at fault, Forbidden for another instance's private
        program.
        """
        body: dict[str, Any] = {
            "programId": program,
            "params": encode_params(params),
            **_given(backend=backend, hub=hub, group=group, project=project,
                     tags=list(tags) if tags is not None else None, sessionId=session_id,
                     priority=priority, maxExecutionTime=max_execution_time),
        }  # fmt: skip
        headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
        response = await self._transport.request(
            "POST", "/jobs", retry=True, json=body, headers=headers
        )
        return AsyncJob(self._transport, response.json()["id"])

    def job(self, job_id: str) -> AsyncJob:
        """A handle on the job `job_id` (nothing is asked until a method is called)."""
        return AsyncJob(self._transport, job_id)

    async def jobs(
        self,
        *,
        limit: int | None = None,
        offset: int | None = None,
        pending: bool | None = None,
        status: str | Sequence[str] | None = None,
        program: str | None = None,
        backend: str | None = None,
        hub: str | None = None,
        group: str | None = None,
        project: str | None = None,
        tags: Sequence[str] | None = None,
        session_id: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
    ) -> JobPage:
        """Jobs matching every filter given, newest first (`limit` 1 to 1000, default 200).
        `pending`: True for queued and running jobs, False for ended ones; `tags`: jobs holding
        all of them; times are ISO 8601 (naive datetimes are UTC)."""
        params: list[tuple[str, Any]] = []
        for name, value in {
            "limit": limit, "offset": offset, "program": program, "backend": backend,
            "hub": hub, "group": group, "project": project, "session_id": session_id,
            "created_after": _query_time(created_after),
            "created_before": _query_time(created_before),
        }.items():  # fmt: skip
            if value is not None:
                params.append((name, str(value)))
        if pending is not None:
            params.append(("pending", "true" if pending else "false"))
        for one in [status] if isinstance(status, str) else status or []:
            params.append(("status", one))
        if tags:
            params.append(("tags", ",".join(tags)))
        response = await self._transport.request(
            "GET", "/jobs", retry=True, params=httpx.QueryParams(params)
        )
        body = response.json()
        return JobPage(jobs=[JobInfo.of(j) for j in body["jobs"]], count=body["count"])

    async def backends(self) -> list[Backend]:
        """The backends a job can ask for: simulators and the devices executors offer."""
        response = await self._transport.request("GET", "/backends", retry=True)
        return [Backend(b["name"], b["simulator"]) for b in response.json()["backends"]]

    async def backend(self, name: str) -> BackendDetail:
        """One backend: its queue and, for a device, its qubits, coupling map, gates and latest
        calibration. Raises NotFound for a backend no job may ask for."""
        path = f"/backends/{quote(name, safe='')}"
        response = await self._transport.request("GET", path, retry=True)
        return BackendDetail.of(response.json())
