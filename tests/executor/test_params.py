"""Params that cannot be decoded where the program runs fail the job with a reason that says so
(and why, briefly), for every kind of program and every way decoding fails; never with a
decoder's traceback. A real executor runs real job processes and a real sandbox."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio
from qiskit_ibm_runtime import RuntimeEncoder

from qrt_common.jobs import JobStatus
from qrt_executor.runner import Outcome
from tests.support.executors import LoneExecutor

pytestmark = pytest.mark.asyncio(loop_scope="module")

LEAD = "the params could not be decoded"
DEEP = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def executor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LoneExecutor]:
    lone = await LoneExecutor.started(tmp_path_factory.mktemp("executor"))
    yield lone
    await lone.close()


def encoded(**params: object) -> str:
    return json.dumps(params, cls=RuntimeEncoder)


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        # RuntimeDecoder cannot rebuild a ragged object array that RuntimeEncoder wrote.
        (encoded(n=1, arr=np.array([[1, 2], [3]], dtype=object)),
         "params.arr: ValueError: setting an array element with a sequence. The requested array "
         "has an inhomogeneous shape after 1 dimensions. The detected shape was (2,) + "
         "inhomogeneous part."),
        ('{"arr": {"__type__": "ndarray", "__value__": "not base64!"}}',
         "params.arr: binascii.Error: Invalid base64-encoded string: number of data characters "
         "(9) cannot be 1 more than a multiple of 4"),
        ('{"z": {"__type__": "complex"}}', "params.z: KeyError: '__value__'"),
        ('{"z": {"__type__": "complex", "__value__": 5}}',
         "params.z: TypeError: 'int' object is not subscriptable"),
        ('{"when": {"__type__": "datetime", "__value__": "not a date"}}',
         "params.when: ParserError: Unknown string format: not a date"),
        ('{"a": ', "JSONDecodeError: Expecting value: line 1 column 7 (char 6)"),
        (DEEP, "nested too deeply"),
        ("[1, 2]", "they must be a JSON object of keyword arguments, not an array"),
        ('{"__type__": "set", "__value__": [1]}',
         "they must be a JSON object of keyword arguments, not a set"),
    ],
)  # fmt: skip
async def test_qiskit_runtime_params_that_cannot_be_decoded(executor, params, reason):
    run = await executor.run("sleeper", params)
    assert run.outcome == Outcome(JobStatus.FAILED, f"{LEAD}: {reason}"), run.log
    assert f"[qrt] {LEAD}: " in run.log and "Traceback" not in run.log


async def test_a_broken_circuit_names_its_parameter(executor):
    params = '{"circuit": {"__type__": "QuantumCircuit", "__value__": "AAAA"}}'
    run = await executor.run("sleeper", params)
    assert run.outcome.status is JobStatus.FAILED
    assert (run.outcome.reason or "").startswith(f"{LEAD}: params.circuit: ")
    assert "Traceback" not in run.log


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ('{"data": ', "JSONDecodeError: Expecting value: line 1 column 10 (char 9)"),
        (DEEP, "nested too deeply"),
        ("[1]", "a PlanQK program takes an object holding 'data' and 'params', not an array"),
        ('{"shots": 5}', "a PlanQK program takes 'data' and 'params', not 'shots'"),
        ('{"data": [1, 2]}', "'data' must be a JSON object, not an array"),
        ('{"data": {}, "params": "fast"}', "'params' must be a JSON object, not a string"),
    ],
)
@pytest.mark.parametrize("program", ["planqk-modes", "oneshot-modes"])
async def test_planqk_params_that_cannot_be_decoded(executor, program, params, reason):
    run = await executor.run(program, params)
    assert run.outcome == Outcome(JobStatus.FAILED, f"{LEAD}: {reason}"), run.log
    assert f"[qrt] {LEAD}: " in run.log and "Traceback" not in run.log


@pytest.mark.parametrize("program", ["planqk-modes", "oneshot-modes"])
async def test_absent_or_null_planqk_parts_are_empty(executor, program):
    run = await executor.run(program, '{"data": null}')
    assert run.outcome.status is JobStatus.COMPLETED, run.log
