"""The rules of submitting work: who may run a program, params checked against its metadata,
and the new job made from them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from qrt_common.errors import Forbidden, InvalidInput
from qrt_common.jobs import JobStatus
from qrt_common.programs import Program, ProgramKind, planqk_input
from qrt_common.registry import ProgramRegistry, bundled_programs_dir
from qrt_common.submission import (
    check_may_run,
    new_job,
    planqk_params,
    program_params,
    service_params,
)

TYPED = Program(
    id="typed",
    name="typed",
    module="typed.typed",
    max_execution_time=300,
    parameters=[
        {"name": "count", "type": "int", "required": True},
        {"name": "ratio", "type": "float"},
        {"name": "flag", "type": "bool"},
        {"name": "label", "type": "String"},
        {"name": "options", "type": "dict"},
        {"name": "items", "type": "array"},
        {"name": "circuits", "type": "QuantumCircuit"},
        {"name": "free"},
    ],
)
PLAIN = Program(id="plain", name="plain", module="plain.plain")
TEMPLATE = Program(
    id="template", name="template", module="template", kind=ProgramKind.PYTHON_TEMPLATE
)
ONE_SHOT = Program(
    id="oneshot", name="oneshot", module="oneshot", kind=ProgramKind.ONE_SHOT, command=("run",)
)


def refusal(raw: Any, program: Program = TYPED) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        program_params(raw, program)
    return caught.value


@pytest.mark.parametrize("raw", [None, []])
def test_no_params_are_an_empty_object(raw):
    assert program_params(raw, PLAIN) == "{}"


def test_the_test_servers_list_of_one_json_string_is_kept_as_its_text():
    text = '{ "count": 3, "free": [1, 2] }'
    assert program_params([text], TYPED) == text


def test_a_json_object_is_kept_as_its_json_text():
    values = {"count": 3, "label": "x", "options": {"a": 1}}
    assert json.loads(program_params(values, TYPED)) == values


@pytest.mark.parametrize("raw", [["{}", "{}"], [1], [{"count": 1}], "count=3", 3, True], ids=repr)
def test_params_of_another_shape_are_refused_naming_params(raw):
    error = refusal(raw, PLAIN)
    assert error.field == "params"


def test_a_list_whose_string_is_not_json_is_refused_naming_its_element():
    error = refusal(['{"count": 3'])
    assert error.field == "params[0]" and "params[0] is not valid JSON" in str(error)


def test_a_list_whose_string_is_not_an_object_is_refused():
    error = refusal(["[1, 2]"])
    assert error.field == "params[0]" and "must encode a JSON object" in str(error)


def test_params_nested_too_deeply_are_refused_not_a_crash():
    deep = '{"free": ' + "[" * 100_000 + "]" * 100_000 + "}"
    error = refusal([deep])
    assert error.field == "params[0]" and "nested too deeply" in str(error)


@pytest.mark.parametrize("raw", [{}, ["{}"], {"ratio": 1.5}])
def test_a_missing_required_parameter_is_refused_naming_it(raw):
    error = refusal(raw)
    assert error.field == "params.count"
    assert str(error) == "missing required parameter 'count'"


def test_a_required_parameter_given_misspelled_is_named_in_the_refusal():
    error = refusal({"cuont": 3})
    assert str(error) == "missing required parameter 'count'; params has 'cuont': a misspelling?"
    assert str(refusal({"ratio": 1.5, "zzz": 1})) == "missing required parameter 'count'"


@pytest.mark.parametrize(
    ("name", "value", "kind"),
    [
        ("count", "3", "str"),
        ("count", 1.5, "float"),
        ("count", True, "bool"),
        ("ratio", "0.5", "str"),
        ("ratio", False, "bool"),
        ("flag", 1, "int"),
        ("flag", "true", "str"),
        ("label", 7, "int"),
        ("options", [1], "list"),
        ("items", {"a": 1}, "dict"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_parameter(name, value, kind):
    error = refusal({"count": 1, name: value})
    assert error.field == f"params.{name}"
    assert str(error).endswith(f"got {kind}")


def test_values_of_their_declared_types_pass():
    values = {"count": 2, "ratio": 3, "flag": False, "label": "x", "options": {}, "items": []}
    assert json.loads(program_params(values, TYPED)) == values
    assert json.loads(program_params({"count": 2, "ratio": 0.5}, TYPED))["ratio"] == 0.5


def test_runtime_encoder_values_and_undeclared_types_are_left_to_the_program():
    wrapped = {"__type__": "QuantumCircuit", "__value__": "UUlTS0lU"}
    values = {"count": {"__type__": "int", "__value__": 3}, "circuits": wrapped, "free": "any"}
    assert json.loads(program_params(values, TYPED)) == values
    assert json.loads(program_params({"count": 1, "circuits": [wrapped]}, TYPED)) == {
        "count": 1,
        "circuits": [wrapped],
    }


@pytest.mark.parametrize(
    "value",
    ["garbage", 42, None, [], ["not a circuit"], {"__type__": "ndarray", "__value__": ""}],
)
def test_a_quantumcircuit_parameter_takes_only_encoded_circuits(value):
    error = refusal({"count": 1, "circuits": value})
    assert error.field == "params.circuits"
    assert str(error) == (
        "parameter 'circuits' must be a QuantumCircuit or a non-empty list of them "
        "(RuntimeEncoder-encoded)"
    )


@pytest.mark.parametrize("program", [TEMPLATE, ONE_SHOT], ids=lambda p: p.kind.value)
def test_a_planqk_programs_params_become_its_data_and_params(program):
    text = program_params({"data": {"values": [1]}, "params": {"round": True}}, program)
    assert text == planqk_input({"values": [1]}, {"round": True})
    assert program_params(None, program) == planqk_input({}, {})
    assert program_params(['{"data": {"x": 1}}'], program) == planqk_input({"x": 1}, {})


def test_planqk_params_refuse_other_keys_and_values_that_are_not_objects():
    with pytest.raises(InvalidInput) as other:
        planqk_params({"data": {}, "shots": 5})
    assert other.value.field == "params.shots"
    assert "takes 'data' and 'params', not 'shots'" in str(other.value)
    with pytest.raises(InvalidInput) as not_object:
        planqk_params({"data": [1, 2]})
    assert not_object.value.field == "params.data"
    assert planqk_params({"data": None, "params": None}) == planqk_input({}, {})


def test_a_service_execution_of_a_planqk_program_keeps_data_and_params_apart():
    text = service_params(TEMPLATE, {"n": 1}, {"n": 2})
    assert text == planqk_input({"n": 1}, {"n": 2})
    assert service_params(TEMPLATE, None, None) == planqk_input({}, {})


def test_a_service_execution_of_a_qiskit_program_merges_data_and_params_into_kwargs():
    text = service_params(TYPED, {"count": 3}, {"flag": True})
    assert json.loads(text) == {"count": 3, "flag": True}
    assert json.loads(service_params(PLAIN, None, None)) == {}


def test_a_key_in_both_data_and_params_is_refused_naming_it():
    with pytest.raises(InvalidInput) as caught:
        service_params(TYPED, {"count": 1, "label": "a"}, {"label": "b", "count": 2})
    assert caught.value.field == "params.count"
    assert str(caught.value) == "'count' is given in both data and params"


def test_a_service_execution_is_checked_against_the_programs_metadata():
    with pytest.raises(InvalidInput) as caught:
        service_params(TYPED, {"flag": True}, None)
    assert caught.value.field == "params.count"


def test_bundled_and_public_programs_run_for_everyone_private_ones_for_their_owner():
    private = Program(id="mine", name="mine", module="program", owner="a/b/c", is_public=False)
    public = Program(id="ours", name="ours", module="program", owner="a/b/c", is_public=True)
    for program in (PLAIN, public):
        check_may_run(program, "x/y/z")
    check_may_run(private, "a/b/c")
    with pytest.raises(Forbidden) as caught:
        check_may_run(private, "x/y/z")
    assert caught.value.field == "programId"
    assert "private to a/b/c" in str(caught.value)


@pytest.mark.parametrize(("asked", "limit"), [(None, 300), (10, 10), (300, 300), (301, 300)])
def test_a_new_jobs_time_limit_is_the_programs_or_less_if_asked(asked, limit):
    assert new_job(TYPED, "{}", max_execution_time=asked).max_execution_time == limit


def test_a_new_job_is_queued_for_its_instance_with_what_it_was_given():
    job = new_job(
        TYPED,
        '{"count": 1}',
        backend="starmon-5",
        instance="hub/group/project",
        tags=["a", "b"],
        session_id="s1",
        priority=7,
    )
    assert (job.hub, job.group, job.project) == ("hub", "group", "project")
    assert job.instance == "hub/group/project"
    assert (job.program_id, job.backend, job.params) == ("typed", "starmon-5", '{"count": 1}')
    assert (job.tags, job.session_id, job.priority) == (("a", "b"), "s1", 7)
    assert job.status is JobStatus.QUEUED and job.attempt == 0 and job.started is None
    defaults = new_job(TYPED, "{}")
    assert (defaults.instance, defaults.backend) == ("ibm-q/open/main", "aer_simulator")
    assert defaults.id != job.id


def test_the_bundled_primitives_params_are_checked_at_submit():
    sampler = Program(id="sampler", name="sampler", module="sampler.sampler")
    circuit = {"__type__": "QuantumCircuit", "__value__": "..."}
    fine = {"pubs": [[circuit, None, 100]], "options": {"default_shots": 10}, "version": 2}
    assert json.loads(program_params(fine, sampler)) == fine
    bad = {**fine, "options": {"execution": {"meas_type": "kerneled"}}}
    error = refusal(bad, sampler)
    assert error.field == "params.options.execution.meas_type"
    assert "only 'classified'" in str(error)
    # An uploaded program of that name is someone else's: its params are its own business.
    uploaded = Program(id="sampler", name="sampler", module="s.s", owner="h/g/p")
    assert json.loads(program_params(bad, uploaded)) == bad


def test_the_bundled_ghz_program_declares_what_its_code_reads():
    ghz = ProgramRegistry(bundled_programs_dir()).get("planqk-ghz")
    assert ghz is not None and ghz.kind is ProgramKind.PYTHON_TEMPLATE
    declared = {p["name"]: (p["type"], p["required"]) for p in ghz.parameters or ()}
    assert declared == {
        "data.n_qubits": ("int", False),
        "params.shots": ("int", False),
        "params.seed": ("int", False),
    }
    assert all(p["description"] for p in ghz.parameters or ())
    given = {"data": {"n_qubits": 4}, "params": {"shots": 100, "seed": None}}
    assert json.loads(program_params(given, ghz)) == given
    assert service_params(ghz, None, None) == planqk_input({}, {})
    cases: list[tuple[dict[str, Any], dict[str, Any], str, str]] = [
        ({"n_qubit": 4}, {}, "params.data.n_qubit", "a misspelling of 'data.n_qubits'?"),
        ({}, {"shot": 100}, "params.params.shot", "a misspelling of 'params.shots'?"),
        ({}, {"shots": "100"}, "params.params.shots", "must be of type int, got str"),
        ({"n_qubits": 2.5}, {}, "params.data.n_qubits", "must be of type int, got float"),
        ({}, {"seed": True}, "params.params.seed", "must be of type int, got bool"),
    ]
    for data, params, field, words in cases:
        with pytest.raises(InvalidInput) as refused:
            program_params({"data": data, "params": params}, ghz)
        assert refused.value.field == field and words in str(refused.value), refused.value
        with pytest.raises(InvalidInput) as refused:
            service_params(ghz, data, params)
        assert refused.value.field == field and words in str(refused.value), refused.value


def test_a_planqk_program_checks_only_the_inputs_it_declares():
    declared = Program(
        id="declared", name="declared", module="declared", kind=ProgramKind.PYTHON_TEMPLATE,
        parameters=[{"name": "params.shots", "type": "int", "required": True}],
    )  # fmt: skip
    # `data` declares nothing: it may hold anything; `params` only what is declared.
    assert service_params(declared, {"anything": [1]}, {"shots": 5})
    with pytest.raises(InvalidInput) as missing:
        service_params(declared, {}, {"shot": 5})
    assert missing.value.field == "params.params.shots"
    assert "missing required parameter 'params.shots'" in str(missing.value)
    assert service_params(TEMPLATE, {"x": 1}, {"y": 2}) == planqk_input({"x": 1}, {"y": 2})
