"""The client's Service API verbs (`client.services`), sync and async, against a running
`qrt dev`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from qrt_client import AsyncClient, Client, Conflict, NotFound, WaitTimeout
from tests.support.dev import DevServer

STARTER = "planqk-starter"


@pytest.fixture
async def aclient(qrt_dev: DevServer) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(qrt_dev.url) as opened:
        yield opened


def test_start_wait_and_read_an_execution(client: Client):
    execution = client.services.start(STARTER, {"values": [1, 2, 3.5]}, {"round_off": True})
    assert execution.status in ("PENDING", "RUNNING") and execution.service == STARTER
    ended = client.services.wait(STARTER, execution.id, timeout=120)
    assert ended.status == "SUCCEEDED" and ended.ended_yet and ended.ended is not None
    result = client.services.result(STARTER, execution.id)
    assert result["result"] == {"sum": 6}
    assert client.services.interim_results(STARTER, execution.id) == [
        {"sum": 1}, {"sum": 3}, {"sum": 6.5}
    ]  # fmt: skip
    assert client.services.interim_results(STARTER, execution.id, last=True) == {"sum": 6.5}
    assert "Calculation successfully executed" in client.services.log(STARTER, execution.id)
    assert client.services.get(STARTER, execution.id) == ended
    assert execution.id in [e.id for e in client.services.executions(STARTER, limit=50)]


async def test_cancel_and_the_errors_of_an_execution(aclient: AsyncClient):
    services = aclient.services
    execution = await services.start("sleeper", params={"seconds": 120, "ticks": 120})
    with pytest.raises(Conflict, match="it has no result"):
        await services.result("sleeper", execution.id)
    with pytest.raises(WaitTimeout, match=f"execution {execution.id} is still"):
        await services.wait("sleeper", execution.id, timeout=0.2)
    await services.cancel("sleeper", execution.id)
    ended = await services.wait("sleeper", execution.id, timeout=120)
    assert ended.status == "CANCELLED"
    with pytest.raises(Conflict):
        await services.cancel("sleeper", execution.id)
    with pytest.raises(NotFound, match="service 'nope' not found"):
        await services.get("nope", execution.id)
    with pytest.raises(NotFound):
        await services.get(STARTER, execution.id)  # an execution of another service
