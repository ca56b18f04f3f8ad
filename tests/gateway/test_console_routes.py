"""What the console needs of the gateway: `GET /backends/{name}` (a device as the executors'
heartbeats report it), the job streams taking the bearer credential as a websocket subprotocol
(a browser cannot set Authorization on a websocket), and the pages' security headers."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import pytest

from qrt_common.device_protocol import StaticInfo
from qrt_common.messages import DeviceReport, Heartbeat
from qrt_common.wire import encode

from .conftest import Harness, MakeGateway
from .test_auth import PEPPER, bearer, user_key

CALIBRATION = {
    "t1_in_us": {"__labels__": ["qubit"], "q0": 30.5, "q1": 25.0, "q2": 41.0},
    "t2_in_us": {"__labels__": ["qubit"], "q0": 20.0, "q1": "not a number", "q2": 33.5},
    "readout_fidelity": {"__labels__": ["qubit"], "q0": 0.97, "q1": 0.95, "q2": 0.99},
    "single_qubit_gate_fidelity": {"__labels__": ["qubit"], "q0": 0.999, "q2": 0.998},
    "two_qubit_gate_fidelity": {"__labels__": ["qubit1", "qubit2"], "q0": {"q1": 0.98},
                                "q1": {"q2": 0.97, "qx": 0.5}},
    "last_calibration_timestamp": 1_700_000_000.0,
}  # fmt: skip


async def beat(
    gw: Harness, *, reachable: bool = True, calibration: dict[str, Any] = CALIBRATION
) -> None:
    static = StaticInfo(name="Tiny-3", nqubits=3, topology=[(0, 1), (1, 2)],
                        pgs=["X", "CNOT", "measure"], starttime=1_600_000_000.0)  # fmt: skip
    report = DeviceReport(
        static=static,
        reachable=reachable,
        calibration=calibration,
    )
    heartbeat = Heartbeat(
        executor_id="ex1",
        capacity=1,
        backends=["aer_simulator", "Tiny-3"],
        running={},
        exclusive_backends=["Tiny-3"],
        devices=[report],
    )
    await gw.gateway.on_heartbeat(encode(heartbeat))


async def test_a_device_reported_by_a_heartbeat_shows_its_calibration_and_queue(gw: Harness):
    await beat(gw)
    await gw.submit("noop", backend="Tiny-3")
    detail = await gw.call("GET", "/backends/Tiny-3")
    assert detail["online"] is True and detail["simulator"] is False
    assert detail["queue"] == {"queued": 1, "running": 0}
    assert detail["nqubits"] == 3 and detail["topology"] == [[0, 1], [1, 2]]
    assert detail["gates"] == ["X", "CNOT", "measure"]
    calibration = detail["calibration"]
    assert calibration["calibratedAt"] == "2023-11-14T22:13:20.000000Z"
    assert calibration["qubits"][1] == {"qubit": 1, "t1Us": 25.0, "t2Us": None,
                                        "readoutFidelity": 0.95, "singleQubitGateFidelity": None}  # fmt: skip
    assert calibration["pairs"] == [{"qubits": [0, 1], "fidelity": 0.98},
                                    {"qubits": [1, 2], "fidelity": 0.97}]  # fmt: skip
    [sample] = detail["history"]
    assert sample["reachable"] is True and sample["meanT1Us"] == pytest.approx(32.166667)
    assert (sample["queued"], sample["running"]) == (0, 0)  # counted before the submit


async def test_the_first_calibration_replaces_a_sample_taken_without_one(gw: Harness):
    await beat(gw, calibration={})
    await beat(gw, calibration={})
    [first] = (await gw.call("GET", "/backends/Tiny-3"))["history"]
    assert first["meanT1Us"] is None
    await beat(gw)
    [sample] = (await gw.call("GET", "/backends/Tiny-3"))["history"]
    assert sample["meanT1Us"] == pytest.approx(32.166667) and sample["at"] >= first["at"]


async def test_a_device_that_stopped_answering_is_offline(gw: Harness):
    await beat(gw, reachable=False)
    detail = await gw.call("GET", "/backends/Tiny-3")
    assert detail["online"] is False and detail["calibration"]["qubits"][0]["t1Us"] == 30.5


async def test_a_simulator_has_a_queue_and_no_device_fields(gw: Harness):
    await gw.submit("noop")
    detail = await gw.call("GET", "/backends/aer_simulator")
    assert detail["simulator"] is True and detail["online"] is True
    assert detail["queue"] == {"queued": 1, "running": 0}
    assert detail["calibration"] is None and detail["topology"] is None


async def test_an_unknown_backend_is_404_naming_the_known_ones(gw: Harness):
    body = await gw.call("GET", "/backends/nowhere", 404)
    assert "nowhere" in body["detail"] and "aer_simulator" in body["detail"]


def offered(credential: str) -> tuple[str, ...]:
    encoded = base64.urlsafe_b64encode(credential.encode()).decode().rstrip("=")
    return ("qrt", f"qrt.bearer.{encoded}")


async def test_a_websocket_may_carry_its_key_as_a_subprotocol(make_gateway: MakeGateway):
    gw = await make_gateway(auth=True, key_pepper=PEPPER)
    key = await user_key(gw)
    job = await gw.call("POST", "/jobs", json={"programId": "noop"}, headers=bearer(key))
    async with gw.client.ws_connect(f"/stream/jobs/{job['id']}/logs", protocols=offered(key)) as ws:
        assert ws.protocol == "qrt"
    for protocols, detail in [
        (offered("qrt_wrong_key"), "wrong"),
        (("qrt", "qrt.bearer.***"), "base64url"),
        (("qrt",), "missing Authorization"),
    ]:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await gw.client.ws_connect(f"/stream/jobs/{job['id']}", protocols=protocols)
        assert refused.value.status == 401, detail


async def test_the_pages_are_open_and_carry_a_strict_content_security_policy(
    make_gateway: MakeGateway,
):
    gw = await make_gateway(auth=True, key_pepper=PEPPER)
    for path, marker in [("/ui/", 'content="on"'), ("/docs", "swagger-ui-bundle.js"),
                         ("/ui/static/js/app.js", "KEYS_ON"), ("/docs/static/swagger-ui.css", "")]:  # fmt: skip
        async with gw.client.get(path) as response:
            assert response.status == 200, path
            assert marker in await response.text()
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self';" in policy and "default-src 'none'" in policy
            assert (
                "unsafe-eval" not in policy
                and response.headers["X-Content-Type-Options"] == "nosniff"
            )
    async with gw.client.get("/ui", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == "/ui/"
    async with gw.client.get("/ui/static/nothing.js") as response:
        assert response.status == 404 and "Content-Security-Policy" in response.headers


async def test_without_keys_another_site_cannot_submit_upload_or_open_a_stream(gw: Harness):
    # A page elsewhere may POST JSON as text/plain without a CORS preflight; the browser names
    # the page's origin, which is not the gateway's own.
    job = await gw.submit()
    body = '{"programId": "noop"}'
    for origin in ["http://evil.example", "null", f"http://{gw.client.host}:1"]:
        headers = {"Origin": origin, "Content-Type": "text/plain"}
        refused = await gw.call("POST", "/jobs", 403, data=body, headers=headers)
        assert refused["field"] == "Origin" and origin in refused["detail"]
        await gw.call("DELETE", f"/jobs/{job['id']}", 403, headers=headers)
        with pytest.raises(aiohttp.WSServerHandshakeError) as stream:
            await gw.client.ws_connect(f"/stream/jobs/{job['id']}", origin=origin)
        assert stream.value.status == 403
    assert (await gw.call("GET", "/jobs"))["count"] == 1
    # The gateway's own pages, and clients that are no browser page, go on as before.
    own = f"http://{gw.client.host}:{gw.client.port}"
    await gw.call("POST", "/jobs", data=body, headers={"Origin": own, "Content-Type": "text/plain"})
    async with gw.client.ws_connect(f"/stream/jobs/{job['id']}", origin=own):
        pass
    await gw.submit()
    proxied = {"Origin": "https://qrt.example", "X-Forwarded-Host": "qrt.example"}
    await gw.call("POST", "/jobs", json={"programId": "noop"}, headers=proxied)
    assert (await gw.call("GET", "/jobs"))["count"] == 4


async def test_without_keys_a_gateway_on_loopback_answers_only_loopback_names(gw: Harness):
    # A site whose name is re-pointed at 127.0.0.1 (DNS rebinding) is its own page's origin.
    refused = await gw.call(
        "GET", "/jobs", 403, headers={"Host": f"rebind.example:{gw.client.port}"}
    )
    assert refused["field"] == "Host" and "rebind.example" in refused["detail"]
    for host in [f"localhost:{gw.client.port}", f"127.0.0.1:{gw.client.port}", "[::1]"]:
        await gw.call("GET", "/jobs", headers={"Host": host})


async def test_with_keys_the_origin_is_not_what_guards(make_gateway: MakeGateway):
    gw = await make_gateway(auth=True, key_pepper=PEPPER)
    key = await user_key(gw)
    headers = {"Origin": "http://tools.example", "Host": "qrt.example", **bearer(key)}
    await gw.call("POST", "/jobs", json={"programId": "noop"}, headers=headers)
    await gw.call(
        "POST", "/jobs", 401, json={"programId": "noop"}, headers={"Origin": "http://x.example"}
    )
