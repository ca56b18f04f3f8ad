"""`GET /backends/{name}`: one backend as the console shows it: its queue and, for a device,
what it is (qubits, coupling map, gates), its calibration per qubit and per coupled pair, and
its recent history, from the reports executors' heartbeats carry (`device_board`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from qrt_common.backends import SIMULATORS
from qrt_common.errors import NotFound
from qrt_common.messages import DeviceReport

from .context import gateway
from .device_board import Sample, is_number, per_pair, per_qubit
from .plumbing import json_response
from .schemas import TIME_FORMAT, dump


class _Shape(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class QubitCalibration(_Shape):
    """One qubit's calibration; null where the device reports no such number."""

    qubit: int
    t1_us: float | None = Field(alias="t1Us", description="Relaxation time T1 in µs.")
    t2_us: float | None = Field(alias="t2Us", description="Dephasing time T2 in µs.")
    readout_fidelity: float | None = Field(alias="readoutFidelity")
    single_qubit_gate_fidelity: float | None = Field(alias="singleQubitGateFidelity")


class PairCalibration(_Shape):
    """A coupled pair's two-qubit gate fidelity."""

    qubits: tuple[int, int]
    fidelity: float


class Calibration(_Shape):
    calibrated_at: str | None = Field(
        alias="calibratedAt", description="When the device was last calibrated (ISO 8601, UTC)."
    )
    qubits: list[QubitCalibration]
    pairs: list[PairCalibration]


class Queue(_Shape):
    """Jobs of every instance on the backend now."""

    queued: int
    running: int


class HistorySample(_Shape):
    at: str
    reachable: bool
    queued: int | None = Field(description="Jobs waiting for the device (null: not counted).")
    running: int | None
    mean_t1_us: float | None = Field(alias="meanT1Us")
    mean_t2_us: float | None = Field(alias="meanT2Us")
    mean_readout_fidelity: float | None = Field(alias="meanReadoutFidelity")


class BackendDetail(_Shape):
    """A backend as `GET /backends/{name}` shows it; the device fields are null for a
    simulator."""

    name: str
    simulator: bool
    online: bool = Field(
        description="A job may be sent to it now: a simulator always; a device while an "
        "executor offers it and it answered that executor when last asked."
    )
    queue: Queue
    last_seen: str | None = Field(
        None, alias="lastSeen", description="When an executor last reported the device."
    )
    nqubits: int | None = None
    topology: list[tuple[int, int]] | None = Field(None, description="Coupled qubit pairs.")
    gates: list[str] | None = Field(None, description="The primitive gate set.")
    calibration: Calibration | None = None
    history: list[HistorySample] | None = Field(
        None,
        description="Samples of the last hour, oldest first, about one every 10 s: whether "
        "the device answered, its queue, and its calibration's means.",
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(TIME_FORMAT)


def _calibration(report: DeviceReport) -> Calibration:
    metrics, n = report.calibration, report.static.nqubits
    t1, t2 = per_qubit(metrics, "t1_in_us", n), per_qubit(metrics, "t2_in_us", n)
    readout = per_qubit(metrics, "readout_fidelity", n)
    single = per_qubit(metrics, "single_qubit_gate_fidelity", n)
    stamp = metrics.get("last_calibration_timestamp")
    calibrated_at = None
    if is_number(stamp):
        calibrated_at = _iso(float(stamp))
    return Calibration(
        calibrated_at=calibrated_at,
        qubits=[
            QubitCalibration(
                qubit=q,
                t1_us=t1[q],
                t2_us=t2[q],
                readout_fidelity=readout[q],
                single_qubit_gate_fidelity=single[q],
            )
            for q in range(n)
        ],
        pairs=[
            PairCalibration(qubits=pair, fidelity=fidelity)
            for pair, fidelity in sorted(per_pair(metrics, "two_qubit_gate_fidelity").items())
        ],
    )


def _sample(sample: Sample) -> HistorySample:
    return HistorySample(
        at=_iso(sample.at),
        reachable=sample.reachable,
        queued=sample.queued,
        running=sample.running,
        mean_t1_us=sample.mean_t1_us,
        mean_t2_us=sample.mean_t2_us,
        mean_readout_fidelity=sample.mean_readout_fidelity,
    )


async def get_backend(request: web.Request) -> web.Response:
    gw = gateway(request)
    name = request.match_info["name"]
    seen = gw.board.last(name)
    offered = name in gw.backends()
    if not offered and seen is None:
        raise NotFound(f"backend '{name}' not found; available: {', '.join(gw.backends())}")
    queued, running = await gw.queue(name)
    queue = Queue(queued=queued, running=running)
    if name in SIMULATORS or seen is None:
        detail = BackendDetail(name=name, simulator=name in SIMULATORS, online=offered, queue=queue)
        return json_response(dump(detail))
    report, at = seen
    detail = BackendDetail(
        name=name,
        simulator=False,
        online=offered and report.reachable,
        queue=queue,
        last_seen=_iso(time.time() - (time.monotonic() - at)),
        nqubits=report.static.nqubits,
        topology=report.static.topology,
        gates=report.static.pgs,
        calibration=_calibration(report),
        history=[_sample(s) for s in gw.board.history.get(name, ())],
    )
    return json_response(dump(detail))
