"""Every request that a version of QuTech's compute-runtime-schema accepts gets a success reply
valid against that version's reply schema: requests generated from each request schema's
required fields (then its other values and optional fields), for v1, v2 and v3, and the spec's
own examples."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import zmq
import zmq.asyncio

from tests.support.device_clients import running
from tests.support.device_schemas import REQUESTS, VERSIONS, check_reply, examples, requests_of
from tests.support.waiting import TIME_SCALE

CIRCUITS = {
    "circuit": [
        "version 3.0\nqubit[5] q\nbit[5] b\nH q[2]\nCNOT q[2], q[0]\nb = measure q\n",
        "version 1.0\nqubits 3\nh q[0]\ncnot q[0], q[2]\nmeasure_all\n",
        "version 1.0\n\nqubits 2",  # the 0.1.0 documentation's example: nothing measured
    ]
}
"""Circuits the device can run, for the schemas' `circuit` (any string to them)."""


class Peer:
    """A REQ socket sending raw requests."""

    def __init__(self, context: zmq.asyncio.Context, address: str) -> None:
        self.socket = context.socket(zmq.REQ)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(address)

    async def send(self, request: dict[str, Any]) -> dict[str, Any]:
        await self.socket.send(json.dumps(request).encode())
        limit = 30 * TIME_SCALE
        try:
            frame = await asyncio.wait_for(self.socket.recv(), limit)
        except TimeoutError:
            raise AssertionError(f"a reply from the device: not within {limit:g} s") from None
        reply: dict[str, Any] = json.loads(frame)
        return reply


async def answered(peer: Peer, request: dict[str, Any], version: str) -> None:
    """Send `request` (in a session of its own if it executes) and check its reply."""
    command = request["command"]
    session = request.get("session_id")
    if command == "execute":
        opened = await peer.send({"session_id": session, "command": "initialize"})
        assert opened["status"] == "success", opened
    reply = await peer.send(request)
    assert reply["status"] == "success", (request, reply)
    check_reply(command, reply, version)
    if session is not None:
        assert reply["session_id"] == session
    if isinstance(request.get("version"), str):
        assert reply["version"] == request["version"]
    if command == "execute":
        payload = request["payload"]
        assert reply["payload"]["job_id"] == payload["job_id"]
        assert sum(reply["payload"]["results"].values()) == payload["number_of_shots"]
        if payload.get("include_raw_data"):
            assert len(reply["payload"]["raw_data"]) == payload["number_of_shots"]
    if command in ("execute", "initialize"):
        ended = await peer.send({"session_id": session, "command": "terminate"})
        assert ended["status"] == "success", ended


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("command", sorted(REQUESTS))
async def test_every_request_a_schema_accepts_gets_a_success_reply(version, command):
    requests = requests_of(command, version, CIRCUITS)
    assert requests, "the schema makes requests"
    async with running(noise=False) as (device, context):
        peer = Peer(context, device.rep_endpoint)
        for request in requests:
            await answered(peer, request, version)


def test_get_static_and_get_dynamic_of_v1_need_no_session():
    # What the old documentation shows: {"command": "get_static", "version": "0.1.0"}.
    for command in ("get_static", "get_dynamic"):
        assert {"version": "0.1.0", "command": command} in requests_of(command, "v1", CIRCUITS)


async def test_the_specs_example_requests_get_success_replies():
    found = examples()
    if not found:
        pytest.skip("the spec's examples are not here")
    async with running(noise=False) as (device, context):
        peer = Peer(context, device.rep_endpoint)
        for command, request in found:
            assert request["command"] == command
            await answered(peer, request, "v2")  # they carry version 0.2.0
