import asyncio

from qrt_common.bus import InMemoryBus, open_bus


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


async def test_messages_are_copies_and_a_failing_handler_does_not_stop_the_queue():
    bus = InMemoryBus()
    seen: list = []
    done = asyncio.Event()

    async def handler(body):
        if body["n"] == 0:
            raise RuntimeError("poison")
        seen.append(body)
        done.set()

    await bus.consume("q", handler, prefetch=1)
    original = {"n": 0}
    await bus.send("q", original)
    original["n"] = 99
    await bus.send("q", {"n": 1})
    await asyncio.wait_for(done.wait(), 5)
    assert seen == [{"n": 1}]
    await bus.close()


def test_unknown_bus_url_is_refused():
    try:
        open_bus("carrier-pigeon://")
    except ValueError as exc:
        assert "QRT_BUS_URL" in str(exc)
    else:
        raise AssertionError("expected a ValueError")
