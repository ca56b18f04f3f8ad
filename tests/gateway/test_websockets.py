"""Websocket streams of a job on the gateway alone: what was stored is replayed, live updates
(as the ledger announces them) follow, and the stream closes with the job's status."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType

from qrt_common.jobs import JobStatus
from qrt_common.messages import UPDATES_TOPIC, EventKind, JobEvent, JobEvents
from qrt_common.wire import encode
from qrt_gateway import websockets

from .conftest import Harness

S = JobStatus
WAIT = 30.0
"""Seconds a stream may take to send its next frame (a deadline, not a pause)."""


async def received(ws: aiohttp.ClientWebSocketResponse) -> str:
    """The next text frame."""
    message = await ws.receive(timeout=WAIT)
    assert message.type is WSMsgType.TEXT, message
    text: str = message.data
    return text


async def rest(ws: aiohttp.ClientWebSocketResponse) -> tuple[list[str], Any, str | None]:
    """The text frames up to the close, the close code and the close message."""
    texts: list[str] = []
    while True:
        message = await ws.receive(timeout=WAIT)
        if message.type is WSMsgType.TEXT:
            texts.append(message.data)
            continue
        assert message.type is WSMsgType.CLOSE, message
        return texts, message.data, message.extra


async def running_job(gw: Harness, program: str = "noop") -> str:
    job_id: str = (await gw.submit(program))["id"]
    await gw.move(job_id, S.RUNNING)
    return job_id


def update(job_id: str, *events: JobEvent) -> dict[str, Any]:
    return encode(JobEvents(job_id, list(events)))


def event(job_id: str, kind: EventKind, seq: int = 0, **fields: Any) -> JobEvent:
    return JobEvent(job_id, kind, attempt=1, executor_id="ex1", seq=seq, **fields)


async def test_the_stream_of_an_ended_job_replays_its_interims_and_result_then_closes(gw: Harness):
    job_id = (await gw.submit("noop"))["id"]
    await gw.move(job_id, S.RUNNING, S.QUEUED, S.RUNNING)
    await gw.store.add_interim(job_id, 1, 0, '"first attempt"')
    await gw.store.add_interim(job_id, 2, 1, '{"step": 2}')
    await gw.store.add_interim(job_id, 2, 0, '{"step": 1}')
    await gw.store.set_result(job_id, '{"answer": 42}')
    await gw.move(job_id, S.COMPLETED)
    async with gw.client.ws_connect(f"/stream/jobs/{job_id}") as ws:
        texts, code, message = await rest(ws)
    # A notice says that what follows is the second attempt's.
    notice = json.dumps({"__qrt__": {"attempt": 2, "reason": None}})
    assert texts == ['"first attempt"', notice, '{"step": 1}', '{"step": 2}', '{"answer": 42}']
    assert (code, message) == (aiohttp.WSCloseCode.OK, "Completed")


async def test_the_stream_of_a_job_that_ended_without_a_result_closes_with_its_status(gw: Harness):
    job_id = await running_job(gw)
    await gw.store.add_interim(job_id, 1, 0, "1")
    await gw.move(job_id, S.CANCELLED_RAN_TOO_LONG)
    async with gw.client.ws_connect(f"/stream/jobs/{job_id}") as ws:
        assert await rest(ws) == (["1"], aiohttp.WSCloseCode.OK, "Cancelled - Ran too long")


async def test_a_stream_of_an_unknown_job_is_404(gw: Harness):
    for path in ("/stream/jobs/nope", "/stream/jobs/nope/logs"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await gw.client.ws_connect(path)
        assert caught.value.status == 404


async def test_a_live_update_reaches_an_open_stream_and_the_end_closes_it(gw: Harness):
    job_id = await running_job(gw)
    await gw.store.add_interim(job_id, 1, 0, '"stored"')
    async with gw.client.ws_connect(f"/stream/jobs/{job_id}") as ws:
        # The stream watches the job before it answers the handshake: no update is missed.
        assert await received(ws) == '"stored"'
        hub = gw.gateway.streams
        await gw.store.add_interim(job_id, 1, 1, '"live"')
        await hub.on_update(update(job_id, event(job_id, EventKind.INTERIM, 1, data='"live"')))
        assert await received(ws) == '"live"'
        # An update about another job, a log line and a replay of what was sent change nothing.
        await hub.on_update(update("other", event("other", EventKind.INTERIM, 2, data='"x"')))
        await hub.on_update(update(job_id, event(job_id, EventKind.LOG, 0, data="a log line\n"),
                                   event(job_id, EventKind.INTERIM, 0, data='"stored"')))  # fmt: skip
        # An interim stored but never announced (a missed update) still goes out at the end.
        await gw.store.add_interim(job_id, 1, 2, '"missed"')
        await gw.store.set_result(job_id, '"the result"')
        await gw.move(job_id, S.COMPLETED)
        await hub.on_update(
            update(
                job_id,
                event(job_id, EventKind.RESULT, data='"the result"'),
                event(job_id, EventKind.FINISHED, status="Completed"),
            )
        )
        assert await rest(ws) == (['"missed"', '"the result"'], aiohttp.WSCloseCode.OK, "Completed")


async def test_updates_arrive_through_the_bus(gw: Harness):
    job_id = await running_job(gw)
    async with gw.client.ws_connect(f"/stream/jobs/{job_id}") as ws:
        await gw.store.add_interim(job_id, 1, 0, '{"n": 1}')
        await gw.bus.publish(
            UPDATES_TOPIC, update(job_id, event(job_id, EventKind.INTERIM, data='{"n": 1}'))
        )
        assert json.loads(await received(ws)) == {"n": 1}
        await gw.move(job_id, S.FAILED, reason="boom")
        await gw.bus.publish(
            UPDATES_TOPIC, update(job_id, event(job_id, EventKind.FINISHED, status="Failed"))
        )
        assert await rest(ws) == ([], aiohttp.WSCloseCode.OK, "Failed")


async def test_a_running_interim_that_is_not_final_does_not_close_the_stream(gw: Harness):
    job_id = await running_job(gw)
    hub = gw.gateway.streams
    async with gw.client.ws_connect(f"/stream/jobs/{job_id}") as ws:
        # A FINISHED event that puts the job back in the queue is not its end.
        await hub.on_update(update(job_id, event(job_id, EventKind.FINISHED, status="Queued")))
        await hub.on_update(update(job_id, event(job_id, EventKind.INTERIM, 5, data='"after"')))
        assert await received(ws) == '"after"'
        await gw.move(job_id, S.CANCELLED)
        await hub.on_update(update(job_id, event(job_id, EventKind.FINISHED, status="Cancelled")))
        assert await rest(ws) == ([], aiohttp.WSCloseCode.OK, "Cancelled")


async def test_the_log_stream_replays_the_log_then_follows_it(gw: Harness):
    job_id = await running_job(gw)
    await gw.store.append_log(job_id, 1, 0, "tick 0\n")
    hub = gw.gateway.streams
    async with gw.client.ws_connect(f"/stream/jobs/{job_id}/logs") as ws:
        assert await received(ws) == "tick 0\n"
        await gw.store.append_log(job_id, 1, 1, "tick 1\n")
        await hub.on_update(update(job_id, event(job_id, EventKind.LOG, 1, data="tick 1\n"),
                                   event(job_id, EventKind.INTERIM, 0, data='"not a log"')))  # fmt: skip
        assert await received(ws) == "tick 1\n"
        await gw.store.set_result(job_id, '"done"')
        await gw.move(job_id, S.COMPLETED)
        await hub.on_update(update(job_id, event(job_id, EventKind.RESULT, data='"done"'),
                                   event(job_id, EventKind.FINISHED, status="Completed")))  # fmt: skip
        # A log stream carries no result.
        assert await rest(ws) == ([], aiohttp.WSCloseCode.OK, "Completed")


@pytest.fixture
def quiet_soon(monkeypatch: pytest.MonkeyPatch) -> None:
    """Streams look at the store after 0.05 s without an update, not 5 s."""
    monkeypatch.setattr(websockets, "QUIET_SECONDS", 0.05)


async def test_a_quiet_stream_sees_from_the_store_that_the_job_ended(gw: Harness, quiet_soon):
    job_id = await running_job(gw)
    async with gw.client.ws_connect(f"/stream/jobs/{job_id}") as ws:
        # No update announces any of this (the broker lost it).
        await gw.store.add_interim(job_id, 1, 0, '"unannounced"')
        await gw.store.set_result(job_id, '"result"')
        await gw.move(job_id, S.COMPLETED)
        assert await rest(ws) == (
            ['"unannounced"', '"result"'],
            aiohttp.WSCloseCode.OK,
            "Completed",
        )


async def test_a_stream_of_a_job_deleted_while_watched_closes_saying_so(gw: Harness, quiet_soon):
    job_id = await running_job(gw)
    async with gw.client.ws_connect(f"/stream/jobs/{job_id}") as ws:
        await gw.move(job_id, S.CANCELLED)
        await gw.store.delete_job(job_id)
        assert await rest(ws) == ([], websockets.CLOSE_GONE, "job deleted")


async def test_a_live_stream_announces_a_new_attempt_with_why_the_last_one_ended(gw: Harness):
    job_id = await running_job(gw)
    async with gw.client.ws_connect(f"/stream/jobs/{job_id}") as ws:
        await gw.gateway.streams.on_update(
            update(job_id, event(job_id, EventKind.INTERIM, data='"one"'))
        )
        assert await received(ws) == '"one"'
        lost = JobEvent(
            job_id, EventKind.FINISHED, 1, status=S.QUEUED, reason="executor ex1 was lost"
        )
        again = JobEvent(job_id, EventKind.RUNNING, 2, "ex2")
        await gw.gateway.streams.on_update(update(job_id, lost, again))
        notice = json.loads(await received(ws))
        assert notice == {"__qrt__": {"attempt": 2, "reason": "executor ex1 was lost"}}
        interim = JobEvent(job_id, EventKind.INTERIM, 2, "ex2", seq=0, data='"one again"')
        await gw.gateway.streams.on_update(update(job_id, interim))
        assert await received(ws) == '"one again"'


async def test_a_log_stream_has_no_notices_the_log_says_it_itself(gw: Harness):
    job_id = await running_job(gw)
    await gw.move(job_id, S.QUEUED, S.RUNNING)
    await gw.store.append_log(job_id, 1, 0, "first\n")
    await gw.store.append_log(job_id, 2, 0, "[qrt] attempt 2 on executor ex2\nsecond\n")
    await gw.move(job_id, S.COMPLETED)
    async with gw.client.ws_connect(f"/stream/jobs/{job_id}/logs") as ws:
        texts, _, _ = await rest(ws)
    assert texts == ["first\n", "[qrt] attempt 2 on executor ex2\nsecond\n"]
