"""Chaos on the mesh: gateways, the scheduler, executors and the broker node killed at random
while jobs arrive below capacity. Every accepted job ends, none is lost, no job runs two attempts
at once, and a job that loses its executor QRT_MAX_ATTEMPTS times ends Failed saying so.

Minutes long, so the main suite leaves them out: `make test-chaos` runs them (`-s` prints the
numbers). QRT_CHAOS_SEED replays one run's choices."""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from qrt_common.jobs import Job, JobStatus
from qrt_common.store.base import JobQuery
from qrt_common.store.sqlite import SQLiteStore
from tests.support.mesh import Mesh, PrivateBroker, overlapping_attempts
from tests.support.platform import submit, wait_for
from tests.support.programs import merge_programs
from tests.support.waiting import eventually

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]

MAX_ATTEMPTS = 3
GAVE_UP = f"gave up after {MAX_ATTEMPTS} attempts"
CAPACITY = 2
"""Jobs per executor; three executors: six at once, where under three run on average."""
SUBMIT_EVERY = 0.6
"""Seconds between submits."""
LONG_SHARE = 0.1
"""Jobs that run 4 to 6 s, longer than an executor's loss takes to notice: a job process that
outlived its executor would overlap the job's next attempt. The others run 0.5 to 2 s."""
ROUNDS = Counter(executor=6, gateway=5, scheduler=4, broker=3)
"""What each round of chaos kills (the broker node: stopped and started again)."""
ROUND_PAUSE = (4.0, 7.0)
"""Seconds from one round's victim being back to the next round."""
DOWNTIME = (0.0, 2.0)
"""Seconds a victim stays down."""


async def jobs_in_store(mesh: Mesh) -> dict[str, Job]:
    store = SQLiteStore(mesh.store)
    await store.open()
    try:
        jobs, _ = await store.list_jobs(JobQuery(limit=100_000))
        return {job.id: job for job in jobs}
    finally:
        await store.close()


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank `q` percentile of `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Tally:
    """What the submitter and the chaos did."""

    kills: Counter[str] = field(default_factory=Counter)
    submitted: int = 0
    accepted: list[str] = field(default_factory=list)
    refused: Counter[int] = field(default_factory=Counter)
    """Answers other than 200, by status."""
    unanswered: int = 0
    """Submits that got no answer (a gateway killed meanwhile, or not listening yet)."""

    def summary(self, jobs: dict[str, Job], seconds: float) -> str:
        accepted = set(self.accepted)
        ours = [jobs[job_id] for job_id in self.accepted if job_id in jobs]
        latencies = [(j.ended - j.created).total_seconds() for j in ours if j.ended is not None]
        strays = {j.id: j.status.value for j in jobs.values() if j.id not in accepted}
        lines = [
            f"chaos numbers ({seconds:.0f} s):",
            f"  kills: {dict(self.kills)}",
            f"  jobs: {self.submitted} submitted, {len(self.accepted)} accepted, "
            f"refused {dict(self.refused)}, {self.unanswered} unanswered "
            f"(in the store anyway: {strays or 'none'})",
            f"  accepted by status: {dict(Counter(j.status.value for j in ours))}",
            f"  attempts: {dict(sorted(Counter(j.attempt for j in ours).items()))}",
        ]
        if latencies:
            lines.append(
                f"  latency submit->ended: p50 {percentile(latencies, 50):.2f} s, "
                f"p99 {percentile(latencies, 99):.2f} s, max {max(latencies):.2f} s"
            )
        return "\n".join(lines)


async def test_random_kills_of_every_service_and_the_broker(
    tmp_path: Path, private_broker: PrivateBroker
):
    seed = int(os.environ.get("QRT_CHAOS_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    print(f"\nQRT_CHAOS_SEED={seed}")
    began = time.monotonic()
    mesh = Mesh(tmp_path, merge_programs(tmp_path / "programs"), broker_url=private_broker.url)
    record = mesh.shared / "record.txt"
    mesh.env.update(QRT_SWEEP_INTERVAL="1", QRT_MAX_ATTEMPTS=str(MAX_ATTEMPTS))
    tally = Tally()
    try:
        mesh.scheduler()
        executors = [mesh.executor(capacity=CAPACITY) for _ in range(3)]
        gateways = {f"gateway-{n}": mesh.gateway() for n in range(2)}
        for name in ["scheduler", *executors]:
            mesh.wait_until_up(name)

        def kill_and_restart(kind: str) -> None:
            # Between kill and start the victim is down: that stretch is the scenario.
            downtime = rng.uniform(*DOWNTIME)
            if kind == "broker":
                private_broker.stop()
                time.sleep(downtime)
                private_broker.start()
            elif kind == "executor":
                victim = rng.choice(executors)
                mesh.kill(victim)
                executors.remove(victim)
                time.sleep(downtime)
                # A replacement, like a pod's, comes with an id of its own.
                executors.append(mesh.executor(capacity=CAPACITY))
                mesh.wait_until_up(executors[-1])
            else:
                victim = rng.choice(list(gateways)) if kind == "gateway" else "scheduler"
                mesh.kill(victim)
                time.sleep(downtime)
                mesh.restart(victim)
                mesh.wait_until_up(victim)
            tally.kills[kind] += 1

        async def chaos() -> None:
            rounds = list(ROUNDS.elements())
            rng.shuffle(rounds)
            for kind in rounds:
                # The pause between rounds is the scenario: jobs arrive and run meanwhile.
                await asyncio.sleep(rng.uniform(*ROUND_PAUSE))
                await asyncio.to_thread(kill_and_restart, kind)

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:

            async def one_submit(url: str, seconds: float) -> None:
                body = {"programId": "record", "params": {"path": str(record), "seconds": seconds}}
                try:
                    async with http.post(f"{url}/jobs", json=body) as response:
                        if response.status == 200:
                            tally.accepted.append((await response.json())["id"])
                        else:
                            tally.refused[response.status] += 1
                except (aiohttp.ClientError, TimeoutError):
                    tally.unanswered += 1

            async def submitter(stop: asyncio.Event) -> None:
                submits: set[asyncio.Task[None]] = set()
                while not stop.is_set():
                    live = [n for n in gateways if mesh.processes[n].poll() is None]
                    url = gateways[rng.choice(live or list(gateways))]
                    tally.submitted += 1
                    long = rng.random() < LONG_SHARE
                    seconds = round(rng.uniform(4.0, 6.0) if long else rng.uniform(0.5, 2.0), 2)
                    task = asyncio.create_task(one_submit(url, seconds))
                    submits.add(task)
                    task.add_done_callback(submits.discard)
                    # Steady arrivals, whatever each submit meets: the rate is the scenario.
                    await asyncio.sleep(SUBMIT_EVERY)
                await asyncio.gather(*submits)

            stop = asyncio.Event()
            submitting = asyncio.create_task(submitter(stop))
            try:
                await chaos()
            finally:
                stop.set()
                await submitting

            async def numbers() -> str:
                return tally.summary(await jobs_in_store(mesh), time.monotonic() - began)

            stored = await jobs_in_store(mesh)
            # The gateway answers 200 only after storing the job.
            lost = [job_id for job_id in tally.accepted if job_id not in stored]
            assert lost == [], f"accepted jobs not in the store: {lost}\n{await numbers()}"

            async def unfinished() -> dict[str, str]:
                jobs = await jobs_in_store(mesh)
                return {
                    job_id: f"{jobs[job_id].status.value} attempt {jobs[job_id].attempt}"
                    for job_id in tally.accepted
                    if not jobs[job_id].status.is_final
                }

            try:
                await eventually(
                    unfinished, "every accepted job ended", until=lambda left: not left,
                    timeout=240,
                )  # fmt: skip
                # Every service came back: a job through each gateway runs to its end.
                for url in gateways.values():
                    async with aiohttp.ClientSession(base_url=url) as per_gateway:
                        tally.submitted += 1
                        job_id = await submit(per_gateway, "record", path=str(record), seconds=0.2)
                        tally.accepted.append(job_id)
                        finished = await wait_for(per_gateway, job_id, timeout=120)
                        assert finished["status"] == "Completed", finished
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{await numbers()}") from exc
        jobs = await jobs_in_store(mesh)
        summary = tally.summary(jobs, time.monotonic() - began)
        print(summary)
        down = [
            n for n in [*gateways, "scheduler", *executors] if mesh.processes[n].poll() is not None
        ]
        assert down == [], summary
        assert set(tally.kills) == set(ROUNDS), summary
        assert tally.accepted, summary
        assert set(tally.refused) <= {503}, summary
        ended = [jobs[job_id] for job_id in tally.accepted]
        bad = [
            (j.id, j.status.value, j.attempt, j.reason)
            for j in ended
            if j.status is not JobStatus.COMPLETED
            and not (
                j.status is JobStatus.FAILED
                and j.attempt == MAX_ATTEMPTS
                and j.reason is not None
                and j.reason.endswith(GAVE_UP)
            )
        ]
        assert bad == [], summary
        assert all(1 <= j.attempt <= MAX_ATTEMPTS for j in ended), summary
        assert overlapping_attempts(record) == [], summary
    finally:
        mesh.stop_all()


async def test_a_job_that_loses_its_executor_every_time_fails_naming_its_attempts(mesh: Mesh):
    record = mesh.shared / "record.txt"
    mesh.env.update(QRT_SWEEP_INTERVAL="1", QRT_MAX_ATTEMPTS=str(MAX_ATTEMPTS))
    mesh.scheduler()
    executor = mesh.executor(capacity=1)
    url = mesh.gateway()
    async with aiohttp.ClientSession(base_url=url) as http:
        job_id = await submit(http, "record", path=str(record), seconds=60.0)
        victims: list[str] = []

        async def next_attempt_or_end() -> Job | None:
            job = (await jobs_in_store(mesh)).get(job_id)
            if job is None or job.status.is_final:
                return job
            attempt = len(victims) + 1
            started = job.status is JobStatus.RUNNING and job.attempt == attempt
            # Its job process runs: the executor dies with a job under way, not one arriving.
            return job if started and len(pids_of(record, job_id)) == attempt else None

        while True:
            job = await eventually(
                next_attempt_or_end, f"attempt {len(victims) + 1} of {job_id} runs, or it ended",
                timeout=60,
            )  # fmt: skip
            assert job is not None  # only a job satisfies the wait
            if job.status.is_final:
                break
            assert job.executor_id == executor, job
            mesh.kill(executor)
            victims.append(executor)
            executor = mesh.executor(capacity=1)
        assert len(victims) == MAX_ATTEMPTS, victims
        assert job.status is JobStatus.FAILED and job.attempt == MAX_ATTEMPTS, job
        assert job.reason == f"executor {victims[-1]} was lost; {GAVE_UP}", job.reason
    assert overlapping_attempts(record) == []
    assert len(pids_of(record, job_id)) == MAX_ATTEMPTS


def pids_of(record: Path, job_id: str) -> set[str]:
    """The job processes that ran `job_id`, from `record`."""
    if not record.exists():
        return set()
    lines = [line.split() for line in record.read_text().splitlines()]
    # A line being written may show only in part.
    return {line[1] for line in lines if len(line) == 4 and line[0] == job_id}
