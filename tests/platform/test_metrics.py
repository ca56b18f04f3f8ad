"""Metrics and health endpoints: what each service exposes, read as Prometheus reads it."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from qrt_cli.dev import Platform
from qrt_common.metrics import UPLOADED_PROGRAM, serve_operations
from tests.support.platform import submit, wait_for
from tests.support.programs import b64_zip_of

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: aiohttp.ClientSession) -> Samples:
    async with http.get("/metrics") as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


on_the_modules_loop = pytest.mark.asyncio(loop_scope="module")
"""Of the tests on the module's platform (tests/conftest.py `platform`): each reads what its own
jobs changed, as differences between two scrapes."""


@on_the_modules_loop
async def test_the_platform_counts_requests_jobs_and_executors(platform: Platform):
    async with aiohttp.ClientSession(base_url=platform.url) as http:
        before = await scrape(http)
        ids = [await submit(http, "noop") for _ in range(3)]
        failing = await submit(http, "failing")
        for job_id in [*ids, failing]:
            await wait_for(http, job_id)
        async with http.get("/jobs/nope") as response:
            assert response.status == 404
        async with http.ws_connect(f"/stream/jobs/{ids[0]}") as ws:
            async for _ in ws:
                pass
        after = await scrape(http)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("qrt_http_requests_total", route="/jobs", method="POST", status="200") == 4
    assert grew("qrt_http_requests_total", route="/jobs/{job_id}", method="GET", status="404") == 1
    assert grew("qrt_http_request_duration_seconds_count", route="/jobs", method="POST") == 4
    assert grew("qrt_jobs_submitted_total") == 4
    assert grew("qrt_jobs_ended_total", status="Completed") == 3
    assert grew("qrt_jobs_ended_total", status="Failed") == 1
    assert grew("qrt_job_assignment_wait_seconds_count") == 4
    assert grew("qrt_job_duration_seconds_count", program="noop", outcome="Completed") == 3
    assert value(after, "qrt_executors_live") == 1
    assert value(after, "qrt_executors_capacity") == platform.settings.executor_capacity
    assert value(after, "qrt_executor_running_jobs") == 0
    assert value(after, "qrt_jobs", status="Queued") == 0
    assert value(after, "qrt_gateway_open_websockets") == 0
    assert value(after, "qrt_executor_warm_pool_size") >= 1


@on_the_modules_loop
async def test_an_uploaded_programs_id_stays_out_of_the_metrics(platform: Platform):
    # /metrics is read without a key: a private program's id is its owner's only.
    program = b64_zip_of({"program.py": "def main(backend, user_messenger, **kwargs):\n    pass\n"})
    upload = {"name": "secret-tool", "data": program, "hub": "acme", "group": "lab",
              "project": "x"}  # fmt: skip
    async with aiohttp.ClientSession(base_url=platform.url) as http:
        async with http.post("/programs", json=upload) as response:
            assert response.status == 201, await response.text()
            program_id = (await response.json())["id"]
        before = await scrape(http)
        body = {"programId": program_id, "hub": "acme", "group": "lab", "project": "x"}
        async with http.post("/jobs", json=body) as response:
            assert response.status == 200, await response.text()
            job_id = (await response.json())["id"]
        assert (await wait_for(http, job_id))["status"] == "Completed"
        ran = await submit(http, "noop")
        await wait_for(http, ran)
        after = await scrape(http)
        async with http.get("/metrics") as response:
            text = await response.text()
    assert program_id not in text and "secret-tool" not in text

    def grew(**labels: str) -> float:
        name = "qrt_job_duration_seconds_count"
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew(program=UPLOADED_PROGRAM, outcome="Completed") == 1
    assert grew(program="noop", outcome="Completed") == 1


async def test_the_operations_server_reports_readiness():
    state = {"bus": True}

    async def bus_ready() -> bool:
        return state["bus"]

    runner = await serve_operations("127.0.0.1", 0, {"bus": bus_ready})
    url = "http://{}:{}".format(*runner.addresses[0][:2])
    try:
        async with aiohttp.ClientSession(base_url=url) as http:
            async with http.get("/healthz") as response:
                assert (response.status, await response.json()) == (200, {"status": "ok"})
            async with http.get("/readyz") as response:
                assert response.status == 200
            state["bus"] = False
            async with http.get("/readyz") as response:
                assert response.status == 503
                assert (await response.json())["checks"] == {"bus": False}
            assert "qrt_jobs_submitted_total" in {name for name, _ in await scrape(http)}
    finally:
        await runner.cleanup()


def test_device_calibration_is_exported_as_the_protocol_maps_it():
    from qrt_executor.devices import calibration_metrics

    payload = {  # the three examples of the protocol's get_dynamic documentation, and oddities
        "fridge_temperature_in_mk": 8.4,
        "t1": {"__labels__": ["qubit"], "q0": 0.995, "q1": 0.988, "q2": None},
        "cnot_fidelity": {"__labels__": ["qubit1", "qubit2"], "q1": {"q0": 0.995}},
        "bad-name": 1.0,
        "flag": True,
    }
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in calibration_metrics("Starmon-5", payload)
        for s in family.samples
    }
    device = ("device", "Starmon-5")
    assert samples == {
        ("qi_fridge_temperature_in_mk", (device,)): 8.4,
        ("qi_t1", (device, ("qubit", "q0"))): 0.995,
        ("qi_t1", (device, ("qubit", "q1"))): 0.988,
        ("qi_cnot_fidelity", (device, ("qubit1", "q1"), ("qubit2", "q0"))): 0.995,
    }


@on_the_modules_loop
async def test_circuits_and_shots_run_by_job_processes_are_counted(platform: Platform):
    async with aiohttp.ClientSession(base_url=platform.url) as http:
        before = await scrape(http)
        job_id = await submit(http, "sample-program", iterations=3)
        assert (await wait_for(http, job_id))["status"] == "Completed"
        after = await scrape(http)
    circuits = value(after, "qrt_circuits_executed_total", backend="aer_simulator") - value(
        before, "qrt_circuits_executed_total", backend="aer_simulator"
    )
    shots = value(after, "qrt_shots_executed_total", backend="aer_simulator") - value(
        before, "qrt_shots_executed_total", backend="aer_simulator"
    )
    assert circuits == 3 and shots > 0
