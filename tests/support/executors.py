"""An executor on its own: a real `Executor` (warm pool, zygote, bubblewrap sandbox) on an
in-process bus, given assignments directly, its events collected per job; and `Run`, what one
job attempt came to."""

from __future__ import annotations

import base64
import json
import secrets
from collections import defaultdict
from pathlib import Path
from typing import Any

from qrt_common.archives import archive_digest
from qrt_common.bus.memory import InMemoryBus
from qrt_common.messages import (
    EVENTS_QUEUE,
    Assignment,
    EventKind,
    JobEvent,
    JobEvents,
    executor_queue,
)
from qrt_common.registry import ProgramRegistry
from qrt_common.settings import Settings
from qrt_common.wire import decode, encode
from qrt_executor.runner import Outcome
from qrt_executor.service import Executor
from tests.support.platform import make_settings
from tests.support.programs import merge_programs
from tests.support.waiting import eventually


class Run:
    """A job attempt's outcome and every event it sent."""

    def __init__(self, outcome: Outcome, events: list[JobEvent]) -> None:
        self.outcome, self.events = outcome, events

    def of(self, kind: EventKind) -> list[JobEvent]:
        return [e for e in self.events if e.kind is kind]

    @property
    def log(self) -> str:
        return "".join(e.data or "" for e in self.of(EventKind.LOG))

    @property
    def interims(self) -> list[Any]:
        return [json.loads(e.data or "") for e in self.of(EventKind.INTERIM)]

    @property
    def result_text(self) -> str | None:
        """The first result's text, if any."""
        results = self.of(EventKind.RESULT)
        return results[0].data if results else None

    @property
    def results(self) -> list[Any]:
        return [json.loads(e.data or "") for e in self.of(EventKind.RESULT)]


class LoneExecutor:
    """A started executor and the events it sent, by job."""

    @classmethod
    async def started(cls, root: Path, **settings: Any) -> LoneExecutor:
        """An executor started in `root`, serving the bundled and the test programs, with one
        warm process and `settings` (Settings fields) besides."""
        programs = merge_programs(root / "programs")
        lone = cls(make_settings(root, programs, **{"warm_pool_size": 1, **settings}))
        await lone.start()
        return lone

    def __init__(self, settings: Settings) -> None:
        self.bus = InMemoryBus()
        self.executor = Executor(settings, self.bus, ProgramRegistry(settings.programs_dir))
        self.events: defaultdict[str, list[JobEvent]] = defaultdict(list)

    async def start(self) -> None:
        async def collect(body: dict[str, Any]) -> None:
            batch = decode(JobEvents, body)
            self.events[batch.job_id].extend(batch.events)

        await self.bus.consume(EVENTS_QUEUE, collect)
        await self.executor.start()

    async def assign(
        self, program: str, params: str, *, time_limit: int = 120, archive: bytes | None = None
    ) -> str:
        """Give the executor a job of `program` with `params` (the text a job keeps), uploaded
        as `archive` if given (a zip); its id."""
        job_id = f"job-{secrets.token_hex(4)}"
        digest, encoded = None, None
        if archive is not None:
            digest, encoded = archive_digest(archive), base64.b64encode(archive).decode()
        assignment = Assignment(
            job_id, program, "aer_simulator", params, time_limit, 1, digest, encoded
        )
        await self.bus.send(executor_queue(self.executor.id), encode(assignment))
        return job_id

    async def run(
        self, program: str, params: str, *, time_limit: int = 120, archive: bytes | None = None
    ) -> Run:
        """Run a job of `program` (uploaded as `archive`, if given) with `params` to its end."""
        job_id = await self.assign(program, params, time_limit=time_limit, archive=archive)

        def finished() -> list[JobEvent]:
            return [e for e in self.events[job_id] if e.kind is EventKind.FINISHED]

        end = (await eventually(finished, f"job {job_id} of {program} ends", timeout=120))[0]
        assert end.status is not None
        return Run(Outcome(end.status, end.reason), list(self.events[job_id]))

    async def close(self) -> None:
        await self.executor.close()
        await self.bus.close()
