import asyncio

from qrt_common.bus import open_bus
from qrt_common.bus.base import DELIVERY_LIMIT
from qrt_common.bus.memory import InMemoryBus
from qrt_common.errors import ConfigurationError, MalformedMessage


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
    done = asyncio.Event()

    async def one(body):
        first.append(body["n"])

    async def two(body):
        second.append(body["n"])
        if len(second) == 50:
            done.set()

    await bus.subscribe("t", one)
    await bus.subscribe("t", two)
    for n in range(50):
        await bus.publish("t", {"n": n})
    await asyncio.wait_for(done.wait(), 5)
    await asyncio.sleep(0)
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
    for _ in range(500):
        if dead:
            break
        await asyncio.sleep(0.01)
    assert attempts.count(1) == 3 and attempts.count(2) == DELIVERY_LIMIT
    assert [d["n"] for d in dead] == [2] and "10 deliveries" in dead[0]["_reason"]
    await bus.close()


def test_unknown_bus_url_is_refused():
    try:
        open_bus("carrier-pigeon://")
    except ConfigurationError as exc:
        assert "QRT_BUS_URL" in str(exc)
    else:
        raise AssertionError("expected a ValueError")
