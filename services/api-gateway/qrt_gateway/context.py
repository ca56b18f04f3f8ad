"""What every request handler can reach: settings, store, bus, registry and live streams, and
the few things handlers do with them together (find a job, submit it, cancel it)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import web

from qrt_common.accounts import Principal, Role
from qrt_common.backends import SIMULATORS, backend_names
from qrt_common.bus.base import MessageBus
from qrt_common.errors import BusUnavailable, Conflict, Forbidden, InvalidInput, NotFound
from qrt_common.jobs import DEFAULT_INSTANCE, Job, JobStatus
from qrt_common.messages import (
    CANCEL_QUEUE,
    SUBMITTED_QUEUE,
    CancelJob,
    Heartbeat,
    JobSubmitted,
)
from qrt_common.programs import Program
from qrt_common.registry import ProgramRegistry
from qrt_common.settings import Settings
from qrt_common.store.base import JobQuery, JobStore
from qrt_common.submission import replayed
from qrt_common.wire import decode, encode

from .device_board import DeviceBoard
from .quotas import Quotas
from .replays import SharedReplays
from .session_rules import check_session
from .streams import StreamHub


@dataclass(slots=True)
class Gateway:
    """The gateway's collaborators, shared by all handlers."""

    settings: Settings
    store: JobStore
    bus: MessageBus
    registry: ProgramRegistry
    streams: StreamHub
    announced: dict[str, tuple[list[str], float]] = field(default_factory=dict)
    """Executor id to the devices it offers and when it last said so."""
    board: DeviceBoard = field(default_factory=DeviceBoard)
    """The devices as executors last reported them, and their recent history."""
    replays: SharedReplays = field(init=False)
    """Stored output that streams of the same job replay, read once for all of them."""
    quotas: Quotas = field(init=False)
    """The submit limits every submit route passes."""

    def __post_init__(self) -> None:
        self.replays = SharedReplays(self.store)
        self.quotas = Quotas(self.settings, self.store)

    async def program(self, program_id: str) -> Program | None:
        """The program with this id: a bundled one (programs.ini) or an uploaded one."""
        return self.registry.get(program_id) or await self.store.get_program(program_id)

    async def visible_program(self, program_id: str, who: Principal) -> Program | None:
        """The program with this id if `who` may see it (a bundled or public one, or a private
        one of an instance they belong to), else None, the same as for no such program."""
        program = await self.program(program_id)
        return program if program is not None and may_see(program, who) else None

    def require_loadable(self, program_id: str, field: str | None = None) -> None:
        """For a program not found: raise Conflict naming the file and line at fault when
        `program_id` is a bundled program (programs.ini) that cannot be loaded, and NotFound
        naming an unreadable programs.ini when there is one: the caller learns why."""
        problem = self.registry.problem(program_id)
        if problem is not None:
            raise Conflict(str(problem), field=field)
        unreadable = self.registry.config_problems()
        if unreadable:
            raise NotFound(
                f"program '{program_id}' not found; {unreadable[0]} (it may list the program)",
                field=field,
            )

    async def program_not_found(
        self,
        program_id: str,
        who: Principal,
        *,
        what: str = "program",
        missing: str = "not found",
        field: str | None = None,
    ) -> NotFound:
        """The error for a program `who` cannot see: raises as `require_loadable` does for a
        bundled program that cannot be loaded; otherwise NotFound, which names the ids of the
        uploaded programs `who` can see whose *name* is `program_id` (an upload gets an id of
        its own, `bell-4as9wyrkd0` for `bell`, and runs by that id); `what` and `missing` word
        it ("service", "is not installed on this qrt")."""
        self.require_loadable(program_id, field=field)
        instances = sorted(who.roles) if who.roles and not who.admin else [DEFAULT_INSTANCE]
        named: list[str] = []
        for instance in instances:
            uploaded = await self.store.list_programs(instance)
            named += [p.id for p in uploaded if p.name == program_id and may_see(p, who)]
        named.sort()
        hint = ""
        if named:
            ids = ", ".join(f"'{found}'" for found in named[:5])
            verb = "is" if len(named) == 1 else "are"
            hint = f"; an uploaded program runs by its id: {ids} {verb} named '{program_id}'"
        return NotFound(f"{what} '{program_id}' {missing}{hint}", field=field)

    async def find_job(self, job_id: str, who: Principal) -> Job:
        """The job with this id if `who` belongs to its instance (or is a platform admin);
        raises NotFound otherwise, the same whether the job exists or not."""
        job = await self.store.get_job(job_id)
        if job is None or who.role(job.instance) is None:
            raise NotFound(f"job '{job_id}' not found")
        return job

    @staticmethod
    def require(who: Principal, instance: str, needed: Role, doing: str) -> None:
        """Raise Forbidden unless `who` has at least role `needed` in `instance`; `doing`
        says what for ("submitting a job")."""
        if not who.may(instance, needed):
            role = who.role(instance)
            has = f"is {role.value}" if role is not None else "is no member"
            raise Forbidden(
                f"{doing} needs the {needed.value} role in {instance}; {who.user} {has}"
            )

    async def submit(self, job: Job, *, session_must_exist: bool = False) -> Job:
        """Store `job` and announce it to the scheduler; returns it (on a device, its time limit
        cut to QRT_DEVICE_MAX_EXECUTION_TIME), or, for a retry of an idempotent submit, the job
        the first try made (announced again while it waits: the first try may have died before
        it could). Raises LimitReached (and keeps no job) for a
        new job over its submitter's or instance's limits (`quotas`), Conflict for a key used
        again for another request, BusUnavailable (and keeps no job) if a new job cannot be
        announced; raises as `check_session` does for a job joining a session it may not join
        (`session_must_exist`: IBM's API, where a session id must name a stored session)."""
        most = self.settings.device_max_execution_time
        if job.backend not in SIMULATORS and job.max_execution_time > most:
            # A device runs one job at a time: every other user's jobs for it wait this long.
            job = replace(job, max_execution_time=most)
        earlier = None
        if job.idempotency_key is not None:
            earlier = await self.store.job_with_idempotency_key(job.idempotency_key)
        if earlier is None:  # a retry of an accepted submit makes no job: nothing to admit
            await check_session(self.store, job, must_exist=session_must_exist)
            await self.quotas.admit(job)
        stored = await self.store.add_job(job)
        if replayed(job, stored):
            if stored.status is JobStatus.QUEUED:
                # Best effort: the scheduler's sweep of the store finds it anyway.
                with contextlib.suppress(Exception):
                    await self.bus.send(SUBMITTED_QUEUE, encode(JobSubmitted.of(stored)))
            return stored
        try:
            await self.bus.send(SUBMITTED_QUEUE, encode(JobSubmitted.of(job)))
        except Exception as exc:
            # Accepting a job nobody will schedule would lose it silently: take it back.
            await self.store.delete_job(job.id)
            raise BusUnavailable(
                f"job not accepted, the message bus is unavailable: {exc}"
            ) from exc
        return job

    async def cancel(self, job: Job, status: str) -> None:
        """Ask the scheduler to cancel `job`; raises Conflict naming `status` (the job's status
        in the caller's words) if it has already ended."""
        if job.status.is_final:
            raise Conflict(f"job '{job.id}' has already ended: {status}")
        await self.bus.send(CANCEL_QUEUE, encode(CancelJob(job.id)))

    async def delete(self, job: Job, who: Principal) -> None:
        """Delete `job` and all it stored for `who`; raises Forbidden unless they are a member
        of its instance, Conflict while it has not ended, NotFound when another delete of it
        got there first (only one of racing deletes deletes it)."""
        self.require(who, job.instance, Role.MEMBER, "deleting a job")
        if not job.status.is_final:
            raise Conflict(f"job '{job.id}' is {job.status.value}; cancel it before deleting it")
        if not await self.store.delete_job(job.id):
            raise NotFound(f"job '{job.id}' not found")

    async def on_heartbeat(self, body: dict[str, Any]) -> None:
        """Learn which devices the executors offer."""
        beat = decode(Heartbeat, body)
        if beat.leaving:
            self.announced.pop(beat.executor_id, None)
        else:
            self.announced[beat.executor_id] = (beat.exclusive_backends, time.monotonic())
            await self.board.seen(beat.devices, self.queue)

    async def queue(self, backend: str) -> tuple[int, int]:
        """How many jobs of every instance are queued for `backend` and running on it."""
        counts = []
        for status in (JobStatus.QUEUED, JobStatus.RUNNING):
            _, count = await self.store.list_jobs(
                JobQuery(limit=1, statuses=(status,), backend=backend, with_params=False)
            )
            counts.append(count)
        return counts[0], counts[1]

    def devices(self) -> list[str]:
        """Devices a live executor offers."""
        return [name for name in self.backends() if name not in SIMULATORS]

    def backends(self) -> list[str]:
        """Names a job may ask for: the simulators, and the devices executors offer now."""
        since = time.monotonic() - self.settings.heartbeat_timeout
        live = (names for names, seen in self.announced.values() if seen >= since)
        return backend_names(name for names in live for name in names)

    def require_backend(self, name: str) -> None:
        """Raise InvalidInput (naming `backend`) unless a job may ask for backend `name`."""
        known = self.backends()
        if name not in known:
            raise InvalidInput(
                f"unknown backend '{name}'; available: {', '.join(known)}", field="backend"
            )


def may_see(program: Program, who: Principal) -> bool:
    """Whether `who` may see (and run) `program`: bundled, public, or of an instance of theirs."""
    return program.owner is None or program.is_public or who.role(program.owner) is not None


GATEWAY = web.AppKey("gateway", Gateway)


def gateway(request: web.Request) -> Gateway:
    """The Gateway of the application serving `request`."""
    return request.app[GATEWAY]
