"""Typed messages on the wire: `plain`, bus messages encoded and decoded, and JSON frames."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from qrt_common import wire
from qrt_common.errors import MalformedMessage
from qrt_common.jobs import JobStatus, plain
from qrt_common.messages import (
    Assignment,
    CancelJob,
    EventKind,
    Heartbeat,
    JobEvent,
    JobEvents,
    JobSubmitted,
    StopJob,
)
from qrt_common.wire import Message, decode, encode, from_json, to_json


@dataclass(frozen=True)
class Inner:
    n: int
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner
    many: list[Inner] = field(default_factory=list)
    by_key: dict[str, Inner] = field(default_factory=dict)
    when: datetime | None = None


def test_plain_turns_dataclasses_into_dicts_everywhere_and_tuples_into_lists():
    when = datetime(2026, 1, 1, tzinfo=UTC)
    value = Outer("o", Inner(1, ("a", "b")), [Inner(2)], {"k": Inner(3)}, when)
    assert plain(value) == {
        "name": "o",
        "inner": {"n": 1, "tags": ["a", "b"]},
        "many": [{"n": 2, "tags": []}],
        "by_key": {"k": {"n": 3, "tags": []}},
        "when": when,
    }
    assert plain((Inner(1), [Inner(2)])) == [{"n": 1, "tags": []}, [{"n": 2, "tags": []}]]


def test_plain_leaves_scalars_and_other_values_as_they_are():
    marker = object()
    for value in ("s", 1, 1.5, True, None, marker):
        assert plain(value) is value
    assert plain({"a": [1, (2, 3)]}) == {"a": [1, [2, 3]]}


MESSAGES: list[Any] = [
    JobSubmitted("j1", "aer_simulator", "h/g/p", 1_767_225_600.25, priority=3),
    CancelJob("j1"),
    Assignment("j1", "echo", "aer_simulator", '{"a": 1}', 60, 2, "sha256:ab", "UEsDBA=="),
    Assignment("j1", "echo", "aer_simulator", "{}", 60, 1),
    JobEvents(
        "j1",
        [
            JobEvent("j1", EventKind.RUNNING, 1, "ex1", at=1.5),
            JobEvent("j1", EventKind.LOG, 1, "ex1", seq=4, data="tick\n", at=2.5),
            JobEvent(
                "j1", EventKind.FINISHED, 1, "ex1", status=JobStatus.FAILED, reason="boom", at=3.0
            ),
        ],
    ),
    Heartbeat("ex1", 4, ["aer_simulator", "starmon-5"], {"j1": 2}, ["starmon-5"], True, False),
    Heartbeat("ex2", 1, [], {}),
    StopJob("j1", JobStatus.CANCELLED, "ex1", 2),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_a_bus_message_survives_encode_json_and_decode(message):
    body = encode(message)
    carried = json.loads(json.dumps(body))  # what a broker hands the consumer
    assert decode(type(message), carried) == message


def test_an_encoded_message_is_a_plain_json_ready_dict():
    body = encode(MESSAGES[4])
    assert body["events"][1] == {
        "job_id": "j1", "kind": "log", "attempt": 1, "executor_id": "ex1", "seq": 4,
        "data": "tick\n", "status": None, "reason": None, "at": 2.5, "stage": None,
    }  # fmt: skip
    assert json.loads(json.dumps(body)) == body


def test_decode_gives_the_declared_types():
    event = decode(JobEvent, {"job_id": "j", "kind": "interim", "attempt": 1})
    assert event.kind is EventKind.INTERIM and event.seq == 0 and event.data is None
    beat = decode(Heartbeat, {"executor_id": "e", "capacity": 2, "backends": [], "running": {}})
    assert beat.exclusive_backends == [] and beat.draining is False and beat.leaving is False


@pytest.mark.parametrize(
    ("kind", "body", "named"),
    [
        (CancelJob, {}, "job_id: required field missing"),
        (CancelJob, {"job_id": ["j"]}, "job_id: Expected `str`, got `array`"),
        (
            Heartbeat,
            {"executor_id": "e", "capacity": "many", "backends": [], "running": {}},
            "capacity:",
        ),
        (
            Heartbeat,
            {"executor_id": "e", "capacity": 1, "backends": [], "running": {"j": "x"}},
            "running[...]:",
        ),
        (
            JobEvents,
            {"job_id": "j", "events": [{"job_id": "j", "kind": "exploded", "attempt": 1}]},
            "events[0].kind:",
        ),
        (
            StopJob,
            {"job_id": "j", "status": "Cancelled", "executor_id": "e"},
            "attempt: required field missing",
        ),
        (
            StopJob,
            {"job_id": "j", "status": "Exploded", "executor_id": "e", "attempt": 1},
            "status: Invalid enum value 'Exploded'",
        ),
        (
            JobEvents,
            {
                "job_id": "j",
                "events": [{"job_id": "j", "kind": "finished", "attempt": 1, "status": "Done"}],
            },
            "events[0].status: Invalid enum value 'Done'",
        ),
    ],
)
def test_decoding_a_wrong_body_is_malformed_naming_the_message_and_field(kind, body, named):
    with pytest.raises(MalformedMessage) as caught:
        decode(kind, body)
    assert str(caught.value).startswith(f"not a {kind.__name__}: {named}")


@pytest.mark.parametrize("body", [None, "text", 7, ["j"]], ids=repr)
def test_a_body_that_is_not_an_object_is_malformed(body):
    with pytest.raises(MalformedMessage, match=r"^not a CancelJob: "):
        decode(CancelJob, body)


class Ping(Message, frozen=True, tag="ping", tag_field="kind"):
    n: int


class Pong(Message, frozen=True, tag="pong", tag_field="kind"):
    text: str


Frame = Ping | Pong


def test_to_json_writes_compact_json_that_from_json_reads_back():
    data = to_json(Ping(3))
    assert data == b'{"kind":"ping","n":3}'
    assert from_json(Ping, data) == Ping(3)
    assert from_json(Ping, data.decode()) == Ping(3)
    message = MESSAGES[4]
    assert from_json(JobEvents, to_json(message)) == message


def test_from_json_of_a_union_picks_the_member_by_its_tag():
    assert from_json(Frame, to_json(Pong("hi"))) == Pong("hi")
    assert from_json(Frame, b'{"kind": "ping", "n": 5}') == Ping(5)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b'{"kind": "ping", "n": "five"}', "not a Ping or Pong: n: Expected `int`, got `str`"),
        (b'{"kind": "pang"}', "Invalid value 'pang'"),
        (b'{"n": 1}', "kind: required field missing"),
        (b"not json", "JSON is malformed"),
    ],
)
def test_from_json_of_a_wrong_frame_is_malformed_naming_the_field(data, named):
    with pytest.raises(MalformedMessage) as caught:
        from_json(Frame, data)
    assert named in str(caught.value)


def test_from_json_of_a_class_names_the_class_and_field():
    with pytest.raises(MalformedMessage) as caught:
        from_json(Ping, b'{"n": [1]}')
    assert str(caught.value).startswith("not a Ping: n: ")


def test_a_malformed_frame_of_a_union_names_its_members():
    with pytest.raises(MalformedMessage) as caught:
        from_json(Frame, b'{"kind": "pang"}')
    assert str(caught.value).startswith("not a Ping or Pong: ")


def test_decoding_is_strict():
    with pytest.raises(MalformedMessage, match="capacity: Expected `int`, got `str`"):
        decode(Heartbeat, {"executor_id": "e", "capacity": "2", "backends": [], "running": {}})
    with pytest.raises(MalformedMessage, match="attempt: Expected `int`, got `bool`"):
        decode(StopJob, {"job_id": "j", "status": "Cancelled", "executor_id": "e", "attempt": True})


class Ahead(Message, frozen=True):
    n: int


def test_prepared_decoders_are_built_once_ahead():
    wire.prepare([Ahead])
    built = wire.decoder(Ahead)
    assert wire.decoder(Ahead) is built
    assert from_json(Ahead, b'{"n": 1}') == Ahead(1)
