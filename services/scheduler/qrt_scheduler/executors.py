"""The executors the scheduler knows are alive, from their heartbeats."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from qrt_common.messages import Heartbeat


@dataclass(slots=True)
class ExecutorState:
    """What the scheduler knows of one executor, from its last heartbeat."""

    id: str
    capacity: int
    """Jobs it runs at once."""
    backends: frozenset[str]
    exclusive: frozenset[str]
    """Its backends that run one job at a time across the platform (devices)."""
    last_seen: float
    """`time.monotonic()` of its last heartbeat."""
    draining: bool = False
    """Takes no new job."""
    running: frozenset[str] = frozenset()
    """The jobs it said it holds (started or not)."""

    @classmethod
    def of(cls, beat: Heartbeat, now: float) -> ExecutorState:
        """What `beat`, heard at `now`, says of its executor."""
        return cls(
            beat.executor_id,
            beat.capacity,
            frozenset(beat.backends),
            frozenset(beat.exclusive_backends),
            now,
            beat.draining,
            frozenset(beat.running),
        )


class LiveExecutors:
    """Executors heard from within the heartbeat timeout, by id."""

    def __init__(self) -> None:
        self._by_id: dict[str, ExecutorState] = {}

    def __contains__(self, executor_id: object) -> bool:
        return executor_id in self._by_id

    def __iter__(self) -> Iterator[ExecutorState]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, executor_id: str) -> ExecutorState | None:
        """The executor with this id, if it is alive."""
        return self._by_id.get(executor_id)

    def heard(self, beat: Heartbeat) -> bool:
        """Record a heartbeat (not a leaving one); True if its executor was not known."""
        new = beat.executor_id not in self._by_id
        self._by_id[beat.executor_id] = ExecutorState.of(beat, time.monotonic())
        return new

    def leave(self, executor_id: str) -> ExecutorState | None:
        """Forget an executor (it said goodbye, or went silent); what was known of it."""
        return self._by_id.pop(executor_id, None)

    def silent(self, now: float, heard_from: float, timeout: float) -> list[str]:
        """Executors whose last heartbeat (or `heard_from`, when the scheduler's own
        connection came back later) is more than `timeout` seconds before `now`."""
        return [e.id for e in self._by_id.values() if now - max(e.last_seen, heard_from) > timeout]

    def exclusive_backends(self) -> set[str]:
        """Every backend some executor offers as exclusive (a device)."""
        return {backend for e in self._by_id.values() for backend in e.exclusive}

    def capacity(self) -> int:
        """Jobs the live executors run at once, together."""
        return sum(e.capacity for e in self._by_id.values())
