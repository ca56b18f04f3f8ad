"""The bundled `sampler` and `estimator` programs in real job processes (the warm pool's zygote),
on Aer and on a 2300 device over real ZeroMQ sockets: params made by the stock
qiskit-ibm-runtime client's own code, results read back by its own ResultDecoder."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister, transpile
from qiskit.circuit import Parameter
from qiskit.primitives import BitArray, DataBin, PrimitiveResult, PubResult, SamplerPubResult
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel, ReadoutError
from qiskit_ibm_runtime import RuntimeEncoder
from qiskit_ibm_runtime.decoders.result_decoder import ResultDecoder
from qiskit_ibm_runtime.execution_span import DoubleSliceSpan, ExecutionSpans

from qrt_cli.dev import Platform
from qrt_common.jobs import JobStatus
from qrt_common.messages import JobEvent
from qrt_common.programs import ProgramKind
from qrt_device.config import DeviceConfig
from qrt_device.service import Device
from qrt_executor.device_backend import DeviceBackend
from qrt_executor.job_protocol import DeviceAccess, Launch
from qrt_executor.pool import WarmPool
from qrt_executor.runner import JobOutput, run_job
from tests.support.executors import Run
from tests.support.platform import make_settings, wait_for
from tests.support.primitives import submitted_params
from tests.support.programs import merge_programs

pytestmark = pytest.mark.asyncio(loop_scope="module")

SIGMAS = 5
"""How many standard deviations a sampled value may stray from the exact one: a test that
fails by chance about once in two million runs."""


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return merge_programs(tmp_path_factory.mktemp("programs"))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def device() -> AsyncIterator[tuple[Device, DeviceBackend]]:
    """A noiseless Starmon-5 (qubit 2 coupled to 0, 1, 3, 4), and its backend here to transpile
    for."""
    config = DeviceConfig(seed=5, noise=False, heartbeat_seconds=0.05)
    running = Device(config, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*")
    await running.start()
    backend = await asyncio.to_thread(DeviceBackend, running.rep_endpoint)
    try:
        yield running, backend
    finally:
        backend.close()
        await running.close()


async def run(
    pool: WarmPool,
    programs: Path,
    program: str,
    params: dict[str, Any],
    *,
    device: tuple[Device, DeviceBackend] | None = None,
) -> Run:
    """One job of `program` with `params` (encoded as the client encodes them)."""
    text = json.dumps(params, cls=RuntimeEncoder)
    return await run_encoded(pool, programs, program, text, device=device)


async def run_encoded(
    pool: WarmPool,
    programs: Path,
    program: str,
    params: str,
    *,
    device: tuple[Device, DeviceBackend] | None = None,
) -> Run:
    """One job of `program` with `params` as the job keeps them (JSON text), on Aer or
    `device`."""
    backend = "aer_simulator"
    events: list[JobEvent] = []

    async def send(batch: list[JobEvent]) -> None:
        events.extend(batch)

    access = None
    if device is not None:
        running, device_backend = device
        backend = device_backend.name
        access = DeviceAccess(
            address=running.rep_endpoint,
            static=device_backend.static,
            timeout=30,
            execute_timeout=300,
            session_id=str(uuid.uuid4()),
        )
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    output = JobOutput(job_id, 1, "ex", send, max_log_bytes=1 << 20)
    launch = Launch(
        job_id=job_id,
        kind=ProgramKind.QISKIT_RUNTIME,
        module=f"{program}.{program}",
        search_path=str(programs),
        project_dir=str(programs),
        backend=backend,
        params=params,
        workdir=str(programs),
        device=access,
    )
    proc = await pool.acquire()
    stop = asyncio.get_running_loop().create_future()
    try:
        outcome = await run_job(proc, launch, output, time_limit=600, stop=stop)
    finally:
        proc.close()
    await output.close()
    return Run(outcome, events)


def decoded(done: Run) -> Any:
    """The result as the stock client's `RuntimeJobV2.result()` decodes it."""
    assert done.outcome.status is JobStatus.COMPLETED, (done.outcome, done.log)
    assert done.result_text is not None
    return ResultDecoder.decode(done.result_text)


def assert_near(value: float, exact: float, std: float, what: str) -> None:
    assert abs(value - exact) <= SIGMAS * std, f"{what}: {value} is not {exact} ± {SIGMAS} * {std}"


def bell(measured: bool = True, pair: tuple[int, int] = (0, 1)) -> QuantumCircuit:
    circuit = QuantumCircuit(max(pair) + 1, metadata={"name": "bell"})
    circuit.h(pair[0])
    circuit.cx(*pair)
    if measured:
        circuit.measure_all()
    return circuit


def check_bell_counts(bits: BitArray, shots: int) -> None:
    counts = bits.get_counts()
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == shots, counts
    assert_near(counts.get("00", 0) / shots, 0.5, math.sqrt(0.25 / shots), "P(00)")


def ry_sweep() -> tuple[QuantumCircuit, np.ndarray]:
    """A circuit of two parameters and values of shape (4, 2): qubit 0 turned by ry(a),
    qubit 1 by ry(b), each measured into a register of its own."""
    a, b = Parameter("a"), Parameter("b")
    circuit = QuantumCircuit(QuantumRegister(2), ClassicalRegister(1, "first"))
    circuit.add_register(ClassicalRegister(1, "second"))  # a BitArray for each register
    circuit.ry(a, 0)
    circuit.ry(b, 1)
    circuit.measure(0, circuit.cregs[0][0])
    circuit.measure(1, circuit.cregs[1][0])
    values = np.array([[0.0, np.pi], [np.pi / 2, np.pi / 3], [np.pi, 0.0], [2.0, 1.0]])
    return circuit, values


def check_sweep(result: SamplerPubResult, values: np.ndarray, shots: int) -> None:
    """Each binding's counts (the pub shaped as `values` without its last axis) near
    sin(angle/2)**2 ones, in each register."""
    assert result.data.shape == values.shape[:-1]
    assert set(result.data) == {"first", "second"}
    for index in np.ndindex(*values.shape[:-1]):
        for register, angle in (("first", values[index][0]), ("second", values[index][1])):
            ones = result.data[register][index].get_counts().get("1", 0)
            p = math.sin(angle / 2) ** 2
            std = max(math.sqrt(p * (1 - p) / shots), 1e-9)
            assert_near(ones / shots, p, std, f"P({register}=1) at {index}")


async def test_sampler_on_aer_bell_sweeps_several_pubs_and_seeds(pool, programs):
    sweep, values = ry_sweep()
    params = submitted_params(
        "sampler",
        AerSimulator(),
        {"default_shots": 2000, "simulator": {"seed_simulator": 11}},
        [bell(), (sweep, values.reshape(2, 2, 2), 1000)],  # a pub of shape (2, 2)
    )
    done = await run(pool, programs, "sampler", params)
    result = decoded(done)
    assert isinstance(result, PrimitiveResult) and len(result) == 2
    first, second = result[0], result[1]
    assert isinstance(first, SamplerPubResult) and isinstance(first.data, DataBin)
    assert isinstance(first.data.meas, BitArray) and first.data.meas.num_bits == 2
    check_bell_counts(first.data.meas, 2000)
    assert first.metadata == {"shots": 2000, "circuit_metadata": {"name": "bell"}}
    check_sweep(second, values.reshape(2, 2, 2), 1000)
    assert second.metadata["shots"] == 1000
    assert result.metadata["version"] == 2
    spans = result.metadata["execution"]["execution_spans"]
    assert isinstance(spans, ExecutionSpans) and isinstance(spans[0], DoubleSliceSpan)
    assert spans[0].pub_idxs == [0, 1] and spans[0].size == 2000 + 4 * 1000
    # The same seed, the same shots.
    again = decoded(await run(pool, programs, "sampler", params))
    assert np.array_equal(again[1].data.first.array, second.data.first.array)


async def test_estimator_on_aer_bell_and_broadcast_sweep(pool, programs):
    theta = Parameter("θ")
    turned = QuantumCircuit(2)
    turned.ry(theta, 0)
    turned.cx(0, 1)  # cos(θ/2)|00> + sin(θ/2)|11>
    angles = np.array([0.0, np.pi / 3, np.pi / 2])
    observables = [[SparsePauliOp("ZZ")], [SparsePauliOp("XX")], [SparsePauliOp("IZ")]]
    params = submitted_params(
        "estimator",
        AerSimulator(),
        {"default_shots": 10_000, "seed_estimator": 3},
        [
            (bell(measured=False), ["ZZ", "XX", "YY", "ZI"], None, 0.005),
            (turned, observables, angles[:, None]),
        ],
    )
    assert params["pubs"][1].precision is None  # from default_shots: 1/sqrt(10 000)
    result = decoded(await run(pool, programs, "estimator", params))
    assert isinstance(result, PrimitiveResult) and len(result) == 2
    first, second = result
    assert isinstance(first, PubResult) and first.data.evs.shape == (4,)
    for value, exact in zip(first.data.evs, [1.0, 1.0, -1.0, 0.0], strict=True):
        assert_near(value, exact, 0.005, "Bell expectation value")
    assert np.all(first.data.stds == 0.005)
    assert first.metadata == {"target_precision": 0.005, "circuit_metadata": {"name": "bell"}}
    assert second.data.evs.shape == (3, 3)  # observables (3, 1) broadcast with values (3,)
    expected = np.array([np.ones(3), np.sin(angles), np.cos(angles)])
    for index in np.ndindex(3, 3):
        assert_near(second.data.evs[index], float(expected[index]), 0.01, f"ev {index}")
    assert second.metadata["target_precision"] == pytest.approx(0.01)
    assert result.metadata["version"] == 2
    assert result.metadata["resilience"]["zne_mitigation"] is False
    # seed_estimator seeds the noise of the precision: the same seed, the same values.
    again = decoded(await run(pool, programs, "estimator", params))
    assert np.array_equal(again[1].data.evs, second.data.evs)


async def test_options_ignored_on_a_noiseless_simulator_are_logged(pool, programs):
    params = submitted_params(
        "estimator",
        AerSimulator(),
        {"resilience_level": 1, "twirling": {"enable_measure": True}},
        [(bell(measured=False), "ZZ")],
    )
    done = await run(pool, programs, "estimator", params)
    assert decoded(done)[0].data.evs.shape == ()
    assert "[qrt] warning: option resilience_level=1 ignored" in done.log
    assert "[qrt] warning: option twirling.enable_measure ignored" in done.log


async def test_a_refused_option_fails_the_job_naming_it(pool, programs):
    params = submitted_params(
        "sampler", AerSimulator(), {"execution": {"meas_type": "kerneled"}}, [bell()]
    )
    done = await run(pool, programs, "sampler", params)
    assert done.outcome.status is JobStatus.FAILED
    assert (done.outcome.reason or "").startswith("options.execution.meas_type: only 'classified'")
    assert "[qrt] options.execution.meas_type" in done.log and "Traceback" not in done.log


def ghz(width: int) -> QuantumCircuit:
    """A GHZ state on `width` qubits, measured: Clifford, so Aer runs it at any width."""
    circuit = QuantumCircuit(width)
    circuit.h(0)
    for qubit in range(1, width):
        circuit.cx(0, qubit)
    circuit.measure_all()
    return circuit


@pytest.mark.parametrize("program", ["sampler", "estimator"])
async def test_a_pub_wider_than_the_simulator_fails_the_job_naming_it(pool, programs, program):
    """QRT_SIMULATOR_QUBITS (30 by default, what the IBM API advertises) bounds a pub's
    circuit on a simulator, as IBM refuses circuits wider than the backend; Aer itself would
    run a 31-qubit Clifford circuit."""
    wide = ghz(31)
    if program == "sampler":
        pubs: list[Any] = [bell(), (wide,)]
    else:
        wide.remove_final_measurements()
        pubs = [(bell(measured=False), SparsePauliOp("ZZ")), (wide, SparsePauliOp("Z" * 31))]
    done = await run(pool, programs, program, submitted_params(program, AerSimulator(), {}, pubs))
    assert done.outcome.status is JobStatus.FAILED, done.log
    reason = done.outcome.reason or ""
    assert reason == (
        "pub 1: the circuit has 31 qubits, more than the 30 of aer_simulator (QRT_SIMULATOR_QUBITS)"
    ), reason
    assert "Traceback" not in done.log
    fitting = submitted_params(program, AerSimulator(), {}, pubs[:1])
    assert decoded(await run(pool, programs, program, fitting))[0].metadata


async def test_a_noise_model_runs_on_aer(pool, programs):
    model = NoiseModel()
    model.add_all_qubit_readout_error(ReadoutError([[0.5, 0.5], [0.5, 0.5]]))
    circuit = QuantumCircuit(1, 1)
    circuit.measure(0, 0)
    params = submitted_params(
        "sampler",
        AerSimulator(),
        {"simulator": {"noise_model": model, "seed_simulator": 1}},
        [circuit],
        shots=400,
    )
    counts = decoded(await run(pool, programs, "sampler", params))[0].data.c.get_counts()
    # Readout flips a fair coin: both outcomes, about equally.
    assert_near(counts.get("1", 0) / 400, 0.5, math.sqrt(0.25 / 400), "P(1)")


async def test_sampler_on_a_device_isa_circuits_and_a_sweep(pool, programs, device):
    _, backend = device
    isa_bell = transpile(bell(pair=(2, 0)), backend=backend, initial_layout=[0, 1, 2])
    sweep, values = ry_sweep()
    isa_sweep = transpile(sweep, backend=backend, initial_layout=[2, 3], seed_transpiler=1)
    params = submitted_params(
        "sampler",
        AerSimulator(),
        {"simulator": {"seed_simulator": 4}},
        [(isa_bell, None, 600), (isa_sweep, values, 600)],
    )
    done = await run(pool, programs, "sampler", params, device=device)
    result = decoded(done)
    counts = result[0].data.meas.get_counts()
    assert sum(counts.values()) == 600
    assert set(counts) <= {"000", "101"}, counts  # qubits 0 and 2 entangled, 1 untouched
    assert_near(counts.get("000", 0) / 600, 0.5, math.sqrt(0.25 / 600), "P(000)")
    check_sweep(result[1], values, 600)
    assert result[0].metadata["circuit_metadata"] == {"name": "bell"}
    assert "option simulator.seed_simulator ignored: a device's shots are not seeded" in done.log


async def test_estimator_on_a_device_from_measured_counts(pool, programs, device):
    _, backend = device
    circuit = transpile(
        bell(measured=False, pair=(2, 0)), backend=backend, initial_layout=[0, 1, 2]
    )
    labels = ("ZIZ", "XIX", "YIY", "IIZ", "IZI")
    # As IBM's guides do: the observables laid out on the transpiled circuit's qubits.
    observables = [SparsePauliOp(label).apply_layout(circuit.layout) for label in labels]
    # default_shots: exactly that many shots (ceil(1 / (1/sqrt(406))**2) alone is 407).
    params = submitted_params(
        "estimator", AerSimulator(), {"default_shots": 406}, [(circuit, observables)]
    )
    result = decoded(await run(pool, programs, "estimator", params, device=device))
    pub = result[0]
    assert pub.metadata["shots"] == 406 and pub.metadata["circuit_metadata"] == {"name": "bell"}
    assert pub.metadata["target_precision"] == pytest.approx(1 / math.sqrt(406))
    evs, stds = pub.data.evs, pub.data.stds
    for index, exact in enumerate([1.0, 1.0, -1.0, 0.0, 1.0]):
        # stds estimated from the counts: 0 where every shot agrees, about 0.05 for Z on q0.
        assert_near(evs[index], exact, 0.05, f"<{labels[index]}>")
    assert stds[0] == stds[1] == stds[2] == 0.0 and 0.04 < stds[3] <= 0.05
    assert result.metadata["version"] == 2


async def test_a_circuit_outside_the_devices_target_is_refused(pool, programs, device):
    params = submitted_params("sampler", AerSimulator(), None, [bell(), bell(pair=(2, 0))])
    done = await run(pool, programs, "sampler", params, device=device)
    assert done.outcome.status is JobStatus.FAILED
    reason = done.outcome.reason or ""
    assert "pub 0: The instruction cx on qubits (0, 1) is not supported by the target system" in (
        reason
    ), reason
    assert "Starmon-5" in reason
    isa = transpile(bell(False, (2, 0)), backend=device[1])
    params = submitted_params(
        "estimator",
        AerSimulator(),
        {"resilience_level": 1},
        [(isa, SparsePauliOp("ZIZ").apply_layout(isa.layout))],
    )
    done = await run(pool, programs, "estimator", params, device=device)
    assert done.outcome.status is JobStatus.FAILED
    assert "qrt runs without error mitigation" in (done.outcome.reason or "")


async def test_primitive_jobs_through_the_gateway_on_the_dev_device_and_aer(tmp_path):
    """The whole way: HTTP, scheduler, executor (its own device access), job process, device."""
    config = tmp_path / "device.toml"
    config.write_text("noise = false\nseed = 3\n")
    settings = make_settings(
        tmp_path, merge_programs(tmp_path / "programs"), dev_device=True, device_config=config
    )
    platform = await Platform.start(settings)
    try:
        async with aiohttp.ClientSession(base_url=platform.url) as http:
            assert platform.device is not None
            backend = await asyncio.to_thread(DeviceBackend, platform.device.rep_endpoint)
            backend.close()
            isa = transpile(bell(pair=(2, 0)), backend=backend, initial_layout=[0, 1, 2])

            async def submit(program: str, params: dict[str, Any], on: str) -> str:
                body = {
                    "programId": program,
                    "backend": on,
                    "params": json.loads(json.dumps(params, cls=RuntimeEncoder)),
                }
                async with http.post("/jobs", json=body) as response:
                    assert response.status == 200, await response.text()
                    return str((await response.json())["id"])

            sampled = await submit(
                "sampler", submitted_params("sampler", AerSimulator(), None, [isa], shots=300),
                "Starmon-5",
            )  # fmt: skip
            estimated = await submit(
                "estimator",
                submitted_params("estimator", AerSimulator(), None, [(bell(False), ["ZZ", "XX"])]),
                "aer_simulator",
            )
            # A refused option is a 400 at submit, naming it.
            refused = submitted_params(
                "sampler", AerSimulator(), {"execution": {"meas_type": "avg_kerneled"}}, [isa]
            )
            body = {
                "programId": "sampler",
                "backend": "Starmon-5",
                "params": json.loads(json.dumps(refused, cls=RuntimeEncoder)),
            }
            async with http.post("/jobs", json=body) as response:
                assert response.status == 400
                assert "options.execution.meas_type" in await response.text()
            for job_id in (sampled, estimated):
                job = await wait_for(http, job_id, timeout=120)
                assert job["status"] == "Completed", job
            async with http.get(f"/jobs/{sampled}/results") as response:
                result = ResultDecoder.decode(await response.json())
            counts = result[0].data.meas.get_counts()
            assert set(counts) <= {"000", "101"} and sum(counts.values()) == 300
            async with http.get(f"/jobs/{estimated}/results") as response:
                result = ResultDecoder.decode(await response.json())
            for value in result[0].data.evs:
                assert_near(value, 1.0, 0.015625, "<ZZ>, <XX>")
    finally:
        await platform.stop()


async def test_the_executor_gives_jobs_a_simulator_of_qrt_simulator_qubits(tmp_path):
    """QRT_SIMULATOR_QUBITS reaches the job: a sampler pub one qubit wider fails, naming it."""
    settings = make_settings(tmp_path, merge_programs(tmp_path / "programs"), simulator_qubits=3)
    platform = await Platform.start(settings)
    try:
        async with aiohttp.ClientSession(base_url=platform.url) as http:

            async def submit(circuit: QuantumCircuit) -> dict[str, Any]:
                params = submitted_params("sampler", AerSimulator(), None, [circuit])
                body = {
                    "programId": "sampler",
                    "backend": "aer_simulator_statevector",
                    "params": json.loads(json.dumps(params, cls=RuntimeEncoder)),
                }
                async with http.post("/jobs", json=body) as response:
                    assert response.status == 200, await response.text()
                    job_id = str((await response.json())["id"])
                return await wait_for(http, job_id, timeout=120)

            wide, fitting = await asyncio.gather(submit(ghz(4)), submit(ghz(3)))
            assert (wide["status"], wide["reason"]) == ("Failed", (
                "pub 0: the circuit has 4 qubits, more than the 3 of aer_simulator_statevector "
                "(QRT_SIMULATOR_QUBITS)"
            ))  # fmt: skip
            assert fitting["status"] == "Completed", fitting
    finally:
        await platform.stop()


async def test_a_bad_pub_fails_the_job_naming_it(pool, programs):
    sweep, values = ry_sweep()
    params = submitted_params("sampler", AerSimulator(), None, [bell(), (sweep, values)])
    # Three values for each binding of a circuit of two parameters: the client would not send it.
    encoded = json.loads(json.dumps(params, cls=RuntimeEncoder))
    encoded["pubs"][1][1] = json.loads(json.dumps(np.zeros((4, 3)), cls=RuntimeEncoder))
    done = await run_encoded(pool, programs, "sampler", json.dumps(encoded))
    assert done.outcome.status is JobStatus.FAILED
    reason = done.outcome.reason or ""
    assert reason.startswith("pub 1: Length of ('a', 'b') inconsistent with last dimension")
    assert "\n" not in reason and len(reason) < 250  # not the whole array
