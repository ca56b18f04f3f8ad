import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from qrt_common.bus import open_bus
from qrt_common.bus import rabbitmq as rabbitmq_bus
from qrt_common.bus.base import REDELIVERY_LIMIT, MessageBus
from qrt_common.bus.memory import InMemoryBus
from qrt_common.bus.rabbitmq import RabbitBus
from qrt_common.errors import ConfigurationError, MalformedMessage
from tests.support.mesh import RABBITMQ_URL, delete_namespace
from tests.support.waiting import eventually


async def test_queue_delivers_each_message_once_across_consumers():
    bus = InMemoryBus()
    got_a: list = []
    got_b: list = []
    done = asyncio.Event()

    async def a(body):
        got_a.append(body["n"])
        if len(got_a) + len(got_b) == 100:
            done.set()

    async def b(body):
        got_b.append(body["n"])
        if len(got_a) + len(got_b) == 100:
            done.set()

    await bus.consume("q", a, prefetch=2)
    await bus.consume("q", b, prefetch=2)
    for n in range(100):
        await bus.send("q", {"n": n})
    await asyncio.wait_for(done.wait(), 5)
    assert sorted(got_a + got_b) == list(range(100))
    await bus.close()


async def test_topic_copies_to_every_subscriber_in_order():
    bus = InMemoryBus()
    first: list = []
    second: list = []

    async def one(body):
        first.append(body["n"])

    async def two(body):
        second.append(body["n"])

    await bus.subscribe("t", one)
    await bus.subscribe("t", two)
    for n in range(50):
        await bus.publish("t", {"n": n})
    await eventually(
        lambda: (len(first), len(second)),
        "both subscribers get all 50",
        until=lambda n: n == (50, 50),
    )
    assert first == second == list(range(50))
    await bus.close()


async def test_poison_goes_to_dead_letters_and_the_queue_goes_on():
    bus = InMemoryBus(retry_delay=0.01)
    seen: list = []
    dead: list = []
    done = asyncio.Event()

    async def handler(body):
        if body["n"] == 0:
            raise MalformedMessage("poison")
        seen.append(body)
        done.set()

    async def on_dead(body):
        dead.append(body)

    await bus.consume_dead_letters(on_dead)
    await bus.consume("q", handler, prefetch=1)
    original = {"n": 0, "job_id": "j"}
    await bus.send("q", original)
    original["n"] = 99  # the bus took a copy
    await bus.send("q", {"n": 1})
    await asyncio.wait_for(done.wait(), 5)
    assert seen == [{"n": 1}]
    assert dead == [{"n": 0, "job_id": "j", "_reason": "MalformedMessage: poison", "_source": "q"}]
    await bus.close()


async def test_the_in_process_bus_hands_over_what_json_carries():
    bus = InMemoryBus()
    got: asyncio.Queue = asyncio.Queue()
    await bus.subscribe("t", got.put)
    await bus.consume("q", got.put)
    # A lone surrogate (a client's JSON may hold one), a tuple, a float: as a broker would.
    body = {"text": "a \udc80 b", "pair": (1, 2), "at": 1.5, "none": None, "nested": {"k": [True]}}
    await bus.publish("t", body)
    await bus.send("q", body)
    expected = {**body, "pair": [1, 2]}
    assert [await asyncio.wait_for(got.get(), 5) for _ in range(2)] == [expected, expected]
    await bus.close()


async def test_transient_failures_are_retried_then_dead_lettered():
    bus = InMemoryBus(retry_delay=0.001)
    attempts: list = []
    dead: list = []

    async def flaky(body):
        attempts.append(body["n"])
        if body["n"] == 1 and attempts.count(1) < 3:
            raise RuntimeError("store hiccup")
        if body["n"] == 2:
            raise RuntimeError("always broken")

    async def on_dead(body):
        dead.append(body)

    await bus.consume_dead_letters(on_dead)
    await bus.consume("q", flaky, prefetch=1)
    await bus.send("q", {"n": 1})
    await bus.send("q", {"n": 2})
    await eventually(lambda: dead, "the always broken message is dead-lettered")
    assert attempts.count(1) == 3 and attempts.count(2) == REDELIVERY_LIMIT + 1
    assert [d["n"] for d in dead] == [2] and "11 deliveries" in dead[0]["_reason"]
    await bus.close()


def test_unknown_bus_url_is_refused():
    try:
        open_bus("carrier-pigeon://")
    except ConfigurationError as exc:
        assert "QRT_BUS_URL" in str(exc)
    else:
        raise AssertionError("expected a ValueError")


@pytest.fixture(params=["memory", "rabbitmq"])
def bus_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    if kind == "rabbitmq":
        request.getfixturevalue("rabbitmq")  # started, if it is down
    return kind


@pytest.fixture
async def bus(bus_kind: str, monkeypatch) -> AsyncIterator[MessageBus]:
    """Each bus, retrying a failed message at once (rather than after a second)."""
    if bus_kind == "memory":
        memory = InMemoryBus(retry_delay=0.001)
        yield memory
        await memory.close()
        return
    monkeypatch.setattr(rabbitmq_bus, "RETRY_DELAY", 0.001)
    namespace = f"qrt-test-{uuid.uuid4().hex[:8]}"
    rabbit = RabbitBus(RABBITMQ_URL, namespace=namespace)
    await rabbit.connect()
    try:
        yield rabbit
    finally:
        await rabbit.close()
        await delete_namespace(RABBITMQ_URL, namespace, ["q", "dead-letters"], ["dead-letters"])


async def test_only_a_malformed_message_is_dead_lettered_at_once(bus: MessageBus):
    deliveries: Counter[str] = Counter()
    dead: list[dict] = []

    async def handler(body):
        deliveries[body["n"]] += 1
        if body["n"] == "malformed":
            raise MalformedMessage("no such field")
        # An ordinary error, even a ValueError, says nothing about the message: another
        # delivery may well succeed.
        if body["n"] == "flaky" and deliveries["flaky"] < 3:
            raise ValueError("the store hiccuped")
        if body["n"] == "broken":
            raise ValueError("never works")

    async def on_dead(body):
        dead.append(body)

    await bus.consume_dead_letters(on_dead)
    await bus.consume("q", handler, prefetch=1)
    for n in ("malformed", "flaky", "broken"):
        await bus.send("q", {"n": n})
    # One at a time, in order: once "broken" is given up on, the others are done with.
    await eventually(lambda: len(dead), "two messages dead-lettered", until=lambda n: n >= 2)
    reasons = {letter["n"]: letter["_reason"] for letter in dead}
    assert len(dead) == 2 and set(reasons) == {"malformed", "broken"}
    assert (
        deliveries["malformed"] == 1 and reasons["malformed"] == "MalformedMessage: no such field"
    )
    assert [letter["_source"] for letter in dead if letter["n"] == "malformed"] == ["q"]
    assert deliveries["flaky"] == 3
    # The first delivery and REDELIVERY_LIMIT more, on either bus.
    assert deliveries["broken"] == REDELIVERY_LIMIT + 1
    if isinstance(bus, InMemoryBus):
        assert reasons["broken"] == f"not handled after {REDELIVERY_LIMIT + 1} deliveries"
    else:
        assert reasons["broken"].startswith("the broker dead-lettered it (delivery_limit)")
