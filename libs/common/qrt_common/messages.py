"""What the services say to each other over the bus, and the queue and topic names they use.

Queues deliver each message to one consumer and keep it until it is handled; topics deliver a
copy to every current subscriber and keep nothing. Messages travel as `wire.encode` writes them
and are read back with `wire.decode(<class>, body)`.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from msgspec import field

from .device_protocol import StaticInfo
from .jobs import Job, JobStatus
from .timeline import Stage
from .wire import Message

SUBMITTED_QUEUE = "jobs.submitted"
"""Gateway to scheduler: a job was stored and waits to be scheduled."""
CANCEL_QUEUE = "jobs.cancel"
"""Gateway to scheduler: a user asked to cancel a job."""
EVENTS_QUEUE = "jobs.events"
"""Executors to the job ledger: what happened to a running job."""
UPDATES_TOPIC = "jobs.updates"
"""Ledger to gateways: job events once they are stored, for live streams."""
CONTROL_TOPIC = "executors.control"
"""Scheduler to executors: stop a job wherever it runs."""
HEARTBEAT_TOPIC = "executors.heartbeat"
"""Executors to scheduler: who is alive and what it can take."""


def executor_queue(executor_id: str) -> str:
    """The queue on which one executor receives its assignments."""
    return f"executor.{executor_id}"


class EventKind(StrEnum):
    """What a job event reports."""

    RUNNING = "running"
    LOG = "log"
    INTERIM = "interim"
    RESULT = "result"
    FINISHED = "finished"
    RELEASED = "released"
    """The executor gives an assigned or running job back without an outcome (drain)."""
    STAGE = "stage"
    """The running attempt reached a stage of its timeline (`JobEvent.stage`): waiting for
    its device, executing on it, or running again; `data` is the stage record's detail."""


class JobSubmitted(Message, frozen=True):
    """A job waits in the store to be scheduled."""

    job_id: str
    backend: str
    instance: str
    created: float
    priority: int = 0
    session_id: str | None = None
    """The session the job belongs to (its rules may hold the job back)."""

    @classmethod
    def of(cls, job: Job) -> JobSubmitted:
        """The announcement of `job`."""
        return cls(
            job.id, job.backend, job.instance, job.created.timestamp(), job.priority, job.session_id
        )


class CancelJob(Message, frozen=True):
    """A user wants the job stopped."""

    job_id: str


class Assignment(Message, frozen=True):
    """The scheduler gives one job attempt to one executor."""

    job_id: str
    program_id: str
    backend: str
    params: str
    max_execution_time: int
    attempt: int
    program_digest: str | None = None
    """An uploaded program's archive digest (`sha256:<hex>`); None for a bundled program."""
    program_archive: str | None = None
    """An uploaded program's zip archive, base64 (at most QRT_MAX_PROGRAM_BYTES before encoding),
    as it was when the job was assigned; the executor unpacks it once per digest."""


class JobEvent(Message, frozen=True):
    """Something that happened to a job attempt; applying one twice changes nothing."""

    job_id: str
    kind: EventKind
    attempt: int
    executor_id: str = ""
    seq: int = 0
    """Position among the attempt's events of the same kind (log chunk or interim index)."""
    data: str | None = None
    """Log text, or a RuntimeEncoder JSON text for interim and final results."""
    status: JobStatus | None = None
    """The job's new status, on `finished`."""
    reason: str | None = None
    at: float = field(default_factory=time.time)
    stage: Stage | None = None
    """The stage reached, on `stage`."""


class JobEvents(Message, frozen=True):
    """Events of one job in the order they happened: what executors send and the ledger
    announces, several at once when they came close together (a short job's log, result
    and end make one message)."""

    job_id: str
    events: list[JobEvent]


class DeviceReport(Message, frozen=True):
    """What an executor knows of one device it relays to, for the gateway to describe it (the
    console's `GET /backends/{name}`, IBM's `/api/v1/backends/...`): its `get_static` reply, its
    last `get_dynamic` reply, and whether it answered when last asked."""

    static: StaticInfo
    reachable: bool = True
    """Whether the device answered the last time the executor asked it."""
    calibration: dict[str, Any] = field(default_factory=dict)
    """The last `get_dynamic` payload (the protocol's metric format: `{"t1_in_us": {"__labels__":
    ["qubit"], "q0": 41.2, ...}, ...}`); empty before the first reading."""
    read_at: float | None = None
    """When the executor read `calibration` (epoch seconds); None before the first reading."""


class Heartbeat(Message, frozen=True):
    """An executor says it is alive and what it can take."""

    executor_id: str
    capacity: int
    backends: list[str]
    running: dict[str, int]
    """Job id to attempt, for every assignment the executor holds (started or not)."""
    exclusive_backends: list[str] = field(default_factory=list)
    """Backends (devices) that run one job at a time across the whole platform."""
    draining: bool = False
    """Takes no new job."""
    leaving: bool = False
    """Gone after this message: what it was assigned and did not run goes elsewhere at once."""
    devices: list[DeviceReport] = field(default_factory=list)
    """The devices this executor relays to (its `exclusive_backends`), as it last saw them."""


class StopJob(Message, frozen=True):
    """Executor `executor_id` must kill its attempt `attempt` of the job and report `status`."""

    job_id: str
    status: JobStatus
    executor_id: str
    attempt: int
