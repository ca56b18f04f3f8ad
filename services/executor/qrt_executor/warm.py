"""What job processes use, built once in the zygote before it forks them: the simulators'
Targets, and everything Qiskit, Aer and the runtime codec set up lazily on their first use.

Without it, every job process paid for it again (a Bell circuit through `circuit-runner`:
about 200 ms of 210; through the `sampler` program: about 100 ms):
- `AerSimulator.target` builds a new Target on every access, about 13 ms each, and one
  `transpile` reads it over a hundred times (`warm_targets` keeps the one built in the zygote
  for as long as the backend's configuration stays as it was);
- Qiskit loads its transpiler stage plugins, builds its equivalence and commutation libraries
  and its synthesis tables on first use; Aer sets up its controller and its V2 primitives on
  their first run; RuntimeEncoder and RuntimeDecoder import their QPY paths on first use
  (`exercise` runs each once, on throwaway backends).

Nothing a job can change is shared: each job process still takes its own copy of a backend,
and a Target it mutates, or a configuration it changes, stays in its own process.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer import AerSimulator
from qiskit_aer.backends.aerbackend import AerBackend
from qiskit_aer.jobs import utils as aer_jobs
from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder

from qrt_common.backends import SIMULATORS
from qrt_common.primitive_runs import run_estimator, run_sampler

OPTIMIZATION_LEVELS = (0, 1)
"""The levels `exercise` transpiles at. Levels 2 and 3 build Qiskit's two-qubit decomposers,
whose Rust code starts a rayon thread pool, which a forked process would find without its
threads (and wait on forever)."""

_KEPT = "_qrt_kept_target"
"""Attribute of a simulator holding its Target and the configuration it was built from."""

_build_target = AerBackend.target.fget


def _configuration_of(backend: AerBackend) -> tuple[Any, ...]:
    """What an Aer backend's Target is built from: its configuration and properties objects,
    the values set on them, its options (the method, a noise model) and the basis gates it
    derived from them."""
    return (
        backend._configuration,
        backend._properties,
        tuple(backend._options_configuration.items()),
        tuple(backend._options_properties.items()),
        tuple(backend.options.items()),
        tuple(getattr(backend, "_cached_basis_gates", ())),
    )


def _same(one: tuple[Any, ...], other: tuple[Any, ...]) -> bool:
    # Tuples compare their items by identity first: an unchanged backend costs no `__eq__`.
    try:
        return bool(one == other)
    except Exception:  # an option whose == is no truth value (an array): take it as changed
        return False


def _kept_or_built_target(backend: AerBackend) -> Any:
    kept = backend.__dict__.get(_KEPT)
    if kept is not None and _same(kept[0], _configuration_of(backend)):
        return kept[1]
    return _build_target(backend)


def keep_target(backend: AerBackend) -> None:
    """Build `backend`'s Target once and let `backend.target` return it while the backend's
    configuration is the one it was built from (a changed one builds a Target as Aer does)."""
    AerBackend.target = property(_kept_or_built_target)
    setattr(backend, _KEPT, (_configuration_of(backend), _build_target(backend)))


def warm_targets(simulators: dict[str, Any]) -> None:
    """`keep_target` for each of `simulators` (backend name to backend)."""
    for backend in simulators.values():
        keep_target(backend)


def sample_circuits() -> list[QuantumCircuit]:
    """Circuits that take every stage of the preset pass managers: a Bell pair, a GHZ state on
    5 qubits with a swap and rotations, and a parametrized 3-qubit circuit."""
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    ghz = QuantumCircuit(5)
    ghz.h(0)
    for qubit in range(4):
        ghz.cx(qubit, qubit + 1)
    ghz.swap(0, 4)
    ghz.rz(0.3, 2)
    ghz.ry(0.2, 3)
    ghz.ccx(0, 1, 2)
    ghz.measure_all()
    theta = Parameter("θ")
    rotations = QuantumCircuit(3)
    rotations.ry(theta, 0)
    rotations.cx(0, 1)
    rotations.rzz(theta, 1, 2)
    rotations.measure_all()
    return [bell, ghz, rotations.assign_parameters([0.7])]


@contextlib.contextmanager
def _serial_qiskit() -> Iterator[None]:
    """Qiskit's Rust code runs on this thread alone: a thread pool started in the zygote would
    be missing (and waited for forever) in every process forked from it."""
    before = os.environ.get("QISKIT_IN_PARALLEL")
    os.environ["QISKIT_IN_PARALLEL"] = "TRUE"
    try:
        yield
    finally:
        if before is None:
            del os.environ["QISKIT_IN_PARALLEL"]
        else:
            os.environ["QISKIT_IN_PARALLEL"] = before


def _round_trip(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=RuntimeEncoder), cls=RuntimeDecoder)


def exercise() -> list[str]:
    """Run once, on throwaway simulators, what jobs run: `transpile` at every optimization level
    and `run` on each simulator, Aer's V2 primitives through the `sampler` and `estimator`
    programs' code, params and results through RuntimeEncoder and RuntimeDecoder. Returns the
    ids of threads it started that still run (none unless a library changed)."""
    threads_before = set(os.listdir("/proc/self/task"))
    circuits = sample_circuits()
    with _serial_qiskit():
        for options in SIMULATORS.values():
            # One thread: OpenMP's pool would not survive a fork either.
            backend = AerSimulator(**options, max_parallel_threads=1)
            keep_target(backend)
            for level in OPTIMIZATION_LEVELS:
                transpiled = transpile(
                    circuits, backend=backend, seed_transpiler=level, optimization_level=level
                )
            result = backend.run(transpiled, shots=16, seed_simulator=1).result()
            _round_trip(result.to_dict())
            bell = circuits[0]
            pubs = _round_trip({"pubs": [(bell, None, 16)], "version": 2, "options": {}})
            _round_trip(run_sampler(backend, pubs, warn=lambda _: None))
            observable = SparsePauliOp(["ZZ", "XX"])
            unmeasured = bell.remove_final_measurements(inplace=False)
            pubs = _round_trip({"pubs": [(unmeasured, observable)], "version": 2, "options": {}})
            _round_trip(run_estimator(backend, pubs, warn=lambda _: None))
    # Aer runs jobs on a worker thread of its own; forked processes make a new one
    # (qiskit_aer.jobs.utils), the zygote needs none.
    aer_jobs.DEFAULT_EXECUTOR.shutdown(wait=True)
    aer_jobs._reset_executor_in_child()
    # (OpenBLAS starts its threads on import, before this, and handles fork itself.)
    # A joined thread may still be listed for a moment while the kernel ends it.
    deadline = time.monotonic() + 2.0
    while (started := set(os.listdir("/proc/self/task")) - threads_before) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.01)
    return sorted(started)
