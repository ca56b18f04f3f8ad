"""The bundled `circuit-runner` and `sampler` run by a real executor (warm pool, zygote,
bubblewrap, the job's rlimits) on real Aer: input they refuse and simulations Aer cannot
finish end the job Failed with a one-line reason, never Completed, never a traceback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer import AerSimulator
from qiskit_ibm_runtime import RuntimeEncoder

from qrt_common.backends import MAX_SHOTS
from qrt_common.jobs import JobStatus
from tests.support.executors import LoneExecutor, Run
from tests.support.primitives import bell, submitted_params

pytestmark = pytest.mark.asyncio(loop_scope="module")

MEMORY = 256 << 20
"""The job's memory limit: far less than the state vector of `WIDE` qubits."""
WIDE = 26
"""Qubits whose state vector (2**26 amplitudes of 16 bytes: 1 GiB) does not fit in MEMORY."""
MEMORY_REASON = (
    f"memory limit reached: the job may use {MEMORY} bytes more than it started with "
    "(QRT_JOB_MAX_MEMORY_BYTES)"
)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def executor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LoneExecutor]:
    lone = await LoneExecutor.started(
        tmp_path_factory.mktemp("bundled"), job_max_memory_bytes=MEMORY
    )
    yield lone
    await lone.close()


def wide() -> QuantumCircuit:
    """A GHZ circuit of WIDE qubits with a T gate, so Aer simulates its state vector (no
    stabilizer shortcut)."""
    circuit = QuantumCircuit(WIDE)
    circuit.h(0)
    circuit.t(0)
    for qubit in range(WIDE - 1):
        circuit.cx(qubit, qubit + 1)
    circuit.measure_all()
    return circuit


async def run(executor: LoneExecutor, program: str, params: dict[str, Any]) -> Run:
    return await executor.run(program, json.dumps(params, cls=RuntimeEncoder))


def assert_refused(done: Run, reason: str) -> None:
    assert done.outcome.status is JobStatus.FAILED, (done.outcome, done.log[-2000:])
    assert done.outcome.reason == reason
    assert "Traceback" not in done.log, done.log[-2000:]
    assert done.results == []


async def test_circuit_runner_fails_when_aer_runs_out_of_the_jobs_memory(executor):
    done = await run(executor, "circuit-runner", {"circuits": wide(), "shots": 10})
    assert_refused(done, MEMORY_REASON)


async def test_sampler_fails_when_aer_runs_out_of_the_jobs_memory(executor):
    params = submitted_params("sampler", AerSimulator(), {"default_shots": 10}, [wide()])
    done = await run(executor, "sampler", params)
    assert_refused(done, MEMORY_REASON)


async def test_estimator_fails_when_aer_runs_out_of_the_jobs_memory(executor):
    circuit = wide().remove_final_measurements(inplace=False)
    observable = SparsePauliOp("Z" * WIDE)
    params = submitted_params("estimator", AerSimulator(), {}, [(circuit, observable)])
    done = await run(executor, "estimator", params)
    assert_refused(done, MEMORY_REASON)


@pytest.mark.parametrize("shots", [-5, 0, MAX_SHOTS + 1, 10**12, 2.5, "many", True])
async def test_circuit_runner_refuses_shots_out_of_range(executor, shots):
    done = await run(executor, "circuit-runner", {"circuits": bell(), "shots": shots})
    assert_refused(
        done,
        f"params.shots: shots must be an integer from 1 to {MAX_SHOTS} (max_shots), not {shots!r}",
    )


@pytest.mark.parametrize("circuits", ["garbage", [], [42], {"a": 1}])
async def test_circuit_runner_refuses_what_is_not_a_circuit(executor, circuits):
    done = await run(executor, "circuit-runner", {"circuits": circuits})
    assert_refused(
        done,
        "params.circuits: must be a QuantumCircuit or a non-empty list of them "
        "(RuntimeEncoder-encoded)",
    )


async def test_circuit_runner_runs_the_most_shots(executor):
    done = await run(executor, "circuit-runner", {"circuits": [bell()], "shots": MAX_SHOTS})
    assert done.outcome.status is JobStatus.COMPLETED, (done.outcome, done.log[-2000:])
    (experiment,) = done.results[0]["results"]
    assert experiment["success"] and experiment["shots"] == MAX_SHOTS
