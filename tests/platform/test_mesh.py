"""The mesh on a real RabbitMQ: gateways, a scheduler and executors as separate processes.

Nothing accepted is lost, and no job runs twice at the same time, whatever is killed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections import Counter
from pathlib import Path

import aio_pika
import aiohttp
import pytest

from qrt_common.bus.rabbitmq import RabbitBus
from qrt_common.jobs import Job, JobStatus
from qrt_common.store.base import JobQuery
from qrt_common.store.sqlite import SQLiteStore
from tests.support.mesh import (
    RABBITMQ_URL,
    Mesh,
    PrivateBroker,
    overlapping_attempts,
    wait_for_port,
)
from tests.support.platform import get_json, logs_of, submit, wait_for
from tests.support.programs import merge_programs
from tests.support.waiting import eventually

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("rabbitmq")]


async def jobs_in_store(mesh: Mesh) -> list[Job]:
    store = SQLiteStore(mesh.store)
    await store.open()
    try:
        jobs, _ = await store.list_jobs(JobQuery(limit=100_000))
        return jobs
    finally:
        await store.close()


async def all_ended(http: aiohttp.ClientSession, ids: list[str], timeout: float = 90) -> list[dict]:
    return [await wait_for(http, job_id, timeout=timeout) for job_id in ids]


async def test_200_jobs_spread_over_3_executors(mesh: Mesh):
    mesh.scheduler()
    executors = [mesh.executor(capacity=4) for _ in range(3)]
    url = mesh.gateway()
    # Every executor is up before the jobs come: one still starting on a loaded machine could
    # see the 200 short jobs done by the others.
    for name in executors:
        mesh.wait_until_up(name)
    async with aiohttp.ClientSession(base_url=url) as http:
        gate = asyncio.Semaphore(16)

        async def one() -> str:
            async with gate:
                return await submit(http, "noop")

        ids = await asyncio.gather(*(one() for _ in range(200)))
        jobs = await all_ended(http, ids)
    assert Counter(j["status"] for j in jobs) == {"Completed": 200}
    assert {j["attempt"] for j in jobs} == {1}
    placed = Counter(job.executor_id for job in await jobs_in_store(mesh))
    assert set(placed) == set(executors), placed


async def test_any_start_order_works_on_the_quorum_queues_each_service_declares(mesh: Mesh):
    url = mesh.gateway()  # alone, in a namespace nobody has declared anything in yet
    async with aiohttp.ClientSession(base_url=url) as http:
        job_id = await submit(http, "noop")
        mesh.executor()
        mesh.scheduler()
        assert (await wait_for(http, job_id, timeout=60))["status"] == "Completed"
        # As the operator sees them: durable quorum queues, each one the services use.
        rabbitmqctl = await asyncio.create_subprocess_exec(
            "rabbitmqctl", "list_queues", "-q", "--formatter", "json", "name", "type", "durable",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        listed, _ = await rabbitmqctl.communicate()
        ours = {
            queue["name"].removeprefix(f"{mesh.namespace}."): (queue["type"], queue["durable"])
            for queue in json.loads(listed)
            if queue["name"].startswith(f"{mesh.namespace}.")
        }
    assert ours == dict.fromkeys(
        ["jobs.submitted", "jobs.events", "jobs.cancel", "dead-letters",
         f"executor.{mesh.executors[0]}"],
        ("quorum", True),
    )  # fmt: skip


async def test_sigkill_of_an_executor_mid_run(mesh: Mesh):
    record = mesh.shared / "record.txt"
    mesh.scheduler()
    victim = mesh.executor(capacity=3)
    mesh.executor(capacity=3)
    url = mesh.gateway()
    async with aiohttp.ClientSession(base_url=url) as http:
        ids = [await submit(http, "record", path=str(record), seconds=2.0) for _ in range(12)]

        async def victim_runs_some() -> bool:
            jobs = await jobs_in_store(mesh)
            return any(j.status is JobStatus.RUNNING and j.executor_id == victim for j in jobs)

        await eventually(victim_runs_some, f"executor {victim} runs a job", timeout=30)
        on_victim = {j.id for j in await jobs_in_store(mesh) if j.executor_id == victim}
        mesh.signal(victim, signal.SIGKILL)
        jobs = await all_ended(http, ids)
    assert Counter(j["status"] for j in jobs) == {"Completed": 12}
    moved = [j for j in jobs if j["id"] in on_victim]
    assert moved and all(j["attempt"] == 2 for j in moved)
    assert overlapping_attempts(record) == []


async def test_sigterm_drains_an_executor(mesh: Mesh):
    record = mesh.shared / "record.txt"
    mesh.scheduler()
    patient = mesh.executor(capacity=2, QRT_DRAIN_SECONDS="30")
    url = mesh.gateway()
    async with aiohttp.ClientSession(base_url=url) as http:
        ids = [await submit(http, "record", path=str(record), seconds=1.0) for _ in range(2)]
        for job_id in ids:
            await wait_for(http, job_id, {"Running"}, timeout=30)
        mesh.signal(patient, signal.SIGTERM)
        # Draining, it finishes what it runs, takes nothing new and then exits.
        later = await submit(http, "noop")
        assert mesh.wait(patient, timeout=30) == 0
        jobs = await all_ended(http, ids, timeout=5)
        assert [(j["status"], j["attempt"]) for j in jobs] == [("Completed", 1)] * 2
        assert (await get_json(http, f"/jobs/{later}"))["status"] == "Queued"
        mesh.executor()
        assert (await wait_for(http, later))["status"] == "Completed"


async def test_sigterm_hands_back_what_does_not_finish_in_time(mesh: Mesh):
    record = mesh.shared / "record.txt"
    mesh.scheduler()
    hasty = mesh.executor(capacity=2, QRT_DRAIN_SECONDS="0.5")
    url = mesh.gateway()
    async with aiohttp.ClientSession(base_url=url) as http:
        ids = [await submit(http, "record", path=str(record), seconds=4.0) for _ in range(2)]
        for job_id in ids:
            await wait_for(http, job_id, {"Running"}, timeout=30)
        mesh.executor(capacity=2)
        mesh.signal(hasty, signal.SIGTERM)
        assert mesh.wait(hasty, timeout=30) == 0
        jobs = await all_ended(http, ids)
        logs = [await logs_of(http, job_id) for job_id in ids]
    assert [(j["status"], j["attempt"]) for j in jobs] == [("Completed", 2)] * 2
    assert all("[qrt] attempt 2 on executor" in log for log in logs)
    assert overlapping_attempts(record) == []


async def test_scheduler_restart_loses_nothing_and_runs_nothing_twice(mesh: Mesh):
    record = mesh.shared / "record.txt"
    mesh.scheduler()
    mesh.executor(capacity=2)
    mesh.executor(capacity=2)
    url = mesh.gateway()
    async with aiohttp.ClientSession(base_url=url) as http:
        ids = [await submit(http, "record", path=str(record), seconds=1.0) for _ in range(10)]
        await wait_for(http, ids[0], {"Running"}, timeout=30)
        mesh.signal("scheduler", signal.SIGKILL)
        mesh.wait("scheduler")
        ended_before = ends(record)
        more = [await submit(http, "record", path=str(record), seconds=0.2) for _ in range(4)]
        # Events pile up for the scheduler that is down: at least one job ends meanwhile.
        await eventually(
            lambda: ends(record), "a job ends while the scheduler is down",
            until=lambda ended: ended > ended_before,
        )  # fmt: skip
        mesh.scheduler()
        jobs = await all_ended(http, ids + more)
    assert Counter(j["status"] for j in jobs) == {"Completed": 14}
    assert {j["attempt"] for j in jobs} == {1}
    assert overlapping_attempts(record) == []


def ends(record: Path) -> int:
    """How many attempts a `record` program's file shows ending."""
    if not record.exists():
        return 0
    return sum(line.split()[2:3] == ["end"] for line in record.read_text().splitlines())


async def test_two_gateways_stream_the_same_job(mesh: Mesh):
    mesh.scheduler()
    mesh.executor()
    first, second = mesh.gateway(), mesh.gateway()
    async with aiohttp.ClientSession() as http:
        # Ticks at 0, 1.5 and 3 s, the result at 4.5 s: sooner than a stream that heard no
        # update looks at the store (after 5 quiet seconds), so each tick must come live.
        async with http.post(f"{first}/jobs", json={"programId": "sleeper",
                                                     "params": {"seconds": 4.5, "ticks": 3}}) as response:  # fmt: skip
            job_id = (await response.json())["id"]

        async def follow(url: str) -> list[tuple[str, str]]:
            """Each message, with the job's status right after it came."""
            seen = []
            async with http.ws_connect(f"{url}/stream/jobs/{job_id}") as ws:
                async for message in ws:
                    async with http.get(f"{first}/jobs/{job_id}") as response:
                        seen.append((message.data, (await response.json())["status"]))
            return seen

        streams = await asyncio.gather(follow(first), follow(second))
    for stream in streams:
        assert [data for data, _ in stream] == ['{"tick": 0}', '{"tick": 1}', '{"tick": 2}',
                                                '"woke up"']  # fmt: skip
        assert [status for _, status in stream[:3]] == ["Running"] * 3, stream


async def test_cancel_reaches_the_job_wherever_it_runs(mesh: Mesh):
    mesh.scheduler()
    mesh.executor(capacity=1)
    mesh.executor(capacity=1)
    first, second = mesh.gateway(), mesh.gateway()
    async with aiohttp.ClientSession(base_url=first) as http:
        ids = [await submit(http, "sleeper", seconds=60) for _ in range(2)]
        for job_id in ids:
            await wait_for(http, job_id, {"Running"}, timeout=30)
    async with aiohttp.ClientSession(base_url=second) as http:
        for job_id in ids:
            async with http.post(f"/jobs/{job_id}/cancel") as response:
                assert response.status == 204
        jobs = await all_ended(http, ids, timeout=15)
    assert [j["status"] for j in jobs] == ["Cancelled", "Cancelled"]


async def test_a_poison_message_is_dead_lettered_and_recorded_on_its_job(mesh: Mesh):
    mesh.scheduler()
    mesh.executor()
    url = mesh.gateway()
    async with aiohttp.ClientSession(base_url=url) as http:
        job_id = await submit(http, "sleeper", seconds=60)
        await wait_for(http, job_id, {"Running"}, timeout=30)
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            poison = {"job_id": job_id, "kind": "exploded", "attempt": "one"}
            await channel.default_exchange.publish(
                aio_pika.Message(json.dumps(poison).encode()),
                routing_key=f"{mesh.namespace}.jobs.events",
            )
        job = await wait_for(http, job_id, timeout=15)
    assert job["status"] == "Failed"
    assert job["reason"].startswith("a message about this job could not be handled")
    assert "MalformedMessage: not a JobEvents: events: required field missing" in job["reason"]


async def test_a_broker_restart_mid_run(tmp_path: Path, private_broker: PrivateBroker):
    mesh = Mesh(tmp_path, merge_programs(tmp_path / "programs"), broker_url=private_broker.url)
    record = mesh.shared / "record.txt"
    mesh.env["QRT_HEARTBEAT_TIMEOUT"] = "5"
    try:
        mesh.scheduler()
        mesh.executor(capacity=2)
        mesh.executor(capacity=2)
        url = mesh.gateway()
        # Each executor serves its ops port once it has started: the broker goes away only
        # from services that are up (one starting up would face no broker, not a restart).
        for name in mesh.executors:
            wait_for_port(mesh.ops_ports[name], mesh.processes[name])
        async with aiohttp.ClientSession(base_url=url) as http:
            ids = [await submit(http, "record", path=str(record), seconds=3.0) for _ in range(8)]
            await wait_for(http, ids[0], {"Running"}, timeout=30)
            # Jobs accepted while the scheduler is frozen reach it only over the bus, across the
            # restart (it reads the store only when it starts).
            mesh.freeze_between_writes("scheduler")
            held = [await submit(http, "record", path=str(record), seconds=0.5) for _ in range(2)]
            # Messages the broker confirmed and nobody took yet outlive it: durable queues,
            # persistent messages.
            probe = RabbitBus(private_broker.url, namespace=f"{mesh.namespace}-probe")
            await probe.connect()
            for n in range(20):
                await probe.send("kept", {"n": n})
            await probe.close()
            private_broker.stop()

            # While the broker is away a submit is refused, and leaves nothing behind.
            async with http.get("/jobs") as response:
                before = (await response.json())["count"]
            async with http.post("/jobs", json={"programId": "noop"}) as response:
                assert response.status == 503, await response.text()
                assert "bus is unavailable" in (await response.json())["detail"]
            async with http.get("/jobs") as response:
                assert (await response.json())["count"] == before

            private_broker.start()
            mesh.signal("scheduler", signal.SIGCONT)
            kept = await kept_messages(private_broker.url, f"{mesh.namespace}-probe", 20)
            assert sorted(kept) == list(range(20))
            after = await submit_when_possible(http)
            jobs = await all_ended(http, [*ids, *held, after], timeout=120)
            # Every executor is back: four jobs at once on two idle executors of capacity two
            # go two to each.
            spread = [await submit(http, "record", path=str(record), seconds=1.0) for _ in range(4)]
            jobs += await all_ended(http, spread)
        assert Counter(j["status"] for j in jobs) == {"Completed": 15}
        placed = {job.id: job.executor_id for job in await jobs_in_store(mesh)}
        assert Counter(placed[job_id] for job_id in spread) == dict.fromkeys(mesh.executors, 2)
        assert overlapping_attempts(record) == []
    finally:
        mesh.stop_all()


async def kept_messages(url: str, namespace: str, count: int) -> list[int]:
    """The numbers of the messages taken from the `kept` queue, until `count` came or 30 s went."""
    bus = RabbitBus(url, namespace=namespace)
    await bus.connect()
    taken: list[int] = []
    all_taken = asyncio.Event()

    async def take(body: dict) -> None:
        taken.append(body["n"])
        if len(taken) == count:
            all_taken.set()

    try:
        await bus.consume("kept", take)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_taken.wait(), 30)
        return taken
    finally:
        await bus.close()


async def submit_when_possible(http: aiohttp.ClientSession, timeout: float = 60) -> str:
    """The id of a job the gateway took once it could again (it refuses with 503 until then)."""

    async def submitted() -> str | None:
        async with http.post("/jobs", json={"programId": "noop"}) as response:
            if response.status == 503:
                return None
            assert response.status == 200, await response.text()
            job_id: str = (await response.json())["id"]
            return job_id

    taken = await eventually(submitted, "the gateway takes a job again", timeout=timeout, every=0.5)
    assert taken is not None  # only an id satisfies the wait
    return taken


async def test_uploaded_programs_travel_to_executor_processes(mesh: Mesh):
    from tests.support.programs import b64_zip_of

    def versioned(version: str) -> dict[str, str]:
        return {
            "program.py": "import os, time\nfrom helpers import VERSION\n\n"
            "def main(backend, user_messenger):\n"
            "    time.sleep(0.5)  # four at once fill one executor: the others go to the other\n"
            "    return {'version': VERSION, 'pid': os.getpid()}\n",
            "helpers.py": f"VERSION = {version!r}\n",
        }

    mesh.scheduler()
    executors = {mesh.executor(capacity=2) for _ in range(2)}
    url = mesh.gateway()
    for name in executors:  # an executor serves its ops port once it has announced itself
        wait_for_port(mesh.ops_ports[name], mesh.processes[name])
    async with aiohttp.ClientSession(base_url=url) as http:
        body = {"name": "traveller", "data": b64_zip_of(versioned("v1"))}
        async with http.post("/programs", json=body) as response:
            assert response.status == 201, await response.text()
            program_id = (await response.json())["id"]

        async def versions() -> list[str]:
            ids = list(await asyncio.gather(*(submit(http, program_id) for _ in range(4))))
            jobs = await all_ended(http, ids)
            assert {j["status"] for j in jobs} == {"Completed"}, jobs
            results = []
            for job_id in ids:
                async with http.get(f"/jobs/{job_id}/results") as response:
                    results.append(json.loads(await response.json())["version"])
            return results

        assert await versions() == ["v1"] * 4
        new_code = {"data": b64_zip_of(versioned("v2"))}
        async with http.put(f"/programs/{program_id}/data", json=new_code) as response:
            assert response.status == 200, await response.text()
        assert await versions() == ["v2"] * 4
    placed = {job.executor_id for job in await jobs_in_store(mesh)}
    assert placed == executors  # both executor processes unpacked and ran it
