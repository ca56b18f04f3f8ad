from qrt_common.messages import JobSubmitted
from qrt_scheduler.queue import PendingQueue


def job(n: int, instance: str = "h/g/p", priority: int = 0, backend: str = "aer_simulator"):
    return JobSubmitted(f"j{n}", backend, instance, float(n), priority)


def drain(queue: PendingQueue, can_run=lambda j: True) -> list[str]:
    taken = []
    while (j := queue.take(can_run)) is not None:
        taken.append(j.job_id)
    return taken


def test_one_instance_goes_in_submission_order():
    queue = PendingQueue()
    for n in (3, 1, 2):  # re-queued jobs keep their place by submission time
        queue.add(job(n))
    assert drain(queue) == ["j1", "j2", "j3"]


def test_instances_take_turns():
    queue = PendingQueue()
    for n in range(6):
        queue.add(job(n, "big/g/p"))
    queue.add(job(10, "small/g/p"))
    queue.add(job(11, "other/g/p"))
    order = drain(queue)
    # The busy instance does not starve the others: each gets a turn early.
    assert order.index("j10") <= 2 and order.index("j11") <= 2
    assert [j for j in order if j in {f"j{n}" for n in range(6)}] == [f"j{n}" for n in range(6)]


def test_priority_goes_first():
    queue = PendingQueue()
    queue.add(job(1))
    queue.add(job(2, "other/g/p"))
    queue.add(job(3, priority=5))
    assert drain(queue)[0] == "j3"


def test_jobs_nobody_can_run_wait_without_blocking_others():
    queue = PendingQueue()
    queue.add(job(1, backend="device"))
    queue.add(job(2))
    assert drain(queue, lambda j: j.backend != "device") == ["j2"]
    assert len(queue) == 1 and "j1" in queue
    assert queue.depth_by_backend() == {"device": 1}


def test_add_is_idempotent_and_remove_works():
    queue = PendingQueue()
    queue.add(job(1))
    queue.add(job(1))
    assert len(queue) == 1
    assert queue.remove("j1") is not None and queue.remove("j1") is None
    assert len(queue) == 0 and drain(queue) == []
