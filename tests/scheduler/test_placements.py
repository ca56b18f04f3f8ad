"""Which executor holds which job attempt, and where a job goes next."""

from __future__ import annotations

import random

from qrt_common.messages import Heartbeat, JobSubmitted
from qrt_scheduler.executors import LiveExecutors
from qrt_scheduler.placements import Placement, Placements

DEVICE = "starmon-5"


def submitted(job_id: str, backend: str = "aer_simulator") -> JobSubmitted:
    return JobSubmitted(job_id, backend, "ibm-q/open/main", 0.0)


def executors(*beats: Heartbeat) -> LiveExecutors:
    live = LiveExecutors()
    for one in beats:
        live.heard(one)
    return live


def beat(
    executor_id: str,
    capacity: int = 2,
    devices: tuple[str, ...] = (),
    draining: bool = False,
) -> Heartbeat:
    return Heartbeat(
        executor_id, capacity, ["aer_simulator", *devices], {}, list(devices), draining
    )


def test_a_placement_holds_its_executor_and_attempt_only():
    placements = Placements()
    placements["j1"] = Placement("e1", "aer_simulator", 2)
    assert placements.holds("j1", "e1", 2)
    assert not placements.holds("j1", "e1", 1)
    assert not placements.holds("j1", "e2", 2)
    assert not placements.holds("j2", "e1", 2)
    assert "j1" in placements and len(placements) == 1 and list(placements) == ["j1"]


def test_confirming_records_when_the_executor_listed_the_job():
    placements = Placements()
    placements["j1"] = Placement("e1", "aer_simulator", 1, since=100.0)
    assert placements["j1"].heard_of == 100.0
    placements.confirm("j1", 250.0)
    confirmed = placements["j1"]
    assert (confirmed.seen, confirmed.heard_of, confirmed.since) == (250.0, 250.0, 100.0)
    assert (confirmed.executor_id, confirmed.attempt) == ("e1", 1)


def test_a_late_report_of_another_attempt_does_not_free_the_place():
    placements = Placements()
    placements["j1"] = Placement("e1", "aer_simulator", 2)
    assert placements.release("j1", "e1", 1) is False
    assert placements.release("j1", "e2", 2) is False
    assert placements.holds("j1", "e1", 2)
    assert placements.release("j1", "e1", 2) is True
    assert "j1" not in placements
    assert placements.release("j1", "e1", 2) is False


def test_restore_does_not_undo_a_newer_placement():
    placements = Placements()
    old = Placement("e1", "aer_simulator", 1)
    placements.restore("j1", old)
    assert placements.get("j1") == old
    newer = Placement("e2", "aer_simulator", 2)
    placements["j1"] = newer
    placements.restore("j1", old)
    assert placements.get("j1") == newer
    assert placements.pop("j1") == newer and placements.pop("j1") is None


def test_jobs_on_executors_that_are_not_alive_are_orphans():
    placements = Placements()
    placements["j1"] = Placement("e1", "aer_simulator", 1)
    placements["j2"] = Placement("e2", "aer_simulator", 1)
    placements["j3"] = Placement("e2", DEVICE, 1)
    assert placements.orphans({"e1", "e2"}) == {}
    assert placements.orphans({"e1"}) == {"j2": "e2", "j3": "e2"}
    assert placements.orphans(executors(beat("e2"))) == {"j1": "e1"}
    assert sorted(placements.on("e2")) == ["j2", "j3"] and placements.load("e2") == 2
    assert placements.on("e9") == [] and placements.load("e9") == 0


def test_a_device_is_busy_while_a_placed_job_holds_it():
    placements = Placements()
    placements["j1"] = Placement("e1", "aer_simulator", 1)
    assert placements.busy({DEVICE}) == set()
    placements["j2"] = Placement("e1", DEVICE, 1)
    assert placements.busy({DEVICE, "spin-2"}) == {DEVICE}
    assert placements.busy(set()) == set()


def test_a_job_goes_to_the_executor_with_the_most_free_capacity():
    live = executors(beat("small", capacity=2), beat("big", capacity=4))
    placements = Placements()
    chosen = placements.choose(submitted("j1"), live, set())
    assert chosen is not None and chosen.id == "big"
    for n in range(3):
        placements[f"b{n}"] = Placement("big", "aer_simulator", 1)
    # big has 1 free place now, small 2.
    chosen = placements.choose(submitted("j2"), live, set())
    assert chosen is not None and chosen.id == "small"


def test_a_full_or_draining_executor_takes_no_job():
    live = executors(beat("full", capacity=1), beat("leaving", capacity=8, draining=True))
    placements = Placements()
    placements["j0"] = Placement("full", "aer_simulator", 1)
    assert placements.choose(submitted("j1"), live, set()) is None
    assert placements.choose(submitted("j1"), executors(), set()) is None


def test_a_job_goes_only_to_an_executor_offering_its_backend():
    live = executors(beat("sim", capacity=8), beat("lab", capacity=1, devices=(DEVICE,)))
    placements = Placements()
    chosen = placements.choose(submitted("j1", DEVICE), live, set())
    assert chosen is not None and chosen.id == "lab"
    assert placements.choose(submitted("j2", "spin-2"), live, set()) is None


def test_a_job_for_a_busy_device_waits():
    live = executors(beat("lab", capacity=4, devices=(DEVICE,)))
    placements = Placements()
    placements["j1"] = Placement("lab", DEVICE, 1)
    busy = placements.busy(live.exclusive_backends())
    assert busy == {DEVICE}
    assert placements.choose(submitted("j2", DEVICE), live, busy) is None
    chosen = placements.choose(submitted("j3"), live, busy)
    assert chosen is not None and chosen.id == "lab"


def test_each_executor_s_load_follows_every_change_of_the_placements():
    """The load a dispatch round reads is kept as placements change (it is asked for every
    waiting job and every executor); checked against a count of the placements themselves."""
    rng = random.Random(7)
    placed = Placements()
    executors = ["ex-a", "ex-b", "ex-c"]
    for step in range(3000):
        job = f"job-{rng.randrange(40)}"
        executor = rng.choice(executors)
        attempt = rng.randrange(1, 3)
        action = rng.randrange(5)
        if action == 0:
            placed[job] = Placement(executor, "aer_simulator", attempt)
        elif action == 1:
            placed.pop(job)
        elif action == 2:
            placed.restore(job, Placement(executor, "aer_simulator", attempt))
        elif action == 3:
            placed.release(job, executor, attempt)
        elif job in placed:
            placed.confirm(job, float(step))
        for name in executors:
            expected = sum(1 for _, p in placed.items() if p.executor_id == name)
            assert placed.load(name) == expected, (step, name)
