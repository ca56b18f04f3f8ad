"""Which executor runs (or is about to run) which job attempt, and where a job goes next."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Container, Iterator
from dataclasses import dataclass, field, replace

from qrt_common.messages import JobSubmitted

from .executors import ExecutorState, LiveExecutors


@dataclass(frozen=True, slots=True)
class Placement:
    """A job given to an executor, from assignment until it ends or comes back."""

    executor_id: str
    backend: str
    attempt: int
    """The attempt this placement is for: reports of other attempts do not free it."""
    session_id: str | None = None
    """The job's session: a dedicated one runs one job at a time."""
    instance: str = ""
    """The job's `hub/group/project`, whose jobs running at once may be capped."""
    since: float = field(default_factory=time.monotonic)
    seen: float = 0.0
    """When the executor last listed it in a heartbeat."""

    @property
    def heard_of(self) -> float:
        """When the placement was last confirmed: made, or listed by its executor."""
        return max(self.since, self.seen)


@dataclass(frozen=True, slots=True)
class DeviceHold:
    """A device kept for a dedicated session between its jobs."""

    session_id: str
    until: float
    """`time.monotonic()` when the hold runs out."""


class Placements:
    """Placements by job id; at most one a job."""

    def __init__(self) -> None:
        self._by_job: dict[str, Placement] = {}
        self._load: Counter[str] = Counter()
        """Placements by executor id: a dispatch round asks for every waiting job."""

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._by_job

    def __getitem__(self, job_id: str) -> Placement:
        return self._by_job[job_id]

    def __setitem__(self, job_id: str, placement: Placement) -> None:
        self.pop(job_id)
        self._by_job[job_id] = placement
        self._load[placement.executor_id] += 1

    def __len__(self) -> int:
        return len(self._by_job)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._by_job))

    def items(self) -> list[tuple[str, Placement]]:
        """A copy of every (job id, placement)."""
        return list(self._by_job.items())

    def get(self, job_id: str) -> Placement | None:
        """The job's placement, if it has one."""
        return self._by_job.get(job_id)

    def pop(self, job_id: str) -> Placement | None:
        """Remove and return the job's placement, if it has one."""
        placement = self._by_job.pop(job_id, None)
        if placement is not None:
            self._unload(placement.executor_id)
        return placement

    def _unload(self, executor_id: str) -> None:
        self._load[executor_id] -= 1
        if not self._load[executor_id]:
            del self._load[executor_id]

    def restore(self, job_id: str, placement: Placement) -> None:
        """Put `placement` back, unless the job was placed again meanwhile."""
        if job_id not in self._by_job:
            self[job_id] = placement

    def holds(self, job_id: str, executor_id: str, attempt: int) -> bool:
        """True if the job is placed on `executor_id` for `attempt`."""
        placement = self._by_job.get(job_id)
        return placement is not None and (placement.executor_id, placement.attempt) == (
            executor_id,
            attempt,
        )

    def confirm(self, job_id: str, now: float) -> None:
        """The executor listed the job in a heartbeat at `now`."""
        self._by_job[job_id] = replace(self._by_job[job_id], seen=now)

    def release(self, job_id: str, executor_id: str, attempt: int) -> bool:
        """Free the job's place, unless the report is about another placement (a late report
        of an earlier attempt, possibly from the same executor); True if it was freed."""
        if not self.holds(job_id, executor_id, attempt):
            return False
        self.pop(job_id)
        return True

    def on(self, executor_id: str) -> list[str]:
        """The jobs placed on `executor_id`."""
        return [job for job, p in self._by_job.items() if p.executor_id == executor_id]

    def load(self, executor_id: str) -> int:
        """How many jobs are placed on `executor_id`."""
        return self._load[executor_id]

    def orphans(self, live: Container[str]) -> dict[str, str]:
        """Job id to executor id, for jobs placed on executors not in `live`."""
        return {j: p.executor_id for j, p in self._by_job.items() if p.executor_id not in live}

    def by_instance(self) -> Counter[str]:
        """How many jobs of each instance are placed."""
        return Counter(p.instance for p in self._by_job.values())

    def busy(self, exclusive: set[str]) -> set[str]:
        """The exclusive backends (devices) a placed job holds."""
        return {p.backend for p in self._by_job.values() if p.backend in exclusive}

    def choose(
        self, job: JobSubmitted, executors: LiveExecutors, busy: set[str]
    ) -> ExecutorState | None:
        """The executor `job` goes to now: one that offers its backend, is not draining and
        has the most free capacity; None if none can take it (or its device is `busy`)."""
        if job.backend in busy:
            return None
        candidates = [
            e
            for e in executors
            if not e.draining and job.backend in e.backends and self.load(e.id) < e.capacity
        ]
        # No backlog at a busy executor: a job queued behind a long one there would wait while
        # another executor is free (or joins a moment later).
        return max(candidates, key=lambda e: e.capacity - self.load(e.id), default=None)
