"""What the platform answers, as typed values: jobs, programs, backends and stream events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FINAL_STATUSES = frozenset({"Completed", "Failed", "Cancelled", "Cancelled - Ran too long"})
"""The statuses of a job that ended; the others are "Queued" and "Running"."""


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class JobInfo:
    """A job as `GET /jobs/{id}` shows it. Times are timezone-aware (UTC)."""

    id: str
    program: str
    status: str
    reason: str | None
    backend: str
    hub: str
    group: str
    project: str
    tags: list[str]
    session_id: str | None
    priority: int
    created: datetime | None
    started: datetime | None
    ended: datetime | None
    max_execution_time: int
    attempt: int

    @property
    def ended_yet(self) -> bool:
        """True once the job's status is final."""
        return self.status in FINAL_STATUSES

    @classmethod
    def of(cls, body: dict[str, Any]) -> JobInfo:
        """From the platform's JSON (camelCase)."""
        return cls(
            id=body["id"],
            program=body["program"]["id"],
            status=body["status"],
            reason=body.get("reason"),
            backend=body["backend"],
            hub=body["hub"],
            group=body["group"],
            project=body["project"],
            tags=list(body.get("tags") or []),
            session_id=body.get("sessionId"),
            priority=body.get("priority", 0),
            created=_time(body.get("created")),
            started=_time(body.get("started")),
            ended=_time(body.get("ended")),
            max_execution_time=body["maxExecutionTime"],
            attempt=body.get("attempt", 1),
        )


@dataclass(frozen=True)
class JobPage:
    """One page of a job listing: its jobs (newest first) and `count`, how many match in all."""

    jobs: list[JobInfo]
    count: int


@dataclass(frozen=True)
class Program:
    """A program as `GET /programs/{id}` shows it; `raw` is the whole JSON body."""

    id: str
    name: str
    description: str
    kind: str
    version: str
    max_execution_time: int
    is_public: bool
    bundled: bool
    owner: str | None
    parameters: list[dict[str, Any]] | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def of(cls, body: dict[str, Any]) -> Program:
        """From the platform's JSON (camelCase)."""
        return cls(
            id=body["id"],
            name=body["name"],
            description=body.get("description", ""),
            kind=body.get("kind", "qiskit-runtime"),
            version=body.get("version", ""),
            max_execution_time=body["maxExecutionTime"],
            is_public=body.get("isPublic", True),
            bundled=body.get("bundled", True),
            owner=body.get("owner"),
            parameters=body.get("parameters"),
            raw=body,
        )


@dataclass(frozen=True)
class Backend:
    """A backend a job can ask for; `simulator` is False for a quantum device."""

    name: str
    simulator: bool


@dataclass(frozen=True)
class QubitCalibration:
    """One qubit's calibration: T1 and T2 in µs, fidelities from 0 to 1; None where the device
    reports no such number."""

    qubit: int
    t1_us: float | None
    t2_us: float | None
    readout_fidelity: float | None
    gate_fidelity: float | None
    """Its single-qubit gates' fidelity."""


@dataclass(frozen=True)
class PairCalibration:
    """A coupled pair's two-qubit gate fidelity (0 to 1)."""

    qubits: tuple[int, int]
    fidelity: float


@dataclass(frozen=True)
class BackendDetail:
    """A backend as `GET /backends/{name}` shows it: its queue (jobs of every instance) and,
    for a device, what it is and its latest calibration. A simulator has no `nqubits`, an
    empty `topology`, `gates` and calibration."""

    name: str
    simulator: bool
    online: bool
    """A job may be sent to it now (a device: offered by an executor and answering)."""
    queued: int
    running: int
    last_seen: datetime | None
    """When an executor last reported the device."""
    nqubits: int | None
    topology: list[tuple[int, int]]
    """The coupled qubit pairs."""
    gates: list[str]
    calibrated_at: datetime | None
    qubits: list[QubitCalibration]
    pairs: list[PairCalibration]

    @classmethod
    def of(cls, body: dict[str, Any]) -> BackendDetail:
        """From the platform's JSON (camelCase)."""
        calibration = body.get("calibration") or {}
        return cls(
            name=body["name"],
            simulator=body["simulator"],
            online=body["online"],
            queued=body["queue"]["queued"],
            running=body["queue"]["running"],
            last_seen=_time(body.get("lastSeen")),
            nqubits=body.get("nqubits"),
            topology=[(a, b) for a, b in body.get("topology") or []],
            gates=list(body.get("gates") or []),
            calibrated_at=_time(calibration.get("calibratedAt")),
            qubits=[
                QubitCalibration(
                    qubit=q["qubit"],
                    t1_us=q.get("t1Us"),
                    t2_us=q.get("t2Us"),
                    readout_fidelity=q.get("readoutFidelity"),
                    gate_fidelity=q.get("singleQubitGateFidelity"),
                )
                for q in calibration.get("qubits") or []
            ],
            pairs=[
                PairCalibration(qubits=(p["qubits"][0], p["qubits"][1]), fidelity=p["fidelity"])
                for p in calibration.get("pairs") or []
            ],
        )


@dataclass(frozen=True)
class Interim:
    """An interim result the job published (decoded with RuntimeDecoder)."""

    value: Any


@dataclass(frozen=True)
class Result:
    """The job's final result (decoded with RuntimeDecoder); the last event of a stream of a job
    that has one."""

    value: Any


@dataclass(frozen=True)
class Log:
    """A piece of the job's log, as written (it may hold several lines, or part of one)."""

    text: str


@dataclass(frozen=True)
class Attempt:
    """The job runs again (its executor was lost): what came before was an earlier attempt's.
    `attempt` counts from 1; `reason` says why the earlier one ended."""

    attempt: int
    reason: str | None


Event = Interim | Result | Log | Attempt
"""What `Job.stream()` yields."""


EXECUTION_STATUSES = {
    "Queued": "PENDING",
    "Running": "RUNNING",
    "Completed": "SUCCEEDED",
    "Failed": "FAILED",
    "Cancelled - Ran too long": "FAILED",
    "Cancelled": "CANCELLED",
}
"""A job's status in the words of PlanQK's Service API (README, "The Service API")."""
FINAL_EXECUTION_STATUSES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})
"""The statuses of an execution that ended; the others are PENDING and RUNNING."""


@dataclass(frozen=True)
class Execution:
    """A service execution as `GET /services/{service}/{id}` shows it: a job under PlanQK's
    names. `status` is PENDING, RUNNING, SUCCEEDED, FAILED or CANCELLED."""

    id: str
    service: str
    status: str
    created: datetime | None
    started: datetime | None
    ended: datetime | None

    @property
    def ended_yet(self) -> bool:
        """True once the execution's status is final."""
        return self.status in FINAL_EXECUTION_STATUSES

    @classmethod
    def of(cls, service: str, body: dict[str, Any]) -> Execution:
        """From the Service API's JSON."""
        return cls(
            id=body["id"],
            service=service,
            status=body["status"],
            created=_time(body.get("createdAt")),
            started=_time(body.get("startedAt")),
            ended=_time(body.get("endedAt")),
        )

    @classmethod
    def of_job(cls, job: JobInfo) -> Execution:
        """A job listed by `GET /jobs?program=...`, as the execution it is."""
        status = EXECUTION_STATUSES.get(job.status, job.status)
        return cls(job.id, job.program, status, job.created, job.started, job.ended)
