"""A job's timeline: the stages each attempt went through, with their times, and the device
calibration in force when it executed.

Stages are recorded where they happen: the scheduler's ledger records `assigned`, `running`,
`queued` (again) and `finished` as it makes those changes; the executor reports
`waiting_for_device`, `executing` and the return to `running` of a device job as job events
(`EventKind.STAGE`). The first `queued` is the job's creation. A stage lasts until the next one.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from .jobs import Job, epoch_us

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Stage(StrEnum):
    """Where a job attempt is."""

    QUEUED = "queued"
    """Stored, waiting for an executor."""
    ASSIGNED = "assigned"
    """The scheduler gave it to an executor, which has not started it yet."""
    RUNNING = "running"
    """Its program runs on the executor (on a simulator, this is executing)."""
    WAITING_FOR_DEVICE = "waiting_for_device"
    """Its program asked for its device, which another job or a calibration holds."""
    EXECUTING = "executing"
    """The device is locked for it and runs its circuits."""
    FINISHED = "finished"
    """It ended; the entry's `detail` is the status it ended with."""


@dataclass(frozen=True, slots=True)
class StageRecord:
    """One entry of a job's timeline: attempt `attempt` reached `stage` at `at`."""

    attempt: int
    stage: Stage
    at: datetime
    executor_id: str | None = None
    detail: str | None = None
    """For `finished`, the status; for `executing`, JSON `{"backend", "calibration"}` with the
    device's `get_dynamic` answer when it changed since the attempt's last `executing`."""

    @property
    def at_us(self) -> int:
        """`at` as microseconds since the epoch: with job, attempt and stage, the entry's key."""
        return epoch_us(self.at)


def stage_to_dict(record: StageRecord) -> dict[str, Any]:
    """A stage record as the stores keep it."""
    return {
        "attempt": record.attempt,
        "stage": record.stage.value,
        "at_us": record.at_us,
        "executor_id": record.executor_id,
        "detail": record.detail,
    }


def stage_from_dict(doc: dict[str, Any]) -> StageRecord:
    """The stage record `stage_to_dict` wrote."""
    at = _EPOCH + timedelta(microseconds=int(doc["at_us"]))
    return StageRecord(
        attempt=int(doc["attempt"]),
        stage=Stage(doc["stage"]),
        at=at,
        executor_id=doc.get("executor_id"),
        detail=doc.get("detail"),
    )


def timeline(job: Job, records: list[StageRecord]) -> list[StageRecord]:
    """The job's whole timeline, in the order things happened: the stored `records`, with the
    first `queued` (the job's creation) and, for a job recorded before timelines were (or whose
    records were lost), `running` and `finished` from the job's own times."""
    entries = [StageRecord(1, Stage.QUEUED, job.created)]
    entries.extend(records)
    stages = {record.stage for record in records}
    if job.started is not None and Stage.RUNNING not in stages:
        entries.append(StageRecord(job.attempt, Stage.RUNNING, job.started, job.executor_id))
    if job.ended is not None and Stage.FINISHED not in stages:
        entries.append(StageRecord(job.attempt, Stage.FINISHED, job.ended, None, job.status.value))
    order = {stage: index for index, stage in enumerate(Stage)}
    # Equal times (a clock's resolution) keep the stages' own order within an attempt.
    entries.sort(key=lambda r: (r.at, r.attempt, order[r.stage]))
    return entries


def executing_seconds(entries: list[StageRecord]) -> float:
    """Seconds spent in `executing` (the device locked for the job) in a timeline."""
    total = 0.0
    for entry, following in itertools.pairwise(entries):
        if entry.stage is Stage.EXECUTING:
            total += max((following.at - entry.at).total_seconds(), 0.0)
    return total


def calibration_of(record: StageRecord) -> dict[str, Any] | None:
    """The `{"backend", "calibration"}` an `executing` entry carries, or None."""
    if record.stage is not Stage.EXECUTING or record.detail is None:
        return None
    try:
        value = json.loads(record.detail)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
