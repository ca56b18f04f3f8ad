"""What qrt takes from a V2 primitive request (`SamplerV2`, `EstimatorV2` of qiskit-ibm-runtime):
its params' shape and the options qrt honours, ignores with a warning, or refuses.

The stock client submits a primitive as a job of program `sampler` or `estimator` whose params
are the RuntimeEncoder JSON of (qiskit_ibm_runtime/options/options.py, `_get_program_inputs`)::

    {"pubs": [[<circuit>, <parameter values>, <shots | null>], ...],          # sampler
     "pubs": [[<circuit>, <observables>, <parameter values>, <precision | null>], ...],  # estimator
     "options": {...},            # only the options the user set
     "version": 2, "support_qiskit": true,
     "resilience_level": <int>}   # estimator, when set

Values are checked against JSON's concrete types (dict, list), not the Mapping and Sequence
ABCs: an ABC's first negative answer for a class (None, a decoded QuantumCircuit) walks every
subclass registered with it, tens of milliseconds in a freshly forked job process.

The checks here need no decoding (no QPY, no qiskit): the gateway makes them at submit
(`check_primitive_request`), the programs again in their job process with the backend known
(`review_primitive_request`, which also returns the warnings to log). The table of options is in
the README, "SamplerV2 and EstimatorV2 programs".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .backends import MAX_SHOTS
from .errors import InvalidInput

__all__ = [
    "DEFAULT_PRECISION",
    "DEFAULT_SHOTS",
    "PRIMITIVE_PROGRAMS",
    "check_primitive_request",
    "review_primitive_request",
]

PRIMITIVE_PROGRAMS = ("sampler", "estimator")
"""The program ids of the V2 primitives qrt runs."""

DEFAULT_SHOTS = 4096
"""Shots of a sampler pub that names none, without `default_shots` (IBM's default)."""
DEFAULT_PRECISION = 0.015625
"""Precision of an estimator pub that names none, without `default_precision` or
`default_shots` (IBM's default, 1/sqrt(4096))."""

_PARAMS = {
    "sampler": ("pubs", "options", "version", "support_qiskit"),
    "estimator": ("pubs", "options", "version", "support_qiskit", "resilience_level"),
}
_PUB_LENGTHS = {"sampler": (1, 3), "estimator": (2, 4)}
_PUB_FORMS = {
    "sampler": "[circuit, parameter values, shots]",
    "estimator": "[circuit, observables, parameter values, precision]",
}

_DYNAMICAL_DECOUPLING = (
    "enable",
    "sequence_type",
    "extra_slack_distribution",
    "scheduling_method",
    "skip_reset_qubits",
)
_TWIRLING = (
    "enable_gates",
    "enable_measure",
    "num_randomizations",
    "shots_per_randomization",
    "strategy",
)
_SIMULATOR = ("noise_model", "seed_simulator", "coupling_map", "basis_gates")
_RESILIENCE = (
    "measure_mitigation",
    "measure_noise_learning",
    "zne_mitigation",
    "zne",
    "pec_mitigation",
    "pec",
    "layer_noise_learning",
    "layer_noise_model",
)
_OPTIONS: dict[str, dict[str, tuple[str, ...] | None]] = {
    "sampler": {
        "default_shots": None,
        "dynamical_decoupling": _DYNAMICAL_DECOUPLING,
        "execution": ("init_qubits", "rep_delay", "meas_type"),
        "twirling": _TWIRLING,
        "simulator": _SIMULATOR,
        "experimental": None,
    },
    "estimator": {
        "default_precision": None,
        "default_shots": None,
        "seed_estimator": None,
        "dynamical_decoupling": _DYNAMICAL_DECOUPLING,
        "resilience": _RESILIENCE,
        "execution": ("init_qubits", "rep_delay"),
        "twirling": _TWIRLING,
        "simulator": _SIMULATOR,
        "experimental": None,
    },
}
"""Each program's options: a leaf (None) or a section and the names it holds."""


def check_primitive_request(
    program_id: str, params: Mapping[str, Any], *, simulator: bool | None = None
) -> None:
    """Check a `sampler` or `estimator` job's params before it is queued.

    `params` is the JSON object the client sent (its pubs still RuntimeEncoder envelopes, or
    decoded: both are taken); `simulator` says whether the job's backend is a simulator (None:
    not known, and the checks that depend on it are left to the program). Raises InvalidInput,
    its `field` the param or option at fault (`params.options.twirling.enable_gates`), for a
    program id other than `PRIMITIVE_PROGRAMS`, params of the wrong shape, and an option qrt
    refuses (see the README's table).
    """
    review_primitive_request(program_id, params, simulator=simulator)


def review_primitive_request(
    program_id: str, params: Mapping[str, Any], *, simulator: bool | None = None
) -> list[str]:
    """`check_primitive_request`, returning the warnings of the options qrt ignores on this
    backend (one sentence each, naming the option), for the job's log."""
    if program_id not in PRIMITIVE_PROGRAMS:
        supported = ", ".join(repr(name) for name in PRIMITIVE_PROGRAMS)
        raise InvalidInput(
            f"program {program_id!r} is not a primitive qrt runs: it runs {supported}",
            field="program_id",
        )
    if not isinstance(params, Mapping):
        raise InvalidInput(
            f"the {program_id} program takes an object of params, not {_kind(params)}",
            field="params",
        )
    for name in params:
        if name not in _PARAMS[program_id]:
            takes = ", ".join(_PARAMS[program_id])
            raise InvalidInput(
                f"params.{name}: not a parameter of the {program_id} program (it takes {takes})",
                field=f"params.{name}",
            )
    version = params.get("version", 2)
    if version != 2 or isinstance(version, bool):
        raise InvalidInput(
            f"params.version: qrt runs version 2 of the primitives, not {version!r}",
            field="params.version",
        )
    _check_pubs(program_id, params.get("pubs"))
    options = params.get("options")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InvalidInput(
            f"params.options: must be an object, not {_kind(options)}", field="params.options"
        )
    return _Review(program_id, options, params.get("resilience_level"), simulator).run()


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", str: "a string", dict: "an object", list: "an array"}
    if type(value) in names:
        return names[type(value)]
    return "a number" if isinstance(value, int | float) else f"a {type(value).__name__}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_pubs(program_id: str, pubs: Any) -> None:
    form = _PUB_FORMS[program_id]
    if pubs is None:
        raise InvalidInput(
            f"params.pubs: missing: the {program_id} takes a list of pubs {form}",
            field="params.pubs",
        )
    if not isinstance(pubs, list | tuple) or not pubs:
        raise InvalidInput(
            f"params.pubs: must be a non-empty list of pubs {form}", field="params.pubs"
        )
    fewest, most = _PUB_LENGTHS[program_id]
    for index, pub in enumerate(pubs):
        where = f"params.pubs[{index}]"
        if not isinstance(pub, list | tuple):
            raise InvalidInput(f"{where}: a pub is a list {form}", field=where)
        if not fewest <= len(pub) <= most:
            raise InvalidInput(
                f"{where}: a pub is a list {form} of {fewest} to {most} items, not {len(pub)}",
                field=where,
            )
        circuit = pub[0]
        if (
            circuit is None
            or isinstance(circuit, str | int | float | list | tuple)
            or (isinstance(circuit, dict) and circuit.get("__type__") != "QuantumCircuit")
        ):
            raise InvalidInput(
                f"{where}[0]: must be a QuantumCircuit (QPY, as RuntimeEncoder writes it)",
                field=f"{where}[0]",
            )
        if program_id == "sampler" and len(pub) == 3:
            shots = pub[2]
            if shots is not None and (not _is_int(shots) or not 0 < shots <= MAX_SHOTS):
                raise InvalidInput(
                    f"{where}[2]: shots must be an integer from 1 to {MAX_SHOTS} (max_shots) "
                    f"or null, not {shots!r}",
                    field=f"{where}[2]",
                )
        if program_id == "estimator" and len(pub) == 4:
            precision = pub[3]
            if precision is not None and (not _is_number(precision) or not precision > 0):
                raise InvalidInput(
                    f"{where}[3]: precision must be a number greater than 0 or null, "
                    f"not {precision!r}",
                    field=f"{where}[3]",
                )


class _Review:
    """One pass over a request's options: raises for the first refused, collects warnings."""

    def __init__(
        self,
        program_id: str,
        options: Mapping[str, Any],
        resilience_level: Any,
        simulator: bool | None,
    ) -> None:
        self.program_id = program_id
        self.options = options
        self.resilience_level = resilience_level
        self.simulator = simulator
        simulated = options.get("simulator")
        self.noise_model = isinstance(simulated, dict) and (
            simulated.get("noise_model") is not None
        )
        self.warnings: list[str] = []

    def refuse(self, name: str, why: str) -> None:
        raise InvalidInput(f"options.{name}: {why}", field=f"params.options.{name}")

    def ignore(self, name: str, why: str) -> None:
        self.warnings.append(f"option {name} ignored: {why}")

    def get(self, section: str, name: str) -> Any:
        part = self.options.get(section)
        return part.get(name) if isinstance(part, dict) else None

    def run(self) -> list[str]:
        known = _OPTIONS[self.program_id]
        for name, value in self.options.items():
            if name not in known:
                listed = ", ".join(known)
                self.refuse(name, f"not an option of the {self.program_id} (it takes {listed})")
            names = known[name]
            if names is not None and name != "experimental":
                if not isinstance(value, dict):
                    self.refuse(name, f"must be an object, not {_kind(value)}")
                for inner in value:
                    if inner not in names:
                        self.refuse(
                            f"{name}.{inner}",
                            f"not an option of {name} (it has {', '.join(names)})",
                        )
        self.shots_and_precision()
        self.seeds()
        self.simulator_options()
        self.mitigation()
        self.execution()
        if self.options.get("experimental") and self.simulator is not None:
            self.ignore("experimental", "qrt has no experimental options")
        return self.warnings

    def shots_and_precision(self) -> None:
        shots = self.options.get("default_shots")
        if shots is not None and (not _is_int(shots) or not 0 < shots <= MAX_SHOTS):
            self.refuse(
                "default_shots",
                f"must be an integer from 1 to {MAX_SHOTS} (max_shots), not {shots!r}",
            )
        if "default_shots" in self.options and shots is None and self.program_id == "sampler":
            self.refuse("default_shots", "must be a positive integer, not null")
        precision = self.options.get("default_precision")
        if precision is not None and (not _is_number(precision) or not precision > 0):
            self.refuse("default_precision", f"must be a number greater than 0, not {precision!r}")

    def seeds(self) -> None:
        for section, name in ((None, "seed_estimator"), ("simulator", "seed_simulator")):
            seed = self.options.get(name) if section is None else self.get(section, name)
            full = name if section is None else f"{section}.{name}"
            if seed is None:
                continue
            if not _is_int(seed) or seed < 0:
                self.refuse(full, f"must be a non-negative integer, not {seed!r}")
            if self.simulator is False:
                self.ignore(full, "a device's shots are not seeded")

    def simulator_options(self) -> None:
        if self.simulator is None:
            return
        if self.noise_model and not self.simulator:
            self.ignore("simulator.noise_model", "a device has the noise it has")
        for name in ("coupling_map", "basis_gates"):
            if self.get("simulator", name) is not None:
                self.ignore(
                    f"simulator.{name}",
                    "pubs run as they are (ISA circuits), qrt does not transpile them",
                )

    def mitigation(self) -> None:
        """Resilience, twirling and dynamical decoupling: nothing to do on a noiseless
        simulator (ignored, as IBM's local testing mode does), refused where noise is."""
        asked: list[str] = []
        """The options asked for that mitigate or twirl, as `options.<name>` spells them."""
        level = self.resilience_level
        if level is not None:
            if not _is_int(level) or not 0 <= level <= 2:
                raise InvalidInput(
                    f"params.resilience_level: must be 0, 1 or 2, not {level!r}",
                    field="params.resilience_level",
                )
            if level > 0 and self.simulator is not None:
                if self.simulator and not self.noise_model:
                    self.ignore(
                        f"resilience_level={level}",
                        "a noiseless simulator has no errors to mitigate",
                    )
                else:
                    raise InvalidInput(
                        f"params.resilience_level: qrt runs without error mitigation "
                        f"(resilience_level 0), not resilience_level {level}",
                        field="params.resilience_level",
                    )
        for name in ("measure_mitigation", "zne_mitigation", "pec_mitigation"):
            if self.get("resilience", name) is True:
                asked.append(f"resilience.{name}")
        if self.get("resilience", "layer_noise_model") is not None:
            asked.append("resilience.layer_noise_model")
        for name in ("enable_gates", "enable_measure"):
            if self.get("twirling", name) is True:
                asked.append(f"twirling.{name}")
        for name in asked:
            if self.simulator is None:
                continue
            if self.simulator and not self.noise_model:
                self.ignore(name, "a noiseless simulator has no errors to mitigate or twirl")
            else:
                self.refuse(name, "qrt does not mitigate errors or twirl on this backend")
        if self.get("dynamical_decoupling", "enable") is True:
            if self.simulator:
                self.ignore("dynamical_decoupling.enable", "a simulator has no idle-time noise")
            elif self.simulator is False:
                self.refuse(
                    "dynamical_decoupling.enable",
                    "qrt does not insert dynamical decoupling sequences on a device",
                )

    def execution(self) -> None:
        if self.get("execution", "init_qubits") is False:
            self.refuse("execution.init_qubits", "every shot starts from the ground state on qrt")
        meas_type = self.get("execution", "meas_type")
        if meas_type is not None and meas_type != "classified":
            self.refuse(
                "execution.meas_type",
                f"only 'classified' (bits) is returned, not {meas_type!r}: neither Aer nor the "
                "2300 interface gives IQ data",
            )
        if self.get("execution", "rep_delay") is not None and self.simulator is not None:
            self.ignore("execution.rep_delay", "neither Aer nor a 2300 device has one to set")
