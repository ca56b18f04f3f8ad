"""The synchronous client: `Client`, its `Job` handles and `Programs`, for scripts and
notebooks.

    with Client("http://127.0.0.1:8000") as client:
        job = client.run("hello-quantum", {"greeting": "hi"})
        print(job.result(timeout=60))

Each `Client` runs an `AsyncClient` on an event loop in a thread of its own, so the two behave
alike to the letter, and a `Client` works where an event loop already runs (a notebook).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncGenerator, Awaitable, Generator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from .aio import AsyncClient, AsyncJob, AsyncPrograms
from .models import Backend, BackendDetail, Event, Execution, JobInfo, JobPage, Program
from .services import AsyncServices
from .transport import DEFAULT_RETRIES, FIRST_PAUSE

T = TypeVar("T")


class _Loop:
    """An event loop in a daemon thread, and calls into it that block until they are done."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="qrt-client", daemon=True
        )
        self._thread.start()

    def call(self, awaitable: Awaitable[T]) -> T:
        async def run() -> T:
            return await awaitable

        future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # an interrupt (Ctrl-C) stops the call too
            raise

    def iterate(self, source: AsyncGenerator[T, None]) -> Generator[T, None, None]:
        try:
            while True:
                try:
                    yield self.call(anext(source))
                except StopAsyncIteration:
                    return
        finally:
            if not self.loop.is_closed():
                self.call(source.aclose())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class Job:
    """A job on the platform, by its `id`; see `AsyncJob` for what each method does."""

    def __init__(self, loop: _Loop, job: AsyncJob) -> None:
        self._loop, self._job, self.id = loop, job, job.id

    def __repr__(self) -> str:
        return f"<Job {self.id}>"

    def info(self) -> JobInfo:
        """The job as the platform shows it now. Raises NotFound for an unknown job."""
        return self._loop.call(self._job.info())

    def status(self) -> str:
        """ "Queued", "Running", "Completed", "Failed", "Cancelled" or "Cancelled - Ran too
        long"."""
        return self._loop.call(self._job.status())

    def wait(self, timeout: float | None = None) -> JobInfo:
        """The job once it has ended; WaitTimeout if not within `timeout` seconds."""
        return self._loop.call(self._job.wait(timeout))

    def result(self, timeout: float | None = None) -> Any:
        """The final result (RuntimeDecoder-decoded) once the job has ended; JobFailed or
        JobCancelled if it ended without completing, WaitTimeout after `timeout` seconds."""
        return self._loop.call(self._job.result(timeout))

    def logs(self, attempt: int | None = None) -> str:
        """The job's log so far; `attempt`: only that attempt's."""
        return self._loop.call(self._job.logs(attempt))

    def cancel(self) -> None:
        """Cancel the job. Raises Conflict if it already ended."""
        self._loop.call(self._job.cancel())

    def delete(self) -> None:
        """Delete the ended job. Raises Conflict while it is queued or running."""
        self._loop.call(self._job.delete())

    def stream(self, logs: bool = True) -> Generator[Event, None, None]:
        """The job live: `Interim`, `Log`, `Attempt` and (last) `Result` events, until it ends."""
        return self._loop.iterate(self._job.stream(logs))


class Programs:
    """The platform's programs; see `AsyncPrograms` for what each method does."""

    def __init__(self, loop: _Loop, programs: AsyncPrograms) -> None:
        self._loop, self._programs = loop, programs

    def list(self, owner: str | None = None) -> list[Program]:
        """Bundled and public programs, and the uploads of `owner` ("hub/group/project")."""
        return self._loop.call(self._programs.list(owner))

    def show(self, program_id: str) -> Program:
        """One program. Raises NotFound for an unknown id."""
        return self._loop.call(self._programs.show(program_id))

    def upload(self, source: str | os.PathLike[str] | bytes, **metadata: Any) -> Program:
        """Upload a program from a directory (without `.git`, `.env` and other dot names), a
        `.zip` file or zip bytes; `metadata`: `name`, `description`, `max_execution_time`,
        `is_public`, `spec`, `hub`, `group`, `project`, `include` (dot names to archive)."""
        return self._loop.call(self._programs.upload(source, **metadata))

    def update(
        self,
        program_id: str,
        source: str | os.PathLike[str] | bytes | None = None,
        **metadata: Any,
    ) -> Program:
        """New code from `source` and/or new metadata (`name`, `description`,
        `max_execution_time`, `is_public`, `spec`; `include` as for `upload`) for an uploaded
        program."""
        return self._loop.call(self._programs.update(program_id, source, **metadata))

    def delete(self, program_id: str) -> None:
        """Delete an uploaded program."""
        self._loop.call(self._programs.delete(program_id))


class Services:
    """PlanQK's Service API; see `AsyncServices` for what each method does."""

    def __init__(self, loop: _Loop, services: AsyncServices) -> None:
        self._loop, self._services = loop, services

    def start(
        self,
        service: str,
        data: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        instance: str | None = None,
        idempotency_key: str | None = None,
    ) -> Execution:
        """Start an execution of `service` with `data` and `params`; returns it (PENDING)."""
        return self._loop.call(
            self._services.start(
                service, data, params, instance=instance, idempotency_key=idempotency_key
            )
        )

    def get(self, service: str, execution_id: str) -> Execution:
        """The execution now."""
        return self._loop.call(self._services.get(service, execution_id))

    def executions(self, service: str, *, limit: int = 20) -> list[Execution]:
        """The service's latest executions, newest first."""
        return self._loop.call(self._services.executions(service, limit=limit))

    def wait(self, service: str, execution_id: str, timeout: float | None = None) -> Execution:
        """The execution once it has ended; WaitTimeout if not within `timeout` seconds."""
        return self._loop.call(self._services.wait(service, execution_id, timeout))

    def result(self, service: str, execution_id: str) -> Any:
        """An ended execution's result, or `{"code", "detail"}` of a FAILED one."""
        return self._loop.call(self._services.result(service, execution_id))

    def interim_results(self, service: str, execution_id: str, *, last: bool = False) -> Any:
        """The interim results so far; `last`: only the latest."""
        return self._loop.call(self._services.interim_results(service, execution_id, last=last))

    def log(self, service: str, execution_id: str) -> list[str]:
        """The execution's log so far, line by line."""
        return self._loop.call(self._services.log(service, execution_id))

    def cancel(self, service: str, execution_id: str) -> Execution:
        """Cancel a pending or running execution and return it."""
        return self._loop.call(self._services.cancel(service, execution_id))


class Client:
    """The platform at `url`, as `key` (sent as `Authorization: Bearer <key>`); see
    `AsyncClient` for `timeout`, `retries` and `first_pause`. Use it as a context manager, or
    call `close()`."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = DEFAULT_RETRIES,
        first_pause: float = FIRST_PAUSE,
    ) -> None:
        self._loop = _Loop()
        self._client = AsyncClient(
            url, key, timeout=timeout, retries=retries, first_pause=first_pause
        )
        self.programs = Programs(self._loop, self._client.programs)
        self.services = Services(self._loop, self._client.services)

    @property
    def url(self) -> str:
        return self._client.url

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and the client's thread."""
        if not self._loop.loop.is_closed():
            self._loop.call(self._client.aclose())
            self._loop.close()

    def run(
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
    ) -> Job:
        """Submit a job of `program` with `params` and return it; safe to retry (see
        `AsyncClient.run`: an Idempotency-Key, retried on a dropped connection or a 503)."""
        job = self._loop.call(
            self._client.run(
                program, params, backend=backend, hub=hub, group=group, project=project,
                tags=tags, session_id=session_id, priority=priority,
                max_execution_time=max_execution_time, idempotency_key=idempotency_key,
            )
        )  # fmt: skip
        return Job(self._loop, job)

    def job(self, job_id: str) -> Job:
        """A handle on the job `job_id`."""
        return Job(self._loop, self._client.job(job_id))

    def jobs(
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
        """Jobs matching every filter given, newest first; see `AsyncClient.jobs`."""
        return self._loop.call(
            self._client.jobs(
                limit=limit, offset=offset, pending=pending, status=status, program=program,
                backend=backend, hub=hub, group=group, project=project, tags=tags,
                session_id=session_id, created_after=created_after, created_before=created_before,
            )
        )  # fmt: skip

    def backends(self) -> list[Backend]:
        """The backends a job can ask for."""
        return self._loop.call(self._client.backends())

    def backend(self, name: str) -> BackendDetail:
        """One backend: its queue and, for a device, its calibration; see `AsyncClient.backend`."""
        return self._loop.call(self._client.backend(name))
