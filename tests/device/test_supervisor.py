"""Native work runs in the device's worker process: a crash, a simulation that runs too long or
a SIGTERM costs that work alone, and the device answers everyone throughout (real ZeroMQ
sockets, real worker processes, a real `qrt device` process)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid

import zmq

from qrt_device.service import Device
from tests.support.device_clients import Client, Subscriber, running
from tests.support.mesh import free_port
from tests.support.processes import children, cpu_seconds, ended
from tests.support.programs import ROOT
from tests.support.waiting import TIME_SCALE, eventually, eventually_sync

GHZ = (
    "version 3.0\nqubit[5] q\nbit[5] b\nH q[2]\nCNOT q[2], q[0]\nCNOT q[2], q[1]\n"
    "CNOT q[2], q[3]\nCNOT q[2], q[4]\nb = measure q\n"
)
# A conditional gate: Aer simulates it shot by shot, with noise; at a million shots it runs for
# a minute or more.
SLOW = (
    "version 1.0\nqubits 5\nh q[2]\nmeasure q[2]\nc-x b[2], q[0]\n"
    + "cnot q[2], q[0]\n" * 40
    + "measure_all\n"
)
LONG_RUN = {"max_shots": 10**7, "max_dynamic_work": 2**40}


def is_worker(pid: int) -> bool:
    """True if `pid` is a device's worker process."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"qrt_device.worker" in cmdline.read().split(b"\0")
    except OSError:
        return False


def rounds(count: int) -> str:
    """`count` rounds of H on all five qubits and a measurement of them into the next five bits
    (issue 18's circuit that crashed Aer with shot branching at 70000 shots and more)."""
    lines = ["version 3.0", "qubit[5] q", f"bit[{5 * count}] b"]
    for r in range(count):
        lines += ["H q", f"b[{5 * r}:{5 * r + 4}] = measure q"]
    return "\n".join(lines) + "\n"


def worker_running(device: Device) -> float:
    """What the device's `qrt_device_worker_running` gauge says."""
    (family,) = [f for f in device._gauges() if f.name == "qrt_device_worker_running"]
    (sample,) = family.samples
    return float(sample.value)


async def test_the_worker_starts_with_the_first_session_not_with_the_device():
    async with running(noise=False) as (device, context):
        alice = Client(context, device.rep_endpoint)
        subscriber = Subscriber(context, device.pub_endpoint)
        # Before any session: everything but execute is answered, and nothing simulates.
        assert (await alice.call("get_static"))["status"] == "success"
        assert (await alice.call("get_dynamic"))["status"] == "success"
        await subscriber.wait_for("IDLE")
        assert not device.supervisor.running and device.supervisor.pid is None
        assert worker_running(device) == 0.0
        assert not [pid for pid in children(os.getpid()) if is_worker(pid)]
        await alice.call("initialize")
        assert device.supervisor.running and worker_running(device) == 1.0
        # The first execute waits for the worker's start, however long it takes.
        reply = await alice.execute(GHZ, shots=5)
        assert reply["status"] == "success" and sum(reply["payload"]["results"].values()) == 5
        worker = device.supervisor.pid
        assert worker is not None and is_worker(worker)


async def test_an_execute_without_initialize_starts_no_worker():
    async with running(noise=False) as (device, context):
        alice = Client(context, device.rep_endpoint)
        reply = await alice.execute(GHZ, shots=5)
        assert "execute outside an initialized session" in reply["payload"]["error_msg"]
        assert not device.supervisor.running


async def test_an_idle_worker_ends_and_the_next_execute_starts_another():
    async with running(noise=False, worker_idle_seconds=0.5, lease_seconds=3600) as (
        device,
        context,
    ):
        alice = Client(context, device.rep_endpoint)
        await alice.call("initialize")
        assert (await alice.execute(GHZ, shots=5))["status"] == "success"
        await eventually(lambda: not device.supervisor.running, "the idle worker ends", timeout=60)
        assert worker_running(device) == 0.0
        await eventually(
            lambda: [pid for pid in children(os.getpid()) if is_worker(pid)],
            "its process is gone",
            until=lambda workers: not workers,
        )
        # Still her session: the next execute starts a worker and runs.
        again = await alice.execute(GHZ, shots=3, job_id=2)
        assert again["status"] == "success" and sum(again["payload"]["results"].values()) == 3


async def test_a_worker_busy_for_longer_than_its_idle_time_is_not_ended_mid_execute():
    async with running(worker_idle_seconds=0.1, **LONG_RUN) as (device, context):
        alice = Client(context, device.rep_endpoint)
        await alice.call("initialize")
        assert (await alice.execute(GHZ, shots=5))["status"] == "success"
        # Seconds of simulation, shot by shot with noise: many idle times long.
        reply = await alice.execute(SLOW, shots=30_000, job_id=2)
        assert reply["status"] == "success", reply
        assert sum(reply["payload"]["results"].values()) == 30_000


async def test_a_circuit_that_crashes_libqasm_gets_a_failure_and_the_device_goes_on():
    async with running(noise=False) as (device, context):
        alice, bob = Client(context, device.rep_endpoint), Client(context, device.rep_endpoint)
        await alice.call("initialize")
        assert (await alice.execute(GHZ, shots=5))["status"] == "success"
        first = device.supervisor.pid
        # libqasm divides by zero in C++: SIGFPE ends the process that parses this (unless
        # the parser learns to refuse it first, by a rule).
        reply = await alice.execute("version 3.0\nqubit[5] q\nX q[1/0]", shots=10)
        assert reply["status"] == "failure"
        message = reply["payload"]["error_msg"]
        assert "the simulator crashed (SIGFPE)" in message or message.startswith(
            "circuit rejected by rule"
        ), message
        assert (await bob.call("get_static"))["status"] == "success"
        again = await alice.execute(GHZ, shots=7)
        assert again["status"] == "success" and sum(again["payload"]["results"].values()) == 7
        if "crashed" in message:
            assert device.supervisor.pid != first


async def test_a_worker_that_dies_mid_execute_fails_that_execute_alone():
    async with running(**LONG_RUN) as (device, context):
        alice, bob = Client(context, device.rep_endpoint), Client(context, device.rep_endpoint)
        await alice.call("initialize")
        assert (await alice.execute(GHZ, shots=5))["status"] == "success"
        worker = device.supervisor.pid
        assert worker is not None
        long = asyncio.create_task(alice.execute(SLOW, shots=10**6))
        await eventually(lambda: device._executing > 0, "the execute reaches the worker")
        os.kill(worker, signal.SIGSEGV)
        reply = await long
        assert reply["status"] == "failure"
        assert "the simulator crashed (SIGSEGV) on this circuit" in reply["payload"]["error_msg"]
        assert (await bob.call("get_dynamic"))["status"] == "success"
        assert (await alice.execute(GHZ, shots=3))["status"] == "success"
        assert device.supervisor.pid not in (None, worker)


async def test_a_worker_killed_while_idle_is_replaced_without_failing_anyone():
    async with running(noise=False) as (device, context):
        alice = Client(context, device.rep_endpoint)
        await alice.call("initialize")
        assert (await alice.execute(GHZ, shots=5))["status"] == "success"
        worker = device.supervisor.pid
        assert worker is not None
        os.kill(worker, signal.SIGKILL)
        await eventually(lambda: ended(worker), "the worker ends")
        assert (await alice.execute(GHZ, shots=3))["status"] == "success"


async def test_many_rounds_of_mid_circuit_measurements_at_100000_shots_run():
    # With Aer's shot branching (as before) this noisy circuit crashed Aer with SIGSEGV.
    async with running(calibration={"interval_seconds": 3600}) as (device, context):
        client = Client(context, device.rep_endpoint)
        await client.call("initialize")
        reply = await client.send_raw(
            json.dumps({
                "session_id": client.session, "command": "execute",
                "payload": {"job_id": 1, "circuit": rounds(4), "number_of_shots": 100_000},
            }).encode(),
            timeout=300,
        )  # fmt: skip
        assert reply["status"] == "success", reply
        counts = reply["payload"]["results"]
        assert sum(counts.values()) == 100_000 and all(len(key) == 20 for key in counts)


async def test_an_execute_past_the_time_limit_is_stopped_and_the_lock_does_not_stay():
    async with running(noise=False, max_execute_seconds=1.0, lease_seconds=0.5, **LONG_RUN) as (
        device,
        context,
    ):
        alice, bob = Client(context, device.rep_endpoint), Client(context, device.rep_endpoint)
        await alice.call("initialize")
        first = await alice.execute(GHZ, shots=5)
        assert first["status"] == "success", first
        long = asyncio.create_task(alice.execute(SLOW, shots=10**6))
        await eventually(lambda: device._executing > 0, "the execute reaches the worker")
        # Meanwhile everyone else is answered.
        assert (await bob.call("get_dynamic"))["status"] == "success"
        assert "locked by another session" in (await bob.call("initialize"))["payload"]["error_msg"]
        reply = await long
        assert reply["status"] == "failure"
        message = reply["payload"]["error_msg"]
        assert message.startswith("circuit rejected by rule 'max_execute_seconds': "), message
        assert "longer than 1 s" in message
        await alice.call("initialize")  # hers still, or again if her lease ran out meanwhile
        assert (await alice.execute(GHZ, shots=3))["status"] == "success"
        # Alice goes silent: her lock ends with her lease, as after any execute.
        await eventually(
            lambda: bob.call("initialize"),
            "Bob gets the device",
            until=lambda r: r["status"] == "success",
        )


async def test_a_parse_that_expands_without_end_is_stopped_and_others_are_answered():
    # 42 bytes asking for 10^9 operations: stopped by the time limit (or, where the parser
    # bounds it first, refused by its size rule); either way a rule, and the device serves on.
    async with running(noise=False, max_execute_seconds=1.0) as (device, context):
        alice, bob = Client(context, device.rep_endpoint), Client(context, device.rep_endpoint)
        await alice.call("initialize")
        expanding = asyncio.create_task(
            alice.execute("version 1.0\nqubits 5\n.a(1000000000)\nx q[0]\n", shots=10)
        )
        assert (await bob.call("get_dynamic"))["status"] == "success"
        reply = await expanding
        assert reply["status"] == "failure"
        assert reply["payload"]["error_msg"].startswith("circuit rejected by rule "), reply
        await alice.call("initialize")
        assert (await alice.execute(GHZ, shots=3))["status"] == "success"


def _device_process(tmp_path, config: str) -> tuple[subprocess.Popen[bytes], str]:
    path = tmp_path / "device.toml"
    path.write_text(config)
    rep = f"tcp://127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QRT_")}
    env.update(QRT_OPS_PORT=str(free_port()), QRT_LOG_LEVEL="WARNING")
    command = [
        sys.executable, "-m", "qrt_cli", "device", "--config", str(path),
        "--rep-address", rep, "--pub-address", f"tcp://127.0.0.1:{free_port()}",
    ]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env), rep


def _request(socket: zmq.Socket[bytes], session: str, command: str, **payload: object) -> dict:
    body: dict[str, object] = {"session_id": session, "command": command}
    if payload:
        body["payload"] = payload
    socket.send(json.dumps(body).encode())
    return dict(json.loads(socket.recv()))


def test_sigterm_stops_the_device_at_once_in_the_middle_of_a_simulation(tmp_path):
    process, rep = _device_process(
        tmp_path, "max_shots = 10000000\nmax_dynamic_work = 1099511627776\n"
    )
    context = zmq.Context()
    try:
        socket = context.socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVTIMEO, int(60_000 * TIME_SCALE))
        socket.connect(rep)
        session = str(uuid.uuid4())
        assert _request(socket, session, "initialize")["status"] == "success"
        warm = _request(
            socket, session, "execute", job_id=1, circuit=GHZ, number_of_shots=5
        )  # the worker is up and warm
        assert warm["status"] == "success", warm
        (worker,) = children(process.pid)
        before = cpu_seconds(worker)
        socket.send(
            json.dumps({
                "session_id": session, "command": "execute",
                "payload": {"job_id": 2, "circuit": SLOW, "number_of_shots": 10**6},
            }).encode()
        )  # fmt: skip
        eventually_sync(
            lambda: cpu_seconds(worker) - before,
            "the worker simulates",
            until=lambda spent: spent > 1.0,
            timeout=60,
        )
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(30 * TIME_SCALE)
        except subprocess.TimeoutExpired:
            raise AssertionError("the device did not stop within 30 s of SIGTERM") from None
        assert code == 0
        eventually_sync(lambda: ended(worker), "the worker ended with the device")
    finally:
        if process.poll() is None:
            process.kill()
        context.destroy(0)
