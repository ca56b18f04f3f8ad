"""The pending queue: which waiting job goes next.

Higher priority first; among jobs of equal priority, instances (hub/group/project) take turns,
and within an instance jobs go in the order they were submitted.
"""

from __future__ import annotations

import itertools
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator

from qrt_common.messages import JobSubmitted


class PendingQueue:
    """Jobs waiting for an executor, taken fairly across instances."""

    def __init__(self) -> None:
        self._by_instance: dict[str, OrderedDict[str, JobSubmitted]] = {}
        self._instance_of: dict[str, str] = {}
        self._last_served: dict[str, int] = {}
        self._turns = itertools.count()

    def __len__(self) -> int:
        return len(self._instance_of)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._instance_of

    def __iter__(self) -> Iterator[JobSubmitted]:
        for jobs in self._by_instance.values():
            yield from jobs.values()

    def add(self, job: JobSubmitted) -> None:
        """Queue `job` (again): a job already queued keeps its place."""
        if job.job_id in self._instance_of:
            return
        self._instance_of[job.job_id] = job.instance
        self._by_instance.setdefault(job.instance, OrderedDict())[job.job_id] = job

    def remove(self, job_id: str) -> JobSubmitted | None:
        """Take `job_id` out of the queue, if it is there."""
        instance = self._instance_of.pop(job_id, None)
        if instance is None:
            return None
        jobs = self._by_instance[instance]
        job = jobs.pop(job_id)
        if not jobs:
            del self._by_instance[instance]
        return job

    def take(self, can_run: Callable[[JobSubmitted], bool]) -> JobSubmitted | None:
        """Remove and return the next job that `can_run`, or None if no waiting job can."""
        best: tuple[int, int, float] | None = None
        chosen: JobSubmitted | None = None
        for instance, jobs in self._by_instance.items():
            runnable = [j for j in jobs.values() if can_run(j)]
            if not runnable:
                continue
            candidate = min(runnable, key=lambda j: (-j.priority, j.created))
            # Highest priority, then the instance served longest ago, then the oldest job.
            key = (-candidate.priority, self._last_served.get(instance, -1), candidate.created)
            if best is None or key < best:
                best, chosen = key, candidate
        if chosen is None:
            return None
        self._last_served[chosen.instance] = next(self._turns)
        self.remove(chosen.job_id)
        return chosen

    def depth_by_backend(self) -> Counter[str]:
        """How many jobs wait for each backend."""
        return Counter(job.backend for job in self)
