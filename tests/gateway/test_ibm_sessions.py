"""IBM's `/api/v1/sessions` as a careless or hostile caller uses it: the times a session asks
for are bounded by the operator's settings."""

from __future__ import annotations

from qrt_common.jobs import Job, JobStatus, utcnow
from qrt_common.store.base import JobQuery

from .conftest import Harness, MakeGateway
from .test_ibm_api import announce, device_report, ibm


async def test_a_session_cannot_ask_to_hold_its_device_longer_than_the_operator_allows(
    make_gateway: MakeGateway,
):
    gw = await make_gateway(session_max_interactive_ttl=120, session_max_ttl=3600)
    greedy = {"mode": "dedicated", "backend": "aer_simulator", "interactive_ttl": 99999999,
              "max_ttl": 99999999}  # fmt: skip
    made = await ibm(gw, "POST", "/sessions", json=greedy)
    assert (made["interactive_ttl"], made["max_ttl"]) == (120, 3600)
    stored = await gw.gateway.store.get_session(made["id"])
    assert stored is not None and stored.interactive_ttl == 120  # what the scheduler reads
    plain = await ibm(
        gw, "POST", "/sessions", json={"mode": "dedicated", "backend": "aer_simulator"}
    )
    assert (plain["interactive_ttl"], plain["max_ttl"]) == (60, 3600)
    # The default interactive TTL never exceeds the bound either.
    tight = await make_gateway(session_max_interactive_ttl=5)
    made = await ibm(tight, "POST", "/sessions", json={"mode": "batch", "backend": "aer_simulator"})
    assert made["interactive_ttl"] == 5


async def test_a_devices_status_names_the_session_holding_it(gw: Harness):
    await announce(gw, device_report({}))
    status = await ibm(gw, "GET", "/backends/Tiny-3/status")
    assert status["session_hold"] is None
    made = await ibm(gw, "POST", "/sessions", json={"mode": "dedicated", "backend": "Tiny-3"})
    ended = Job(id="j1", program_id="sampler", backend="Tiny-3", params="{}",
                max_execution_time=60, session_id=made["id"], status=JobStatus.COMPLETED,
                started=utcnow(), ended=utcnow())  # fmt: skip
    await gw.gateway.store.add_job(ended)
    hold = (await ibm(gw, "GET", "/backends/Tiny-3/status"))["session_hold"]
    assert hold is not None and hold["session_id"] == made["id"], hold
    assert hold["instance"] == "ibm-q/open/main" and hold["until"].endswith("Z")
    # An admin who found it may end it: the device is free at once.
    await ibm(gw, "DELETE", f"/sessions/{made['id']}/close", 204)
    assert (await ibm(gw, "GET", "/backends/Tiny-3/status"))["session_hold"] is None
    # A simulator is never held.
    assert (await ibm(gw, "GET", "/backends/aer_simulator/status"))["session_hold"] is None


async def test_a_device_job_runs_at_most_the_operators_time_on_a_device(make_gateway: MakeGateway):
    gw = await make_gateway(device_max_execution_time=30)  # noop's own limit is 60 s
    await announce(gw, device_report({}))
    on_device = await gw.call("POST", "/jobs", json={"programId": "noop", "backend": "Tiny-3",
                                                     "maxExecutionTime": 31536000})  # fmt: skip
    on_aer = await gw.call("POST", "/jobs", json={"programId": "noop",
                                                  "maxExecutionTime": 50})  # fmt: skip
    jobs = {job.id: job for job in (await gw.gateway.store.list_jobs(JobQuery()))[0]}
    assert jobs[on_device["id"]].max_execution_time == 30
    assert jobs[on_aer["id"]].max_execution_time == 50  # a simulator's stays as asked
