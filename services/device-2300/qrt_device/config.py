"""A device's configuration: what `get_static` reports, its limits and its calibration.

Read from a TOML file (`qrt device --config FILE`); every key is optional and the defaults
model a 5-qubit Starmon-5 with QuTech's star topology (every qubit coupled to qubit 2). The
defaults fit any `qubits` and `topology`: the star then couples every qubit to qubit 2 (to the
last one below three qubits), and qubit q is calibrated as Starmon-5's qubit q mod 5.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qrt_common.cqasm.gates import NON_GATES, PGS_GATES
from qrt_common.errors import DeviceConfigError

DEFAULT_PGS = [
    "CNOT", "CZ", "CR", "CRk", "H", "I", "mX90", "mY90", "Rx", "Ry", "Rz", "S", "Sdag", "SWAP",
    "T", "Tdag", "X", "X90", "Y", "Y90", "Z", "measure", "init", "reset", "barrier", "wait",
]  # fmt: skip
COMPILER_STAGES = ("decomposition", "mapping", "optimization", "routing")
STARMON_5: dict[str, list[float]] = {
    "t1_us": [24.0, 31.0, 19.5, 27.0, 22.0],
    "t2_us": [18.0, 25.0, 14.0, 21.0, 17.5],
    "single_qubit_fidelity": [0.9991, 0.9993, 0.9987, 0.9990, 0.9992],
    "readout_error": [0.021, 0.034, 0.027, 0.019, 0.030],
}
"""Calibrated values of Starmon-5's five qubits: the defaults, qubit q taking those of q mod 5."""
STARMON_5_EDGES = {(0, 2): 0.982, (1, 2): 0.976, (3, 2): 0.979, (4, 2): 0.971}
"""Two-qubit gate fidelities of Starmon-5's couplings (either order); 0.98 for other edges."""
OTHER_EDGE_FIDELITY = 0.98


def star(qubits: int) -> list[tuple[int, int]]:
    """The default topology: every qubit coupled to qubit 2 (to the last qubit when there are
    fewer than three), as on Starmon-5."""
    centre = min(2, qubits - 1)
    return [(q, centre) for q in range(qubits) if q != centre]


class CalibrationConfig(BaseModel):
    """Calibrated values right after a calibration, and how they drift until the next one.

    Per-qubit values are one number for all qubits or a list with one per qubit;
    `two_qubit_fidelity` is one number or a table `"a-b" = value` over the topology's edges.
    Left out (None), a value is Starmon-5's (`STARMON_5`, `STARMON_5_EDGES`), for any number
    of qubits and any topology.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    t1_us: float | list[float] | None = None
    t2_us: float | list[float] | None = None
    single_qubit_fidelity: float | list[float] | None = None
    two_qubit_fidelity: float | dict[str, float] | None = None
    readout_error: float | list[float] | None = None
    """Probability that a measurement reads the wrong value."""
    single_qubit_gate_ns: float = Field(20.0, gt=0)
    two_qubit_gate_ns: float = Field(60.0, gt=0)
    interval_seconds: float = Field(3600.0, gt=0)
    """Time between calibrations (a locked device calibrates once it is released)."""
    duration_seconds: float = Field(2.0, ge=0)
    """How long a calibration keeps the device CALIBRATING."""
    drift_per_hour: float = Field(0.05, ge=0)
    """Relative worsening per hour since the last calibration (T1, T2 shrink; errors grow)."""
    jitter: float = Field(0.02, ge=0, lt=0.5)
    """Relative spread of a fresh calibration around the configured values."""


def _no_passes() -> dict[str, list[dict[str, Any]]]:
    return {stage: [] for stage in COMPILER_STAGES}


class DeviceConfig(BaseModel):
    """Everything one simulated 2300 device is."""

    # `inf` (TOML's too) reaches the worker as JSON's `Infinity`, not as null.
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    name: str = Field("Starmon-5", min_length=1)
    qubits: int = Field(5, ge=1, le=30)
    topology: list[tuple[int, int]] = Field(default_factory=lambda: star(5))
    """Coupled qubit pairs; a two-qubit gate may act on a pair in either order. Default: the
    star of `star(qubits)`."""
    pgs: list[str] = Field(default_factory=lambda: list(DEFAULT_PGS))
    supports_raw_data: bool = True
    default_compiler_config: dict[str, list[dict[str, Any]]] = Field(default_factory=_no_passes)
    max_shots: int = Field(100_000, ge=1)
    max_circuit_bytes: int = Field(1_000_000, ge=100)
    max_operations: int = Field(100_000, ge=1)
    max_bits: int = Field(128, ge=1)
    """Classical bits a circuit may declare: each result bitstring is this long, so a reply
    with raw data of `max_shots` shots stays near max_shots x max_bits bytes."""
    max_execute_seconds: float = Field(120.0, gt=0)
    """Longest time one execute may spend parsing and simulating; beyond it the simulation is
    stopped and the execute refused, so no circuit holds the device for longer."""
    max_dynamic_work: int = Field(2**26, ge=1)
    """Cap of shots x 2^qubits for circuits Aer must simulate shot by shot (mid-circuit
    measurements or conditional gates)."""
    worker_idle_seconds: float = Field(300.0, gt=0)
    """The simulator's worker process (Qiskit and Aer, about 110 MiB) starts with the first
    session and ends after this long without an execute; `inf` keeps it once started."""
    lease_seconds: float = Field(60.0, gt=0)
    """An initialized session silent this long loses its lock."""
    heartbeat_seconds: float = Field(1.0, gt=0)
    publish: bool = True
    """Broadcast `publish_state` from the start (protocol 0.1.0's `set_publish` toggles it)."""
    noise: bool = True
    """Simulate with the noise model built from the calibration (false: ideal results)."""
    seed: int | None = None
    """Seed of the simulator (plus the execute's job id): equal requests, equal counts."""
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)

    @model_validator(mode="before")
    @classmethod
    def _default_topology(cls, data: Any) -> Any:
        # The default star must fit the configured number of qubits.
        if isinstance(data, dict) and "topology" not in data:
            qubits = data.get("qubits", 5)
            if isinstance(qubits, int) and not isinstance(qubits, bool) and qubits >= 1:
                return {**data, "topology": star(qubits)}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> DeviceConfig:
        for a, b in self.topology:
            if not (0 <= a < self.qubits and 0 <= b < self.qubits) or a == b:
                raise ValueError(f"topology edge [{a}, {b}] is not between two of the qubits")
        unknown = sorted(set(self.pgs) - PGS_GATES - NON_GATES)
        if unknown:
            raise ValueError(f"pgs names unknown gates {unknown}; known: {sorted(PGS_GATES)}")
        calibration = self.calibration
        for key in ("t1_us", "t2_us", "single_qubit_fidelity", "readout_error"):
            value = getattr(calibration, key)
            if isinstance(value, list) and len(value) != self.qubits:
                raise ValueError(
                    f"calibration.{key} has {len(value)} values for {self.qubits} qubits"
                )
        for q, (t1, t2) in enumerate(
            zip(self.per_qubit("t1_us"), self.per_qubit("t2_us"), strict=True)
        ):
            if t1 <= 0 or not 0 < t2 <= 2 * t1:
                raise ValueError(f"qubit {q}: T1 must be positive and 0 < T2 <= 2 T1")
        if isinstance(calibration.two_qubit_fidelity, dict):
            edges = {frozenset(edge) for edge in self.topology}
            for key in calibration.two_qubit_fidelity:
                pair = _pair(key)
                if pair is None or frozenset(pair) not in edges:
                    raise ValueError(f"calibration.two_qubit_fidelity key {key!r} is not an edge")
        return self

    def per_qubit(self, key: str) -> list[float]:
        """A per-qubit calibration value as a list of `qubits` numbers."""
        value = getattr(self.calibration, key)
        if value is None:
            defaults = STARMON_5[key]
            return [defaults[q % len(defaults)] for q in range(self.qubits)]
        return (
            [float(v) for v in value] if isinstance(value, list) else [float(value)] * self.qubits
        )

    def edge_fidelities(self) -> dict[tuple[int, int], float]:
        """Two-qubit gate fidelity of every topology edge (0.98 for an edge no table lists)."""
        value = self.calibration.two_qubit_fidelity
        if isinstance(value, (int, float)):
            return {edge: float(value) for edge in self.topology}
        if value is None:
            table = {frozenset(edge): f for edge, f in STARMON_5_EDGES.items()}
        else:
            table = {frozenset(p): v for k, v in value.items() if (p := _pair(k)) is not None}
        return {
            edge: float(table.get(frozenset(edge), OTHER_EDGE_FIDELITY)) for edge in self.topology
        }


def _pair(key: str) -> tuple[int, int] | None:
    first, _, second = key.partition("-")
    try:
        return int(first), int(second)
    except ValueError:
        return None


def load_config(path: Path | None) -> DeviceConfig:
    """The configuration in TOML file `path` (defaults if None); raises DeviceConfigError."""
    if path is None:
        return DeviceConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeviceConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeviceConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        return DeviceConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'config'}: {error['msg']}"
            for error in exc.errors()
        )
        raise DeviceConfigError(f"{path}: {problems}") from None
