"""The executors the scheduler knows are alive, kept from their heartbeats."""

from __future__ import annotations

from qrt_common.messages import Heartbeat
from qrt_scheduler.executors import ExecutorState, LiveExecutors


def beat(
    executor_id: str,
    capacity: int = 2,
    backends: tuple[str, ...] = ("aer_simulator",),
    exclusive: tuple[str, ...] = (),
    running: dict[str, int] | None = None,
    draining: bool = False,
) -> Heartbeat:
    return Heartbeat(
        executor_id,
        capacity,
        [*backends, *exclusive],
        running or {},
        list(exclusive),
        draining,
    )


def test_an_executors_state_is_what_its_heartbeat_says():
    state = ExecutorState.of(
        beat("e1", 3, exclusive=("starmon-5",), running={"j1": 2}, draining=True), 12.5
    )
    assert state == ExecutorState(
        "e1",
        3,
        frozenset({"aer_simulator", "starmon-5"}),
        frozenset({"starmon-5"}),
        12.5,
        True,
        frozenset({"j1"}),
    )


def test_heard_says_whether_the_executor_is_new_and_keeps_its_latest_heartbeat():
    live = LiveExecutors()
    assert live.heard(beat("e1", capacity=2)) is True
    first = live.get("e1")
    assert first is not None and first.capacity == 2
    assert live.heard(beat("e1", capacity=5, draining=True)) is False
    latest = live.get("e1")
    assert latest is not None and (latest.capacity, latest.draining) == (5, True)
    assert latest.last_seen >= first.last_seen
    assert live.heard(beat("e2")) is True
    assert len(live) == 2 and "e1" in live and "e3" not in live
    assert sorted(e.id for e in live) == ["e1", "e2"]


def test_an_executor_is_silent_once_its_last_heartbeat_is_older_than_the_timeout():
    live = LiveExecutors()
    live.heard(beat("e1"))
    state = live.get("e1")
    assert state is not None
    seen = state.last_seen
    assert live.silent(seen + 9.99, 0.0, 10.0) == []
    assert live.silent(seen + 10.01, 0.0, 10.0) == ["e1"]


def test_silence_counts_from_when_the_schedulers_own_connection_came_back():
    live = LiveExecutors()
    live.heard(beat("e1"))
    live.heard(beat("e2"))
    state = live.get("e1")
    assert state is not None
    seen = state.last_seen
    # The scheduler could not hear anyone until `reconnected`: silence before it says nothing.
    reconnected = seen + 30.0
    assert live.silent(seen + 35.0, reconnected, 10.0) == []
    assert sorted(live.silent(reconnected + 10.5, reconnected, 10.0)) == ["e1", "e2"]


def test_leave_forgets_an_executor_and_gives_what_was_known_of_it():
    live = LiveExecutors()
    live.heard(beat("e1", capacity=3))
    gone = live.leave("e1")
    assert gone is not None and gone.id == "e1" and gone.capacity == 3
    assert "e1" not in live and live.get("e1") is None and len(live) == 0
    assert live.leave("e1") is None
    assert live.heard(beat("e1")) is True


def test_exclusive_backends_are_the_devices_any_live_executor_offers():
    live = LiveExecutors()
    assert live.exclusive_backends() == set()
    live.heard(beat("e1", exclusive=("starmon-5",)))
    live.heard(beat("e2", exclusive=("starmon-5", "spin-2")))
    live.heard(beat("e3"))
    assert live.exclusive_backends() == {"starmon-5", "spin-2"}
    live.leave("e2")
    assert live.exclusive_backends() == {"starmon-5"}


def test_capacity_is_the_live_executors_together():
    live = LiveExecutors()
    assert live.capacity() == 0
    live.heard(beat("e1", capacity=4))
    live.heard(beat("e2", capacity=1))
    assert live.capacity() == 5
    live.heard(beat("e1", capacity=2))
    assert live.capacity() == 3
    live.leave("e2")
    assert live.capacity() == 2


def test_iterating_is_safe_while_executors_leave():
    live = LiveExecutors()
    for name in ("e1", "e2", "e3"):
        live.heard(beat(name))
    for state in live:
        live.leave(state.id)
    assert len(live) == 0
