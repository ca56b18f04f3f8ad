"""The 2200/2300 messages both sides share: what a device refuses and why, the replies and state
messages it writes, and what a client sends and reads back (checked against protocol v3)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from qrt_common.device_protocol import (
    FIELD_RULES,
    NIL_SESSION,
    Command,
    DeviceState,
    ExecuteRequest,
    ExecuteResult,
    Request,
    StaticInfo,
    failure,
    publish_state,
    read_execute,
    read_reply,
    read_request,
    read_set_publish,
    request_frame,
    session_of,
    success,
)
from qrt_common.errors import DeviceRefused, DeviceUnavailable
from tests.support.device_schemas import check_published, check_reply, check_request

SESSION = str(uuid.uuid4())
ADDRESS = "tcp://device:4203"
BELL = "version 3.0\nqubit[2] q\nbit[2] b\nH q[0]\nCNOT q[0], q[1]\nb = measure q\n"


def frame(body: Any) -> bytes:
    return json.dumps(body).encode()


def refusal_of(read: Any) -> str:
    with pytest.raises(DeviceRefused) as caught:
        read()
    return str(caught.value)


def rule(name: str) -> str:
    """What a failure reply says of field `name`."""
    return f"{name} {FIELD_RULES[name]}"


def test_a_request_is_read_with_its_payload_and_version():
    request = read_request(frame({"session_id": SESSION, "command": "execute", "payload": {}}))
    assert (request.session_id, request.command, request.payload) == (SESSION, "execute", {})
    assert request.echoed_version is None and request.reply_session == SESSION
    old = read_request(frame({"session_id": SESSION, "command": "initialize", "version": "0.1.0"}))
    assert old.echoed_version == "0.1.0" and old.payload is None
    assert (
        read_request(frame({"session_id": SESSION, "command": "x", "version": 3})).echoed_version
        is None
    )


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b"not json", "the request is not a JSON document"),
        (b"[" * 100_000, "the request is not a JSON document"),
        (frame(["initialize"]), "the request must be a JSON object"),
        (frame({"command": "initialize"}), "session_id is required for initialize"),
        (frame({"command": "execute"}), "session_id is required for execute"),
        (frame({"command": "terminate"}), "session_id is required for terminate"),
        (frame({"session_id": 7, "command": "initialize"}), rule("session_id")),
        (frame({"session_id": 7, "command": "get_static"}), rule("session_id")),
        (frame({"session_id": SESSION}), rule("command")),
        (frame({"session_id": SESSION, "command": ["execute"]}), rule("command")),
    ],
    ids=[
        "garbage", "too deep", "not an object", "no session to initialize",
        "no session to execute", "no session to terminate", "session not a string",
        "session of get_static not a string", "no command", "command not a string",
    ],
)  # fmt: skip
def test_an_unreadable_request_is_refused_naming_the_field_by_its_rule(raw, said):
    assert refusal_of(lambda: read_request(raw)) == said


@pytest.mark.parametrize("command", ["get_static", "get_dynamic", "set_publish"])
def test_commands_that_need_no_session_are_read_without_one(command):
    # Schema v1 and the 0.1.0 documentation's examples send get_static and get_dynamic so.
    request = read_request(frame({"command": command, "version": "0.1.0"}))
    assert request.session_id is None and request.reply_session == NIL_SESSION
    reply = json.loads(success(request))
    assert reply == {"session_id": NIL_SESSION, "status": "success", "version": "0.1.0"}


def test_a_payload_the_schemas_do_not_define_is_let_be():
    # No schema defines an initialize's payload: any is valid, and none is read.
    for payload in ([1], "x", 3, {"anything": True}):
        request = read_request(
            frame({"session_id": SESSION, "command": "initialize", "payload": payload})
        )
        assert request.payload == payload


@pytest.mark.parametrize("payload", [[1], "x", 0, True])
def test_the_payload_of_execute_and_set_publish_must_be_an_object(payload):
    for command, reader in (("execute", read_execute), ("set_publish", read_set_publish)):
        request = read_request(
            frame({"session_id": SESSION, "command": command, "payload": payload})
        )
        assert refusal_of(lambda r=request, read=reader: read(r)) == rule("payload")


def execute(payload: Any) -> Request:
    return Request(session_id=SESSION, command="execute", payload=payload)


def test_an_execute_is_read_with_its_defaults():
    arguments = read_execute(execute({"job_id": 4, "circuit": BELL, "number_of_shots": 10}))
    assert arguments == ExecuteRequest(job_id=4, circuit=BELL, number_of_shots=10)
    assert arguments.id == 4 and arguments.include_raw_data is False and arguments.run_id is None


def test_integers_written_with_a_zero_fraction_are_integers_as_json_schema_says():
    body = {"job_id": 4.0, "circuit": BELL, "number_of_shots": 1e2}
    arguments = read_execute(execute(body))
    assert (arguments.job_id, arguments.number_of_shots) == (4, 100)
    assert type(arguments.job_id) is int and type(arguments.number_of_shots) is int
    assert read_execute(execute({"run_id": 2.0, "circuit": BELL, "number_of_shots": 1})).id == 2


def test_an_execute_of_protocol_0_1_0_names_its_job_run_id():
    arguments = read_execute(execute({"run_id": 9, "circuit": BELL, "number_of_shots": 1}))
    assert (arguments.job_id, arguments.run_id, arguments.id) == (None, 9, 9)


GOOD = {"job_id": 1, "circuit": BELL, "number_of_shots": 10}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"job_id": None}, "payload.job_id"),
        ({"job_id": "1"}, "payload.job_id"),
        ({"job_id": 1.5}, "payload.job_id"),
        ({"job_id": float("nan")}, "payload.job_id"),
        ({"job_id": True}, "payload.job_id"),
        ({"run_id": "1"}, "payload.run_id"),
        ({"circuit": None}, "payload.circuit"),
        ({"circuit": 42}, "payload.circuit"),
        ({"number_of_shots": None}, "payload.number_of_shots"),
        ({"number_of_shots": 0}, "payload.number_of_shots"),
        ({"number_of_shots": -5}, "payload.number_of_shots"),
        ({"number_of_shots": 0.0}, "payload.number_of_shots"),
        ({"number_of_shots": 2.5}, "payload.number_of_shots"),
        ({"number_of_shots": "10"}, "payload.number_of_shots"),
        ({"include_raw_data": "yes"}, "payload.include_raw_data"),
        ({"include_raw_data": 1}, "payload.include_raw_data"),
    ],
)
def test_a_wrong_execute_is_refused_naming_the_field_by_its_rule(changes, field):
    payload = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    assert refusal_of(lambda: read_execute(execute(payload))) == rule(field)


def test_an_execute_without_a_payload_is_refused_naming_its_first_missing_field():
    assert refusal_of(lambda: read_execute(execute(None))) == rule("payload.circuit")
    no_id = {"circuit": BELL, "number_of_shots": 1}
    assert refusal_of(lambda: read_execute(execute(no_id))) == rule("payload.job_id")


def test_set_publish_reads_active_strictly():
    assert (
        read_set_publish(
            Request(session_id=SESSION, command="set_publish", payload={"active": False})
        ).active
        is False
    )
    for payload in (None, {}, {"active": 1}, {"active": "true"}):
        request = Request(session_id=SESSION, command="set_publish", payload=payload)
        assert refusal_of(lambda r=request: read_set_publish(r)) == rule("payload.active")


def test_the_session_and_version_of_an_unreadable_request_are_echoed_when_readable():
    assert session_of(frame({"session_id": SESSION, "version": "0.1.0", "command": 1})) == (
        SESSION,
        "0.1.0",
    )
    assert session_of(frame({"session_id": 5, "version": 3})) == (NIL_SESSION, None)
    assert session_of(b"garbage") == (NIL_SESSION, None)
    assert session_of(frame([SESSION])) == (NIL_SESSION, None)


def test_a_simple_success_reply_is_valid_v3():
    reply = json.loads(success(Request(session_id=SESSION, command="initialize")))
    assert reply == {"session_id": SESSION, "status": "success"}
    check_reply("initialize", reply)


def test_a_get_static_reply_carries_the_device_and_is_valid_v3():
    static = StaticInfo("Starmon-5", 5, [(0, 2), (1, 2)], ["H", "CNOT", "measure"], 1.5)
    reply = json.loads(success(Request(session_id=SESSION, command="get_static"), static))
    assert reply["payload"]["topology"] == [[0, 2], [1, 2]]
    assert reply["payload"]["protocol_version"] == 3
    check_reply("get_static", reply)


def test_an_execute_reply_to_a_v3_request_carries_no_run_id():
    result = ExecuteResult(job_id=4, results={"00": 6, "11": 4}, raw_data=[])
    reply = json.loads(
        success(Request(session_id=SESSION, command="execute", payload=GOOD), result)
    )
    assert reply["payload"] == {"job_id": 4, "results": {"00": 6, "11": 4}, "raw_data": []}
    assert "version" not in reply
    check_reply("execute", reply)


def test_an_execute_reply_to_a_0_1_0_request_carries_run_id_and_its_version():
    request = Request(session_id=SESSION, command="execute", payload={"run_id": 4}, version="0.1.0")
    result = ExecuteResult(job_id=4, results={"1": 3}, raw_data=["1", "1", "1"], run_id=4)
    reply = json.loads(success(request, result))
    assert reply["payload"]["run_id"] == reply["payload"]["job_id"] == 4
    assert reply["payload"]["raw_data"] == ["1", "1", "1"]
    assert reply["version"] == "0.1.0"


def test_a_failure_reply_carries_the_message_and_is_valid_v3():
    reply = json.loads(failure(SESSION, None, "payload.job_id is required"))
    assert reply == {
        "session_id": SESSION,
        "status": "failure",
        "payload": {"error_msg": "payload.job_id is required"},
    }
    check_reply("execute", reply)
    assert json.loads(failure(SESSION, "0.1.0", "no"))["version"] == "0.1.0"


@pytest.mark.parametrize("state", list(DeviceState))
def test_a_state_message_is_valid_v3(state):
    message = json.loads(publish_state(state))
    assert message["command"] == "publish_state" and message["payload"]["state"] == state.value
    check_published(message)


@pytest.mark.parametrize("command", ["initialize", "terminate", "get_static", "get_dynamic"])
def test_a_request_without_payload_is_valid_v3(command):
    body = json.loads(request_frame(Command(command), SESSION))
    assert body == {"session_id": SESSION, "command": command}
    check_request(body)


def test_an_execute_request_leaves_out_fields_at_none_so_a_v3_device_gets_no_run_id():
    payload = ExecuteRequest(job_id=7, circuit=BELL, number_of_shots=100, include_raw_data=True)
    body = json.loads(request_frame(Command.EXECUTE, SESSION, payload))
    assert body["payload"] == {
        "job_id": 7,
        "circuit": BELL,
        "number_of_shots": 100,
        "include_raw_data": True,
    }
    check_request(body)
    assert read_execute(read_request(json.dumps(body).encode())) == payload


def test_a_request_payload_may_be_a_dict():
    body = json.loads(request_frame(Command.SET_PUBLISH, SESSION, {"active": True}))
    assert body["payload"] == {"active": True}


def test_a_success_reply_gives_its_payload():
    result = ExecuteResult(job_id=4, results={"0": 1}, raw_data=[])
    reply = success(Request(session_id=SESSION, command="execute"), result)
    assert read_reply(reply, SESSION, Command.EXECUTE, ADDRESS)["results"] == {"0": 1}
    assert (
        read_reply(
            success(Request(session_id=SESSION, command="initialize")),
            SESSION,
            Command.INITIALIZE,
            ADDRESS,
        )
        == {}
    )


def test_a_failure_reply_is_refused_with_the_devices_message():
    reply = failure(SESSION, None, "Starmon-5 is locked by another session")
    with pytest.raises(DeviceRefused, match=r"^Starmon-5 is locked by another session$"):
        read_reply(reply, SESSION, Command.INITIALIZE, ADDRESS)


def test_a_failure_reply_without_a_message_still_says_what_failed():
    reply = frame({"session_id": SESSION, "status": "failure"})
    with pytest.raises(DeviceRefused, match="execute failed without a reason"):
        read_reply(reply, SESSION, Command.EXECUTE, ADDRESS)


@pytest.mark.parametrize(
    "reply",
    [
        b"garbage",
        b"[" * 100_000,
        frame([1]),
        frame({"status": "success"}),
        success(Request(session_id=str(uuid.uuid4()), command="initialize")),
        failure(str(uuid.uuid4()), None, "not yours"),
    ],
    ids=[
        "garbage", "too deep", "a list", "no session", "another session's success",
        "another session's failure",
    ],
)  # fmt: skip
def test_anything_but_a_reply_to_this_session_means_the_device_is_unavailable(reply):
    with pytest.raises(DeviceUnavailable) as caught:
        read_reply(reply, SESSION, Command.INITIALIZE, ADDRESS)
    assert str(caught.value).startswith(f"{ADDRESS} answered initialize with ")


def test_a_reply_to_this_session_is_read_leniently():
    # Any status but success is a refusal; a payload that is not an object, and any version,
    # are let be (a device of another make may say more than the schema).
    odd = frame({"session_id": SESSION, "status": "maybe"})
    with pytest.raises(DeviceRefused, match=r"^initialize failed without a reason$"):
        read_reply(odd, SESSION, Command.INITIALIZE, ADDRESS)
    loose = frame({"session_id": SESSION, "status": "success", "payload": [1], "version": 3})
    assert read_reply(loose, SESSION, Command.INITIALIZE, ADDRESS) == {}
