"""What an executor's heartbeat says of its devices (for the gateway's `GET /backends/{name}`):
each device's `get_static`, its last `get_dynamic` calibration, and whether it answers."""

from __future__ import annotations

import asyncio
import contextlib

from qrt_common.messages import DeviceReport, Heartbeat
from qrt_common.wire import decode, encode
from qrt_executor.devices import DeviceDirectory
from tests.support.waiting import eventually

from .test_device_backend import start_device


async def test_reports_carry_static_info_and_calibration_then_say_a_silent_device_is_unreachable():
    device = await start_device(name="Tiny-3", qubits=3, topology=[(0, 1), (1, 2)])
    directory = DeviceDirectory([device.rep_endpoint], timeout=1.0)
    await directory.start()
    watching = asyncio.create_task(directory.watch(0.05))
    closed = False
    try:
        await eventually(
            lambda: "Tiny-3" in directory.calibration, "the device's calibration was read"
        )
        [report] = directory.reports()
        static = report.static
        assert (static.name, static.nqubits, report.reachable) == ("Tiny-3", 3, True)
        assert static.topology == [(0, 1), (1, 2)] and "measure" in static.pgs
        assert report.read_at is not None
        assert set(report.calibration["t1_in_us"]) == {"__labels__", "q0", "q1", "q2"}
        # It crosses the bus as a heartbeat's part and comes back the same.
        beat = Heartbeat("ex1", 1, ["Tiny-3"], {}, devices=[report])
        assert decode(Heartbeat, encode(beat)).devices == [report]

        await device.close()
        closed = True
        await eventually(lambda: not directory.reports()[0].reachable, "the device was missed")
        [silent] = directory.reports()
        assert isinstance(silent, DeviceReport) and silent.calibration == report.calibration
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        await directory.close()
        if not closed:
            await device.close()
