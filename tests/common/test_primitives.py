"""The checks of a V2 primitive request the gateway makes at submit, on params as the stock
qiskit-ibm-runtime client sends them (its own option classes and RuntimeEncoder)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from qiskit import QuantumCircuit
from qiskit_aer import AerSimulator
from qiskit_ibm_runtime import RuntimeEncoder

from qrt_common.errors import InvalidInput
from qrt_common.primitives import (
    PRIMITIVE_PROGRAMS,
    check_primitive_request,
    review_primitive_request,
)
from tests.support.primitives import submitted_params


def bell() -> QuantumCircuit:
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    return circuit


def sampler_params(options: dict[str, Any] | None = None, **run: Any) -> dict[str, Any]:
    circuit = bell()
    circuit.measure_all()
    sent = submitted_params("sampler", AerSimulator(), options, [circuit], **run)
    values: dict[str, Any] = json.loads(json.dumps(sent, cls=RuntimeEncoder))
    return values


def estimator_params(options: dict[str, Any] | None = None, **run: Any) -> dict[str, Any]:
    sent = submitted_params("estimator", AerSimulator(), options, [(bell(), "ZZ")], **run)
    values: dict[str, Any] = json.loads(json.dumps(sent, cls=RuntimeEncoder))
    return values


def refused(program: str, params: Any, *, simulator: bool | None = None) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        check_primitive_request(program, params, simulator=simulator)
    return caught.value


def test_the_clients_params_pass_as_they_are_sent():
    params = sampler_params({"default_shots": 100, "simulator": {"seed_simulator": 7}}, shots=50)
    assert set(params) == {"pubs", "options", "version", "support_qiskit"}
    assert params["pubs"][0][2] == 50 and params["version"] == 2
    for simulator in (None, True, False):
        check_primitive_request("sampler", params, simulator=simulator)
    params = estimator_params({"default_precision": 0.01, "resilience_level": 0}, precision=0.02)
    assert params["resilience_level"] == 0 and params["pubs"][0][3] == 0.02
    for simulator in (None, True, False):
        check_primitive_request("estimator", params, simulator=simulator)
    assert PRIMITIVE_PROGRAMS == ("sampler", "estimator")


def test_other_program_ids_are_refused_naming_the_supported_ones():
    error = refused("executor", sampler_params())
    assert error.field == "program_id"
    assert "'executor'" in str(error) and "'sampler', 'estimator'" in str(error)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda p: p.pop("pubs"), "params.pubs", "missing"),
        (lambda p: p.update(pubs=[]), "params.pubs", "non-empty list"),
        (lambda p: p.update(pubs={"a": 1}), "params.pubs", "non-empty list"),
        (lambda p: p["pubs"].append("circuit"), "params.pubs[1]", "a pub is a list"),
        (lambda p: p["pubs"][0].__setitem__(0, "OPENQASM 2.0;"), "params.pubs[0][0]", "QPY"),
        (
            lambda p: p["pubs"][0].__setitem__(0, {"__type__": "ndarray", "__value__": ""}),
            "params.pubs[0][0]",
            "QuantumCircuit",
        ),
        (lambda p: p["pubs"][0].__setitem__(2, 0), "params.pubs[0][2]", "from 1 to 100000"),
        (lambda p: p["pubs"][0].__setitem__(2, True), "params.pubs[0][2]", "from 1 to 100000"),
        (lambda p: p["pubs"][0].__setitem__(2, 10**12), "params.pubs[0][2]", "(max_shots)"),
        (lambda p: p["pubs"][0].extend([1, 2]), "params.pubs[0]", "1 to 3 items, not 5"),
        (lambda p: p.update(version=1), "params.version", "version 2"),
        (lambda p: p.update(circuits=[]), "params.circuits", "not a parameter of the sampler"),
        (lambda p: p.update(options=[]), "params.options", "must be an object"),
        (
            lambda p: p["options"].update(default_shots=-1),
            "params.options.default_shots",
            "from 1 to 100000",
        ),
        (
            lambda p: p["options"].update(default_shots=10**12),
            "params.options.default_shots",
            "(max_shots)",
        ),
        (
            lambda p: p["options"].update(resilience={"measure_mitigation": True}),
            "params.options.resilience",
            "not an option of the sampler",
        ),
        (
            lambda p: p["options"].update(twirling={"enable": True}),
            "params.options.twirling.enable",
            "not an option of twirling",
        ),
        (
            lambda p: p["options"].update(execution={"meas_type": "kerneled"}),
            "params.options.execution.meas_type",
            "only 'classified'",
        ),
        (
            lambda p: p["options"].update(execution={"init_qubits": False}),
            "params.options.execution.init_qubits",
            "ground state",
        ),
        (
            lambda p: p["options"].update(simulator={"seed_simulator": "7"}),
            "params.options.simulator.seed_simulator",
            "non-negative integer",
        ),
    ],
)
def test_bad_sampler_params_are_refused_naming_the_field(change, field, words):
    params = sampler_params({"default_shots": 10})
    change(params)
    error = refused("sampler", params)
    assert error.field == field and words in str(error), str(error)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda p: p["pubs"][0].__setitem__(3, 0), "params.pubs[0][3]", "greater than 0"),
        (lambda p: p["pubs"][0].__setitem__(3, "0.1"), "params.pubs[0][3]", "greater than 0"),
        (lambda p: p["pubs"][0].pop(), None, None),  # three items: a pub without precision
        (lambda p: p["pubs"][0].__delitem__(slice(1, None)), "params.pubs[0]", "2 to 4 items"),
        (lambda p: p.update(resilience_level=3), "params.resilience_level", "0, 1 or 2"),
        (
            lambda p: p["options"].update(default_precision=0),
            "params.options.default_precision",
            "greater than 0",
        ),
        (
            lambda p: p["options"].update(seed_estimator=1.5),
            "params.options.seed_estimator",
            "non-negative integer",
        ),
    ],
)
def test_bad_estimator_params_are_refused_naming_the_field(change, field, words):
    params = estimator_params()
    change(params)
    if field is None:
        check_primitive_request("estimator", params)
        return
    error = refused("estimator", params)
    assert error.field == field and words in str(error), str(error)


def test_mitigation_is_ignored_on_a_noiseless_simulator_and_refused_elsewhere():
    params = estimator_params(
        {
            "resilience_level": 2,
            "twirling": {"enable_gates": True, "num_randomizations": 4},
            "resilience": {"zne_mitigation": True},
            "dynamical_decoupling": {"enable": True, "sequence_type": "XY4"},
        }
    )
    # The gateway may not know the backend: nothing that depends on it is refused.
    check_primitive_request("estimator", params)
    warnings = review_primitive_request("estimator", params, simulator=True)
    assert warnings == [
        "option resilience_level=2 ignored: a noiseless simulator has no errors to mitigate",
        "option resilience.zne_mitigation ignored: a noiseless simulator has no errors to "
        "mitigate or twirl",
        "option twirling.enable_gates ignored: a noiseless simulator has no errors to mitigate "
        "or twirl",
        "option dynamical_decoupling.enable ignored: a simulator has no idle-time noise",
    ]
    error = refused("estimator", params, simulator=False)
    assert error.field == "params.resilience_level" and "resilience_level 0" in str(error)
    params.pop("resilience_level")
    error = refused("estimator", params, simulator=False)
    assert error.field == "params.options.resilience.zne_mitigation"
    params["options"].pop("resilience")
    assert refused("estimator", params, simulator=False).field == (
        "params.options.twirling.enable_gates"
    )
    params["options"].pop("twirling")
    error = refused("estimator", params, simulator=False)
    assert error.field == "params.options.dynamical_decoupling.enable"
    assert "dynamical decoupling" in str(error)
    # A simulator with a noise model has errors: mitigation is refused there too.
    noisy = sampler_params({"twirling": {"enable_measure": True}})
    noisy["options"]["simulator"] = {"noise_model": {"errors": [], "x90_gates": []}}
    error = refused("sampler", noisy, simulator=True)
    assert error.field == "params.options.twirling.enable_measure"


def test_simulator_options_on_a_device_are_ignored_with_a_warning():
    params = sampler_params(
        {
            "simulator": {"seed_simulator": 5, "coupling_map": [[0, 1]], "basis_gates": ["cx"]},
            "execution": {"rep_delay": 0.0001},
            "experimental": {"anything": 1},
        }
    )
    assert review_primitive_request("sampler", params, simulator=False) == [
        "option simulator.seed_simulator ignored: a device's shots are not seeded",
        "option simulator.coupling_map ignored: pubs run as they are (ISA circuits), qrt does "
        "not transpile them",
        "option simulator.basis_gates ignored: pubs run as they are (ISA circuits), qrt does "
        "not transpile them",
        "option execution.rep_delay ignored: neither Aer nor a 2300 device has one to set",
        "option experimental ignored: qrt has no experimental options",
    ]
    assert review_primitive_request("sampler", params, simulator=True)[0].startswith(
        "option simulator.coupling_map"
    )


def test_the_checks_import_no_qiskit():
    """The gateway checks requests without qiskit (no QPY, no second of imports)."""
    code = (
        "import sys, json; from qrt_common.primitives import check_primitive_request; "
        f"check_primitive_request('sampler', json.loads({json.dumps(json.dumps(sampler_params()))})); "
        "print(sorted(m for m in sys.modules if m.startswith(('qiskit', 'numpy'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_aer_primitives_on_a_backend_are_what_from_backend_makes():
    """`aer_sampler` and `aer_estimator` skip the simulator Aer's `__init__` builds to drop:
    the same attributes as `from_backend`'s, and the same results for the same seed."""
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_aer.primitives import EstimatorV2, SamplerV2

    from qrt_common.primitive_runs import aer_estimator, aer_sampler

    backend = AerSimulator()
    circuit = bell().measure_all(inplace=False)
    ours = aer_sampler(backend, 100, 5)
    theirs = SamplerV2.from_backend(backend, default_shots=100, seed=5)
    assert vars(ours).keys() == vars(theirs).keys() and ours._backend is backend
    assert vars(ours) == vars(theirs)
    counts = [s.run([circuit]).result()[0].join_data().get_counts() for s in (ours, theirs)]
    assert counts[0] == counts[1]
    options = {"default_precision": 0.01, "run_options": {"seed_simulator": 3}}
    ours = aer_estimator(backend, options)
    theirs = EstimatorV2.from_backend(backend, options=options)
    assert vars(ours) == vars(theirs)
    pub = (bell(), SparsePauliOp(["ZZ", "XX"]))
    evs = [e.run([pub]).result()[0].data.evs.tolist() for e in (ours, theirs)]
    assert evs[0] == evs[1]
