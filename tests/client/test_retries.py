"""Failure-safe submits: a dropped connection or a 503 is retried with the same Idempotency-Key,
and the platform answers with the first try's job, so no job is ever made twice."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest

from qrt_client import AsyncClient, Client, Unavailable
from tests.support.dev import DevServer
from tests.support.proxies import FlakyProxy


def keys_of(proxy: FlakyProxy) -> list[str]:
    return [
        m.group(1) for h in proxy.heads if (m := re.search(r"(?im)^idempotency-key: ([^\r\n]+)", h))
    ]


@pytest.fixture
def dropping(qrt_dev: DevServer) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(qrt_dev.port, drops=1)
    yield proxy
    proxy.close()


def test_a_submit_whose_answer_was_lost_is_retried_into_the_same_job(
    dropping: FlakyProxy, client: Client
):
    tag = f"t-{uuid.uuid4()}"
    with Client(dropping.url, key="secret-key") as flaky:
        job = flaky.run("hello-quantum", {"greeting": "once"}, tags=[tag])
        assert job.result(timeout=60)  # it ran
    first, retry = keys_of(dropping)[:2]
    assert first == retry and uuid.UUID(first)  # the same fresh key on both tries
    assert dropping.heads[0].startswith("POST /jobs") and dropping.heads[1].startswith("POST /jobs")
    assert "authorization: bearer secret-key" in dropping.heads[0].lower()
    page = client.jobs(tags=[tag])
    assert page.count == 1 and page.jobs[0].id == job.id


async def test_an_async_submit_is_retried_the_same_way(dropping: FlakyProxy, client: Client):
    tag = f"t-{uuid.uuid4()}"
    async with AsyncClient(dropping.url) as flaky:
        job = await flaky.run("hello-quantum", {"greeting": "once"}, tags=[tag],
                              idempotency_key="my-own-key")  # fmt: skip
        await job.wait(60)
    assert keys_of(dropping)[:2] == ["my-own-key", "my-own-key"]
    assert [j.id for j in client.jobs(tags=[tag]).jobs] == [job.id]


def test_a_503_is_retried_and_a_lasting_one_given_up(qrt_dev: DevServer, client: Client):
    tag = f"t-{uuid.uuid4()}"
    proxy = FlakyProxy(qrt_dev.port, unavailable=2)
    try:
        with Client(proxy.url) as flaky:
            job = flaky.run("hello-quantum", {"greeting": "x"}, tags=[tag])
        assert len(set(keys_of(proxy))) == 1 and len(keys_of(proxy)) == 3
        assert [j.id for j in client.jobs(tags=[tag]).jobs] == [job.id]
    finally:
        proxy.close()
    proxy = FlakyProxy(qrt_dev.port, unavailable=10)
    try:
        with Client(proxy.url, retries=2) as flaky, pytest.raises(Unavailable) as raised:
            flaky.run("hello-quantum", {"greeting": "x"}, tags=[tag])
        assert raised.value.detail == "the gateway is away" and len(proxy.heads) == 3
    finally:
        proxy.close()


def test_the_same_key_twice_is_one_job(client: Client):
    key = str(uuid.uuid4())
    first = client.run("hello-quantum", {"greeting": "k"}, idempotency_key=key)
    again = client.run("hello-quantum", {"greeting": "k"}, idempotency_key=key)
    other = client.run("hello-quantum", {"greeting": "k"})
    assert first.id == again.id != other.id
