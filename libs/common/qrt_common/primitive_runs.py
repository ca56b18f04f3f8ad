"""V2 primitive requests run on a job's backend: what the bundled `sampler` and `estimator`
programs do in their job process.

On an Aer simulator, Aer's own V2 primitives run the pubs on that very backend (its method and
its usage counting kept); as IBM does, a pub's circuit wider than the simulator's `num_qubits`
(QRT_SIMULATOR_QUBITS) is refused. On any other backend (a 2300 device), pubs must be ISA
circuits of its Target, checked as IBM checks them; they run as they are through
`backend.run` (Qiskit's `BackendSamplerV2` and `BackendEstimatorV2`: memory per shot for
BitArrays, and for expectation values one circuit per qubit-wise commuting Pauli group, its
basis rotations written in the device's gates, shots = ceil(1 / precision**2)).

The result is a `PrimitiveResult` shaped as IBM's service returns it (RuntimeEncoder JSON of it
is what the stock client's RuntimeDecoder turns back into the same objects): sampler pubs give
a `SamplerPubResult` with a `BitArray` per classical register and metadata `shots`,
`circuit_metadata`; estimator pubs a `PubResult` with `evs` and `stds` and metadata
`target_precision`, `shots` (devices), `circuit_metadata`; the `PrimitiveResult`'s metadata holds
`version: 2` and, for the sampler, `execution.execution_spans`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from qiskit import QuantumCircuit
from qiskit.exceptions import QiskitError
from qiskit.primitives import BackendEstimatorV2, BackendSamplerV2
from qiskit.primitives.containers import PrimitiveResult, PubResult, SamplerPubResult
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.observables_array import ObservablesArray
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel
from qiskit_aer.primitives import EstimatorV2 as AerEstimatorV2
from qiskit_aer.primitives import SamplerV2 as AerSamplerV2
from qiskit_aer.primitives.estimator_v2 import Options as AerEstimatorOptions
from qiskit_aer.primitives.sampler_v2 import Options as AerSamplerOptions
from qiskit_ibm_runtime.execution_span import DoubleSliceSpan, ExecutionSpans
from qiskit_ibm_runtime.utils.utils import is_isa_circuit

from .errors import InvalidInput
from .primitives import DEFAULT_PRECISION, DEFAULT_SHOTS, review_primitive_request
from .simulation import failure

__all__ = ["run_estimator", "run_sampler"]

MAX_WHY = 200
"""Characters of Qiskit's reason a pub is refused that the job's reason keeps."""


def _warn(message: str) -> None:
    print(f"[qrt] warning: {message}", file=sys.stderr, flush=True)


def run_sampler(
    backend: Any, params: Mapping[str, Any], warn: Callable[[str], None] = _warn
) -> PrimitiveResult[SamplerPubResult]:
    """Run a `sampler` job's decoded params on `backend`; each option qrt ignores is passed to
    `warn` (the job's log by default). Raises InvalidInput for params, options or pubs that
    qrt refuses (a pub's circuit that is not ISA on a device, a refused option)."""
    options = _options(params)
    simulator = isinstance(backend, AerSimulator)
    for warning in review_primitive_request("sampler", params, simulator=simulator):
        warn(warning)
    default_shots = options.get("default_shots") or DEFAULT_SHOTS
    pubs = [
        _coerce(index, lambda pub: SamplerPub.coerce(pub, default_shots), pub)
        for index, pub in enumerate(params["pubs"])
    ]
    seed = _get(options, "simulator", "seed_simulator")
    start = datetime.now(UTC)
    if simulator:
        _fitting(pubs, backend)
        _set_noise_model(backend, options)
        sampler: Any = aer_sampler(backend, default_shots, seed)
        ran = _aer_result(sampler.run(pubs))
    else:
        runnable = [
            SamplerPub(_widened(pub.circuit, backend), pub.parameter_values, pub.shots)
            for pub in _isa(pubs, backend)
        ]
        sampler = BackendSamplerV2(backend=backend, options={"default_shots": default_shots})
        ran = sampler.run(runnable).result()
    stop = datetime.now(UTC)
    results = [
        SamplerPubResult(
            result.data,
            metadata={"shots": pub.shots, "circuit_metadata": pub.circuit.metadata},
        )
        for pub, result in zip(pubs, ran, strict=True)
    ]
    slices = {
        index: ((*pub.shape, pub.shots), slice(0, pub.size), slice(0, pub.shots))
        for index, pub in enumerate(pubs)
    }
    spans = ExecutionSpans([DoubleSliceSpan(start, stop, slices)])
    return PrimitiveResult(
        results, metadata={"execution": {"execution_spans": spans}, "version": 2}
    )


def run_estimator(
    backend: Any, params: Mapping[str, Any], warn: Callable[[str], None] = _warn
) -> PrimitiveResult[PubResult]:
    """Run an `estimator` job's decoded params on `backend` (as `run_sampler`). A pub without
    its own precision takes 1/sqrt(`default_shots`) if set, else `default_precision`, else
    `DEFAULT_PRECISION`."""
    options = _options(params)
    simulator = isinstance(backend, AerSimulator)
    for warning in review_primitive_request("estimator", params, simulator=simulator):
        warn(warning)
    if options.get("default_shots"):
        default_precision = _precision_of(options["default_shots"])
    else:
        default_precision = options.get("default_precision") or DEFAULT_PRECISION
    pubs = [
        _coerce(index, lambda pub: EstimatorPub.coerce(pub, default_precision), pub)
        for index, pub in enumerate(params["pubs"])
    ]
    if simulator:
        _fitting(pubs, backend)
        _set_noise_model(backend, options)
        seed = _get(options, "simulator", "seed_simulator")
        if seed is None:
            seed = options.get("seed_estimator")
        estimator: Any = aer_estimator(
            backend,
            {"default_precision": default_precision, "run_options": {"seed_simulator": seed}},
        )
        ran = _aer_result(estimator.run(pubs))
    else:
        width = backend.target.num_qubits
        runnable = [
            EstimatorPub(
                _widened(pub.circuit, backend),
                _widened_observables(pub.observables, width),
                pub.parameter_values,
                pub.precision,
            )
            for pub in _isa(pubs, backend)
        ]
        estimator = BackendEstimatorV2(backend=backend)
        ran = estimator.run(runnable).result()
    results = []
    for pub, result in zip(pubs, ran, strict=True):
        metadata: dict[str, Any] = {"target_precision": pub.precision}
        if not simulator:
            metadata["shots"] = math.ceil(1.0 / pub.precision**2)
        metadata["circuit_metadata"] = pub.circuit.metadata
        results.append(PubResult(result.data, metadata=metadata))
    off = {"enable_gates": False, "enable_measure": False}
    summary = {
        "dynamical_decoupling": {"enable": False},
        "twirling": off,
        "resilience": {
            "measure_mitigation": False,
            "zne_mitigation": False,
            "pec_mitigation": False,
        },
        "version": 2,
    }
    return PrimitiveResult(results, metadata=summary)


def aer_sampler(backend: AerSimulator, default_shots: int, seed: int | None) -> Any:
    """`AerSamplerV2.from_backend(backend, default_shots=..., seed=...)`, without the
    AerSimulator that `AerSamplerV2.__init__` builds only for `from_backend` to replace it
    (2.5 ms of CPU in a job process, most of it copying pages of the zygote's)."""
    sampler = AerSamplerV2.__new__(AerSamplerV2)
    sampler._default_shots = default_shots
    sampler._seed = seed
    sampler._options = AerSamplerOptions()
    sampler._backend = backend
    return sampler


def aer_estimator(backend: AerSimulator, options: dict[str, Any]) -> Any:
    """`AerEstimatorV2.from_backend(backend, options=options)`, without the AerSimulator
    its `__init__` builds to drop (as `aer_sampler`)."""
    estimator = AerEstimatorV2.__new__(AerEstimatorV2)
    estimator._options = AerEstimatorOptions(**options)
    estimator._backend = backend
    return estimator


def _aer_result(job: Any) -> Any:
    """The result of an Aer primitive's `job`; SimulationFailed (`qrt_common.simulation`)
    when Aer could not run it (its SamplerV2 raises AerError, its EstimatorV2 the
    QiskitError of a failed Result)."""
    try:
        return job.result()
    except QiskitError as exc:
        # Not `from exc`: `failure` sets the cause that says whether memory ran out.
        raise failure(exc.message)  # noqa: B904


def _precision_of(shots: int) -> float:
    """The precision whose shots, ceil(1 / precision**2), are `shots`: 1/sqrt(shots) rounded
    up to the float that makes it so (1/sqrt(7) alone gives 8)."""
    precision = 1 / math.sqrt(shots)
    while math.ceil(1 / precision**2) > shots:
        precision = math.nextafter(precision, math.inf)
    return precision


def _options(params: Mapping[str, Any]) -> Mapping[str, Any]:
    options = params.get("options")
    return options if isinstance(options, dict) else {}


def _get(options: Mapping[str, Any], section: str, name: str) -> Any:
    part = options.get(section)
    return part.get(name) if isinstance(part, dict) else None


def _coerce(index: int, coerce: Callable[[Any], Any], pub: Any) -> Any:
    """A pub as Qiskit takes it; InvalidInput naming the pub when it cannot be one."""
    try:
        return coerce(tuple(pub))
    except Exception as exc:  # qiskit raises ValueError, TypeError, QiskitError, ...
        # Qiskit's messages may quote whole arrays: the first line, cut short, says enough.
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if len(why) > MAX_WHY:
            why = why[: MAX_WHY - 1] + "…"
        raise InvalidInput(f"pub {index}: {why}", field=f"params.pubs[{index}]") from None


def _set_noise_model(backend: AerSimulator, options: Mapping[str, Any]) -> None:
    """The noise model the options give, on this job's own copy of the simulator."""
    model = _get(options, "simulator", "noise_model")
    if model is None:
        return
    if isinstance(model, dict):
        try:
            model = NoiseModel.from_dict(dict(model))
        except Exception as exc:
            why = f"not a noise model Aer can read: {type(exc).__name__}: {exc}"
            raise InvalidInput(
                f"options.simulator.noise_model: {why}",
                field="params.options.simulator.noise_model",
            ) from None
    if not isinstance(model, NoiseModel):
        raise InvalidInput(
            "options.simulator.noise_model: must be an Aer NoiseModel or its dict",
            field="params.options.simulator.noise_model",
        )
    backend.set_options(noise_model=model)


def _fitting(pubs: Sequence[Any], backend: AerSimulator) -> None:
    """Refuse, as IBM does, a pub whose circuit is wider than the simulator's `num_qubits`
    (what the job's executor set, QRT_SIMULATOR_QUBITS, and the IBM API advertises):
    InvalidInput naming the pub, its width and the setting."""
    for index, pub in enumerate(pubs):
        if pub.circuit.num_qubits > backend.num_qubits:
            raise InvalidInput(
                f"pub {index}: the circuit has {pub.circuit.num_qubits} qubits, more than the "
                f"{backend.num_qubits} of {backend.name} (QRT_SIMULATOR_QUBITS)",
                field=f"params.pubs[{index}]",
            )


def _isa(pubs: Sequence[Any], backend: Any) -> Sequence[Any]:
    """`pubs`, when each circuit is an ISA circuit of `backend`'s Target (IBM's check and
    wording: qiskit_ibm_runtime.utils.is_isa_circuit); else InvalidInput naming the pub, the
    instruction and its qubits."""
    for index, pub in enumerate(pubs):
        message = is_isa_circuit(pub.circuit, backend.target)
        if message:
            raise InvalidInput(
                f"pub {index}: {message.rstrip('.')} ({backend.name}). Transpile the circuit "
                f"for the backend first (qiskit.transpile or generate_preset_pass_manager with "
                f"backend={backend.name!r}).",
                field=f"params.pubs[{index}]",
            )
    return pubs


def _widened(circuit: QuantumCircuit, backend: Any) -> QuantumCircuit:
    """`circuit` on all of `backend`'s qubits, its qubit i on physical qubit i: an ISA circuit
    narrower than the device runs where it says, never laid out again."""
    width = backend.target.num_qubits
    if circuit.num_qubits == width:
        return circuit
    wide = QuantumCircuit(width, name=circuit.name, metadata=circuit.metadata)
    for register in circuit.cregs:
        wide.add_register(register)
    loose = [bit for bit in circuit.clbits if not circuit.find_bit(bit).registers]
    if loose:
        wide.add_bits(loose)
    wide.compose(circuit, qubits=range(circuit.num_qubits), clbits=circuit.clbits, inplace=True)
    return wide


def _widened_observables(observables: ObservablesArray, width: int) -> ObservablesArray:
    """Observables padded with identities on the qubits a widened circuit added."""
    padded = np.empty(observables.shape, dtype=object)
    for index in np.ndindex(*observables.shape):
        term = observables[index]
        mapping = term if isinstance(term, dict) else dict(term)
        padded[index] = {
            "I" * (width - len(pauli)) + pauli: coeff for pauli, coeff in mapping.items()
        }
    return ObservablesArray(padded.tolist() if padded.shape else padded.item())
