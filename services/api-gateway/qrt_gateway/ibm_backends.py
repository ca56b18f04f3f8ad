"""IBM's `/api/v1/backends` and `/api/v1/instances/usage`: every backend a job may ask for,
described as the stock qiskit-ibm-runtime client builds its `IBMBackend` and `Target` from.

A backend's configuration and properties are written from its real Qiskit `Target` (the Aer
simulator's, or a 2300 device's from its `get_static` reply, as the executor relaying to it
reports it in its heartbeat), so what the client checks circuits against is what runs them.

A device's properties come from its last `get_dynamic` reply (the executor reads it every
QRT_DEVICE_METRICS_INTERVAL), by these metric names, each labelled by qubit `q<n>` (or qubit
pair): `t1_in_us`, `t2_in_us` (T1, T2 in µs), `readout_fidelity` or `readout_error`,
`single_qubit_gate_fidelity` (the error of every one-qubit gate on that qubit),
`two_qubit_gate_fidelity` (of every two-qubit gate on that pair, either way round); unlabelled
numbers are `general` properties. Every value is dated by the metric
`last_calibration_timestamp` (epoch seconds) if the device reports one, else by when it was read.
Properties are served only when every qubit has a value: IBM's client cannot build a Target
from fewer.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from qrt_common.accounts import Role
from qrt_common.backends import MAX_SHOTS, SIMULATORS
from qrt_common.errors import InvalidInput, NotFound
from qrt_common.jobs import JobStatus
from qrt_common.messages import DeviceReport
from qrt_common.store.base import JobQuery
from qrt_common.targets import device_target, simulator_target

from .auth import principal
from .context import Gateway, gateway
from .device_board import is_number, per_pair, per_qubit
from .ibm_api import CRN_PARAMETER, PREFIX, ibm_json, instance_crn, request_instance
from .ibm_sessions import device_hold, hold_json
from .openapi import Parameter, Route

if TYPE_CHECKING:
    from qiskit.transpiler import Target

NON_GATES = frozenset({"measure", "reset", "delay"})
"""Instructions of a Target that IBM's configuration lists apart from its basis gates."""
QISKIT_START = datetime(2017, 3, 1, tzinfo=UTC)
"""The `online_date` of the simulators (Qiskit's first release); a device's is its start."""


def _instance(request: web.Request) -> str:
    """The instance the request names, which the caller must be a member (any role) of."""
    instance = request_instance(request)
    gateway(request).require(principal(request), instance, Role.READER, "reading backends")
    return instance


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def configuration(
    target: Target, name: str, *, simulator: bool, version: str, online: str, qubits: int
) -> dict[str, Any]:
    """IBM's backend configuration (QasmBackendConfiguration's dict) of `target`: its
    standard gates, where they act (`coupling_map` of each gate; none: everywhere), measure,
    reset, delay and control flow. `qubits` may differ from the target's (the simulators')."""
    # Qiskit loads with the first backend described (in a thread: see `describe`), not with the
    # gateway: a gateway nobody asks for IBM backends never holds it.
    from qiskit.circuit.controlflow import CONTROL_FLOW_OP_NAMES
    from qiskit.circuit.library.standard_gates import get_standard_gate_name_mapping

    standard = get_standard_gate_name_mapping()
    gates: list[dict[str, Any]] = []
    basis: list[str] = []
    supported: list[str] = []
    edges: set[tuple[int, int]] = set()
    for op_name in sorted(target.operation_names):
        if op_name in CONTROL_FLOW_OP_NAMES:
            supported.append(op_name)
            continue
        if op_name not in standard:
            continue  # Aer's own instructions (save_*, kraus, ...) have no IBM description
        supported.append(op_name)
        if op_name in NON_GATES:
            continue
        basis.append(op_name)
        qargs = target.qargs_for_operation_name(op_name)
        gate: dict[str, Any] = {
            "name": op_name,
            "parameters": [str(p) for p in standard[op_name].params],
            "qasm_def": "",
        }
        if qargs is not None:
            gate["coupling_map"] = [list(q) for q in sorted(qargs)]
            edges.update((q[0], q[1]) for q in qargs if len(q) == 2)
        gates.append(gate)
    return {
        "backend_name": name,
        "backend_version": version,
        "n_qubits": qubits,
        "basis_gates": basis,
        "gates": gates,
        "supported_instructions": supported,
        "local": False,
        "simulator": simulator,
        "conditional": False,
        "open_pulse": False,
        "memory": True,
        "max_shots": MAX_SHOTS,
        "max_experiments": 300,
        "coupling_map": sorted([list(e) for e in edges]) if edges else None,
        "meas_map": [[q] for q in range(qubits)],
        "online_date": online,
        "description": target.description or name,
        "supported_features": [],
        "credits_required": False,
        "dynamic_reprate_enabled": False,
    }


def properties(target: Target, report: DeviceReport) -> dict[str, Any]:
    """IBM's backend properties of a device from its last calibration (see the module's
    docstring), or `{}` when it has none (or not for every qubit)."""
    payload = report.calibration
    if not payload:
        return {}
    qubits = target.num_qubits or 0
    stamp = payload.get("last_calibration_timestamp")
    when = _iso(float(stamp) if is_number(stamp) else report.read_at or 0.0)

    def nduv(name: str, value: float, unit: str = "") -> dict[str, Any]:
        return {"date": when, "name": name, "unit": unit, "value": value}

    t1 = per_qubit(payload, "t1_in_us", qubits)
    t2 = per_qubit(payload, "t2_in_us", qubits)
    readout_error = [  # a device's own readout_error, else one from its readout_fidelity
        error if error is not None or fidelity is None else 1 - fidelity
        for fidelity, error in zip(
            per_qubit(payload, "readout_fidelity", qubits),
            per_qubit(payload, "readout_error", qubits),
            strict=True,
        )
    ]
    one_qubit = per_qubit(payload, "single_qubit_gate_fidelity", qubits)
    per_qubit_values: list[list[dict[str, Any]]] = []
    for q in range(qubits):
        values = []
        if (t1_us := t1[q]) is not None:
            values.append(nduv("T1", t1_us, "us"))
        if (t2_us := t2[q]) is not None:
            values.append(nduv("T2", t2_us, "us"))
        if (error := readout_error[q]) is not None:
            values.append(nduv("readout_error", error))
        per_qubit_values.append(values)
    if not all(per_qubit_values):
        return {}
    pairs: dict[tuple[int, int], float] = {}
    for (a, b), fidelity in per_pair(payload, "two_qubit_gate_fidelity").items():
        if a < qubits and b < qubits:
            pairs[(a, b)] = pairs[(b, a)] = 1 - fidelity
    gates = []
    for op_name in sorted(target.operation_names):
        if op_name in NON_GATES:
            continue
        for qargs in sorted(target.qargs_for_operation_name(op_name) or ()):
            if len(qargs) == 1:
                fidelity = one_qubit[qargs[0]]
                error = None if fidelity is None else 1 - fidelity
            else:
                error = pairs.get(qargs[:2])
            if error is None:
                continue
            gates.append({
                "qubits": list(qargs),
                "gate": op_name,
                "name": f"{op_name}{'_'.join(map(str, qargs))}",
                "parameters": [nduv("gate_error", error)],
            })  # fmt: skip
    general = [
        nduv(key, float(value))
        for key, value in sorted(payload.items())
        if is_number(value) and key != "last_calibration_timestamp"
    ]
    return {
        "backend_name": report.static.name,
        "backend_version": str(report.static.protocol_version),
        "last_update_date": when,
        "qubits": per_qubit_values,
        "gates": gates,
        "general": general,
    }


async def describe(gw: Gateway, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The IBM configuration and properties of backend `name`; raises NotFound for one no job
    may ask for now (or a device no executor has described yet)."""
    if name not in gw.backends():
        raise NotFound(f"backend '{name}' not found; available: {', '.join(gw.backends())}",
                       field="backend")  # fmt: skip
    if name in SIMULATORS:
        qubits = gw.settings.simulator_qubits
        return await asyncio.to_thread(_describe_simulator, name, qubits)
    seen = gw.board.last(name)
    if seen is None:
        raise NotFound(f"device '{name}' has not been described by its executor yet; try again",
                       field="backend")  # fmt: skip
    report, _ = seen
    # Building a Target (and, the first time, importing Qiskit) is blocking work: off the loop.
    return await asyncio.to_thread(_describe_device, name, report)


def _describe_simulator(name: str, qubits: int) -> tuple[dict[str, Any], dict[str, Any]]:
    target = simulator_target(name)
    online = QISKIT_START.isoformat().replace("+00:00", "Z")
    config = configuration(target, name, simulator=True, version="1.0.0", online=online,
                           qubits=qubits)  # fmt: skip
    return config, {}


def _describe_device(name: str, report: DeviceReport) -> tuple[dict[str, Any], dict[str, Any]]:
    target = device_target(report.static)
    version = str(report.static.protocol_version)
    online = _iso(report.static.starttime)
    config = configuration(target, name, simulator=False, version=version, online=online,
                           qubits=report.static.nqubits)  # fmt: skip
    return config, properties(target, report)


async def list_backends(request: web.Request) -> web.Response:
    _instance(request)
    gw = gateway(request)
    devices = []
    for name in gw.backends():
        if name in SIMULATORS:
            qubits = gw.settings.simulator_qubits
        elif (seen := gw.board.last(name)) is not None:
            qubits = seen[0].static.nqubits
        else:
            continue  # described once its executor's next heartbeat comes
        devices.append({
            "name": name,
            "status": {"name": "online", "reason": "available"},
            "qubits": qubits,
            "queue_length": (await gw.queue(name))[0],
            "is_simulator": name in SIMULATORS,
        })  # fmt: skip
    return ibm_json({"devices": devices})


async def get_configuration(request: web.Request) -> web.Response:
    _instance(request)
    config, _ = await describe(gateway(request), request.match_info["name"])
    return ibm_json(config)


async def get_properties(request: web.Request) -> web.Response:
    _instance(request)
    _, props = await describe(gateway(request), request.match_info["name"])
    before = request.query.get("updated_before")
    if props and before:
        try:
            limit = datetime.fromisoformat(before)
        except ValueError:
            raise InvalidInput("updated_before must be an ISO 8601 time",
                               field="updated_before") from None  # fmt: skip
        if limit.tzinfo is None:
            limit = limit.replace(tzinfo=UTC)
        if datetime.fromisoformat(props["last_update_date"]) > limit:
            props = {}  # only the last calibration is kept, and it is newer
    return ibm_json(props)


async def get_status(request: web.Request) -> web.Response:
    _instance(request)
    gw = gateway(request)
    name = request.match_info["name"]
    config, _ = await describe(gw, name)
    status = {
        "state": True,
        "status": "active",
        "message": "available",
        "length_queue": (await gw.queue(name))[0],
        "backend_version": config["backend_version"],
    }
    # qrt's own key: which dedicated session keeps the device idle for its next job, if any.
    hold = await device_hold(gw, name)
    status["session_hold"] = None if hold is None else hold_json(hold, principal(request))
    return ibm_json(status)


async def get_usage(request: web.Request) -> web.Response:
    instance = _instance(request)
    gw = gateway(request)
    pending = (JobStatus.QUEUED, JobStatus.RUNNING)
    _, waiting = await gw.store.list_jobs(
        JobQuery(limit=1, statuses=pending, instances=(instance,))
    )
    return ibm_json({
        "instance_id": instance_crn(instance),
        "plan_id": "qrt",
        "usage_limit_reached": False,
        "pending_jobs": waiting,
    })  # fmt: skip


_BACKEND = f"{PREFIX}/backends/{{name}}"
_OBJECT = {"type": "object"}

ROUTES: tuple[Route, ...] = (
    Route("GET", f"{PREFIX}/backends", list_backends, "List backends (IBM API)", "ibm",
          response_schema=_OBJECT, errors=(400, 403, 503), query=(CRN_PARAMETER, Parameter(
              "include_mocks", "Accepted and ignored (qrt has no mock backends).", "boolean"))),
    Route("GET", f"{_BACKEND}/configuration", get_configuration,
          "A backend's configuration, from its Target (IBM API)", "ibm",
          response_schema=_OBJECT, errors=(400, 403, 404, 503), query=(CRN_PARAMETER,)),
    Route("GET", f"{_BACKEND}/properties", get_properties,
          "A device's calibration as IBM's backend properties (IBM API)", "ibm",
          response_schema=_OBJECT, errors=(400, 403, 404, 503), query=(CRN_PARAMETER, Parameter(
              "updated_before", "Only a calibration from before this time ({} if the last one "
              "is newer).", constraints={"format": "date-time"}))),
    Route("GET", f"{_BACKEND}/status", get_status, "A backend's status and queue (IBM API)",
          "ibm", response_schema=_OBJECT, errors=(400, 403, 404, 503), query=(CRN_PARAMETER,)),
    Route("GET", f"{PREFIX}/instances/usage", get_usage, "The instance's usage (IBM API)",
          "ibm", response_schema=_OBJECT, errors=(400, 403, 503), query=(CRN_PARAMETER,)),
)  # fmt: skip
