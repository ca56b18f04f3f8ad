"""What job processes use, built once in the zygote before it forks them: the simulators'
Targets, the pass managers `transpile` builds for them, and everything Qiskit, Aer and the
runtime codec set up lazily on their first use.

Without it, every job process paid for it again (a Bell circuit through `circuit-runner`:
about 200 ms of 210; through the `sampler` program: about 100 ms):
- `AerSimulator.target` builds a new Target on every access, about 13 ms each, and one
  `transpile` reads it over a hundred times (`warm_targets` keeps the one built in the zygote
  for as long as the backend's configuration stays as it was);
- `transpile` builds a preset pass manager on every call, 15-20 ms at level 2 (the default):
  `prepare_pass_managers` builds one per simulator and level, and `transpile` takes it for a
  call that gives only the backend, a level and a seed, on a backend as it was built for;
- Qiskit loads its transpiler stage plugins, builds its equivalence and commutation libraries
  and its synthesis tables on first use; Aer sets up its controller and its V2 primitives on
  their first run; RuntimeEncoder and RuntimeDecoder import their QPY paths on first use
  (`exercise` runs each once, on throwaway backends).

Nothing a job can change is shared: each job process still takes its own copy of a backend
and of the prepared pass managers, and a Target it mutates, or a configuration it changes,
stays in its own process (and gets pass managers built for it).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import qiskit.compiler.transpiler as qiskit_transpile
import qiskit.transpiler.passes.optimization.consolidate_blocks as consolidate_blocks
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import Parameter
from qiskit.passmanager import BasePassManager
from qiskit.passmanager.base_tasks import Task
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler.passes import ConsolidateBlocks
from qiskit.transpiler.passes.optimization.two_qubit_peephole import (
    TwoQubitPeepholeOptimization,
)
from qiskit.user_config import get_config
from qiskit.utils import default_num_processes
from qiskit_aer import AerSimulator
from qiskit_aer.backends.aerbackend import AerBackend
from qiskit_aer.jobs import utils as aer_jobs
from qiskit_ibm_runtime.json import RuntimeDecoder, RuntimeEncoder

from qrt_common.backends import SIMULATORS
from qrt_common.primitive_runs import run_estimator, run_sampler

OPTIMIZATION_LEVELS = (0, 1)
"""The levels `exercise` transpiles at. Levels 2 and 3 run Qiskit's two-qubit decomposers,
whose Rust code (faer's linear algebra) starts a rayon thread pool, which a forked process
would find without its threads (and wait on forever)."""

PREPARED_LEVELS = (0, 1, 2, 3)
"""The optimization levels whose pass managers `prepare_pass_managers` builds for each
simulator (levels 2 and 3 with their two-qubit decomposers left to build on first use)."""

_KEPT = "_qrt_kept_target"
"""Attribute of a simulator holding its Target and the configuration it was built from."""

_HANDED_OUT = "_qrt_target_handed_out"
"""Attribute set on a simulator once its kept Target may have reached code that could change
it in place: `backend.target` returned it, or a prepared pass manager (whose passes hold it)
went to a caller other than `transpile`, or to a `transpile` given a callback (which gets the
passes). Until then `_prepared_for` needs no `_fingerprint` of it: reading every instruction
of a Target (about 400 pages a job process copies from the zygote, 1-2 ms) is most of what a
job's first `transpile` costs over the next one."""

_build_target = AerBackend.target.fget


def _configuration_of(backend: AerBackend) -> tuple[Any, ...]:
    """What an Aer backend's Target is built from: its configuration and properties objects,
    the values set on them, its options (the method, a noise model) and the basis gates it
    derived from them. (Copies of the dicts themselves: `Options.items()` goes through
    `collections.abc` item by item, and `transpile` reads the Target a hundred times.)"""
    return (
        backend._configuration,
        backend._properties,
        dict(backend._options_configuration),
        dict(backend._options_properties),
        dict(backend.options.__dict__),  # Options keeps its values there
        tuple(getattr(backend, "_cached_basis_gates", ())),
    )


def _same(one: tuple[Any, ...], other: tuple[Any, ...]) -> bool:
    # Tuples and dicts compare their items by identity first: an unchanged backend costs no
    # `__eq__` of its values.
    try:
        return bool(one == other)
    except Exception:  # an option whose == is no truth value (an array): take it as changed
        return False


def _kept_target(backend: AerBackend) -> Any:
    """The Target `backend.target` returns, without handing it out (`_HANDED_OUT`)."""
    kept = backend.__dict__.get(_KEPT)
    if kept is not None and _same(kept[0], _configuration_of(backend)):
        return kept[1]
    return _build_target(backend)


def _kept_or_built_target(backend: AerBackend) -> Any:
    target = _kept_target(backend)
    if _KEPT in backend.__dict__:
        backend.__dict__[_HANDED_OUT] = True
    return target


def _num_qubits(backend: AerBackend) -> int:
    # What BackendV2.num_qubits returns (transpile reads it of every backend), without
    # handing the Target out.
    num_qubits: int = _kept_target(backend).num_qubits
    return num_qubits


def keep_target(backend: AerBackend) -> None:
    """Build `backend`'s Target once and let `backend.target` return it while the backend's
    configuration is the one it was built from (a changed one builds a Target as Aer does)."""
    AerBackend.target = property(_kept_or_built_target)
    AerBackend.num_qubits = property(_num_qubits)
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


def _client_request(pub: SamplerPub | EstimatorPub) -> dict[str, Any]:
    """A V2 primitive's params as qiskit-ibm-runtime's SamplerV2 or EstimatorV2 sends them:
    RuntimeEncoder writes a pub as a list holding its parameter values as an array (empty
    for a circuit without parameters), which a job decodes with numpy and coerces through
    paths a pub of Python values takes no part of (about 1 ms of a job's first `sampler`)."""
    return {"pubs": [pub], "options": {}, "version": 2, "support_qiskit": True}


def exercise(simulators: dict[str, Any] | None = None) -> list[str]:
    """Prepare the pass managers of `simulators` (`prepare_pass_managers`), and run once, on
    throwaway simulators, what jobs run: `transpile` at every optimization level and `run` on
    each simulator, Aer's V2 primitives through the `sampler` and `estimator` programs' code,
    params and results through RuntimeEncoder and RuntimeDecoder. Returns the ids of threads it
    started that still run (none unless a library changed)."""
    threads_before = set(os.listdir("/proc/self/task"))
    if simulators:
        prepare_pass_managers(simulators)
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
            with _lazy_decomposers(), _without_two_qubit_resynthesis():
                for level in set(PREPARED_LEVELS) - set(OPTIMIZATION_LEVELS):
                    transpile(
                        circuits, backend=backend, seed_transpiler=level, optimization_level=level
                    )
            result = backend.run(transpiled, shots=16, seed_simulator=1).result()
            _round_trip(result.to_dict())
            bell = circuits[0]
            pubs = _round_trip(_client_request(SamplerPub.coerce((bell, None, 16))))
            _round_trip(run_sampler(backend, pubs, warn=lambda _: None))
            observable = SparsePauliOp(["ZZ", "XX"])
            unmeasured = bell.remove_final_measurements(inplace=False)
            pubs = _round_trip(_client_request(EstimatorPub.coerce((unmeasured, observable))))
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


class _LazyDecomposer:
    """A `TwoQubitBasisDecomposer` built on first use: building one computes the Weyl
    decomposition of its gate with faer, which starts rayon's thread pool (see
    `OPTIMIZATION_LEVELS`). ConsolidateBlocks builds one when it is made and uses it only
    when it runs, in the job process."""

    def __init__(self, build: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._qrt_build = (build, args, kwargs)
        self._qrt_built: Any = None

    def _qrt_real(self) -> Any:
        if self._qrt_built is None:
            build, args, kwargs = self._qrt_build
            self._qrt_built = build(*args, **kwargs)
        return self._qrt_built

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_qrt_") or (name.startswith("__") and name.endswith("__")):
            raise AttributeError(name)
        return getattr(self._qrt_real(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._qrt_real()(*args, **kwargs)

    def __reduce__(self) -> tuple[Any, ...]:
        # What another process (Qiskit's parallel `PassManager.run`) gets: the real one.
        build, args, kwargs = self._qrt_build
        return (_built, (build, args, kwargs))


def _built(build: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return build(*args, **kwargs)


@contextlib.contextmanager
def _lazy_decomposers() -> Iterator[None]:
    """Passes made inside build their two-qubit decomposers on first use (`_LazyDecomposer`)."""
    real = consolidate_blocks.TwoQubitBasisDecomposer

    def lazy(*args: Any, **kwargs: Any) -> Any:
        return _LazyDecomposer(real, *args, **kwargs)

    consolidate_blocks.TwoQubitBasisDecomposer = lazy
    try:
        yield
    finally:
        consolidate_blocks.TwoQubitBasisDecomposer = real


_RESYNTHESIZING = (ConsolidateBlocks, TwoQubitPeepholeOptimization)
"""The passes of levels 2 and 3 that use a two-qubit decomposer on every run."""


@contextlib.contextmanager
def _without_two_qubit_resynthesis() -> Iterator[None]:
    """`_RESYNTHESIZING` passes leave circuits as they are: what else levels 2 and 3 set up on
    their first run (caches, Qiskit's lazily built tables) is set up without rayon's pool."""
    runs = [(kind, kind.__dict__["run"]) for kind in _RESYNTHESIZING]
    for kind, _ in runs:
        kind.run = _unchanged
    try:
        yield
    finally:
        for kind, run in runs:
            kind.run = run


def _unchanged(self: Any, dag: Any) -> Any:
    return dag


def _tasks_of(root: Any) -> Iterator[Any]:
    """Every pass and flow controller in pass manager `root`, in order, depth first (a pass's
    own passes, SabreLayout's routing pass, included)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(reversed(item))
            continue
        if isinstance(item, dict):
            stack.extend(reversed(list(item.values())))
            continue
        if not isinstance(item, BasePassManager | Task) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Task):
            yield item
        stack.extend(
            reversed([value for name, value in vars(item).items() if name != "property_set"])
        )


def _seed_differences(unseeded: Any, seeded: Any, seed: int) -> list[Any] | None:
    """The passes of `unseeded` whose `seed` is what `seed_transpiler` set, when building the
    pass manager with seed `seed` (`seeded`) changed nothing else; else None."""
    ones, others = list(_tasks_of(unseeded)), list(_tasks_of(seeded))
    if len(ones) != len(others):
        return None
    passes = []
    for one, other in zip(ones, others, strict=True):
        if type(one) is not type(other):
            return None
        mine, theirs = vars(one), vars(other)
        if mine.keys() != theirs.keys():
            return None
        for name, value in mine.items():
            if name == "_hash" or isinstance(value, BasePassManager | Task | list | tuple | dict):
                continue
            if name == "seed" and value is None and theirs[name] == seed:
                passes.append(one)
            elif type(value) is not type(theirs[name]) or (
                isinstance(value, int | float | str | bool) and value != theirs[name]
            ):
                return None
    return passes


@dataclasses.dataclass(slots=True)
class _Prepared:
    """A preset pass manager built in the zygote for one simulator and level, seedless."""

    backend: AerBackend
    manager: Any
    seeded: list[Any]
    """Its passes taking `seed_transpiler` (seed None in `manager`)."""
    target: Any
    fingerprint: tuple[Any, ...]
    processes: int


_prepared: dict[tuple[int, int], _Prepared] = {}

_TRANSPILE_DEFAULTS: dict[str, Any] = {
    "target": None,
    "basis_gates": None,
    "coupling_map": None,
    "initial_layout": None,
    "layout_method": None,
    "routing_method": None,
    "translation_method": None,
    "scheduling_method": None,
    "approximation_degree": 1.0,
    "unitary_synthesis_method": "default",
    "unitary_synthesis_plugin_config": None,
    "hls_config": None,
    "init_method": None,
    "optimization_method": None,
    "dt": None,
    "qubits_initially_zero": True,
}
"""What `transpile` passes `generate_preset_pass_manager` when a program gives it only a
backend, a level and a seed: the calls a prepared pass manager answers."""

_SEED_PROBE = 7_919_387
"""A seed to find which passes take `seed_transpiler` (any value no pass sets otherwise)."""

_build_pass_manager = qiskit_transpile.generate_preset_pass_manager


def _fingerprint(target: Any) -> tuple[Any, ...]:
    """What passes read of a Target: a job that changed its backend's kept Target in place
    (added an instruction, changed a property) gets a pass manager built for it."""
    return (
        target.num_qubits,
        target.dt,
        target.granularity,
        target.min_length,
        target.pulse_alignment,
        target.acquire_alignment,
        tuple(
            (
                name,
                target.operation_from_name(name),
                tuple(
                    (qargs, None if props is None else (props.duration, props.error))
                    for qargs, props in target[name].items()
                ),
            )
            for name in target
        ),
    )


def prepare_pass_managers(simulators: dict[str, Any]) -> None:
    """Build, for each of `simulators` (name to backend, their Targets kept: `warm_targets`),
    the preset pass manager of each of `PREPARED_LEVELS`, and make `transpile` use it for a
    call it fits (`_prepared_or_built`). A level whose passes take the seed in a way this
    does not know (another Qiskit) is left out: `transpile` builds its pass manager as usual."""
    with _serial_qiskit(), _lazy_decomposers():
        for backend in simulators.values():
            target = _kept_target(backend)
            for level in PREPARED_LEVELS:
                manager = _build_pass_manager(level, backend=backend)
                probe = _build_pass_manager(level, backend=backend, seed_transpiler=_SEED_PROBE)
                seeded = _seed_differences(manager, probe, _SEED_PROBE)
                if seeded is None:
                    continue
                _prepared[(id(backend), level)] = _Prepared(
                    backend, manager, seeded, target, _fingerprint(target), default_num_processes()
                )
            # Qiskit's pass manager builder read the Target and changed nothing.
            backend.__dict__.pop(_HANDED_OUT, None)
    qiskit_transpile.generate_preset_pass_manager = _prepared_or_built


_TRANSPILE_CODE = qiskit_transpile.transpile.__code__
"""The code of Qiskit's `transpile`: the caller a prepared pass manager stays private to."""


def _prepared_or_built(*args: Any, **kwargs: Any) -> Any:
    """`generate_preset_pass_manager` as `transpile` calls it (the level, then keywords): the
    prepared pass manager of the job's simulator and level, with the call's seed, when the
    call and the backend are as it was built for; else one built as Qiskit builds it."""
    prepared = _prepared_for(args[0], kwargs) if len(args) == 1 else None
    if prepared is None:
        return _build_pass_manager(*args, **kwargs)
    caller = sys._getframe(1)
    if caller.f_code is not _TRANSPILE_CODE or caller.f_locals.get("callback") is not None:
        prepared.backend.__dict__[_HANDED_OUT] = True
    seed = kwargs.get("seed_transpiler")
    for task in prepared.seeded:
        task.seed = seed
    return prepared.manager


def _prepared_for(level: Any, kwargs: dict[str, Any]) -> _Prepared | None:
    backend = kwargs.get("backend")
    if type(level) is not int or backend is None:
        return None
    prepared = _prepared.get((id(backend), level))
    if prepared is None or prepared.backend is not backend:
        return None
    # The one pass manager is re-seeded per call: calls from other threads build their own.
    if threading.current_thread() is not threading.main_thread():
        return None
    if kwargs.keys() - {"backend", "seed_transpiler"} != _TRANSPILE_DEFAULTS.keys():
        return None
    for name, default in _TRANSPILE_DEFAULTS.items():
        value = kwargs[name]
        if value is not default and not (type(value) is type(default) and value == default):
            return None
    seed = kwargs.get("seed_transpiler")
    if seed is None:
        if os.getenv("QISKIT_TRANSPILER_SEED") is not None:
            return None
        if get_config().get("transpiler_seed") is not None:
            return None
    elif type(seed) is not int or seed < 0:  # Qiskit's own error for a seed it refuses
        return None
    if default_num_processes() != prepared.processes:  # SabreLayout's trials
        return None
    target = _kept_target(backend)
    if target is not prepared.target:
        return None
    if backend.__dict__.get(_HANDED_OUT) and not _same(_fingerprint(target), prepared.fingerprint):
        return None
    return prepared


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


_HOLE_SIZES = (65536, 32768, 16384, 8192, 4096, 2048, *range(1032, 0, -16))
"""Request sizes `fill_heap_holes` takes free chunks with, largest first: powers of two down to
glibc's tcache range, then each of its 16-byte size classes."""


def fill_heap_holes() -> int:
    """Take every free chunk of glibc's main heap below its top (and keep them, never freed),
    so that the processes forked from this one allocate from the top of the heap instead of
    from free chunks spread over the pages of the zygote's they would copy. Returns how many
    bytes it took (0 without glibc's `mallinfo2`).

    A job's `malloc` walked and split the zygote's free chunks, writing their headers and their
    neighbours' links (perf, in processes forked from a warmed zygote-like process: 670 of a
    Bell job's page faults in `_int_malloc`, 250 after). What it takes is memory the zygote's
    heap holds anyway (0.7 MiB after warming up), and one chunk from the top per size.
    """
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2") or not hasattr(libc, "sbrk"):
        return 0
    libc.mallinfo2.restype = _MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.sbrk.restype = ctypes.c_void_p
    libc.sbrk.argtypes = [ctypes.c_ssize_t]
    info = libc.mallinfo2()
    holes: int = info.fordblks - info.keepcost
    budget = holes // 16 + len(_HOLE_SIZES)  # should the heap not be one contiguous range
    for size in _HOLE_SIZES:
        top = (libc.sbrk(0) or 0) - libc.mallinfo2().keepcost
        while budget > 0:
            budget -= 1
            address = libc.malloc(size)
            if address is None or address >= top:
                break
    info = libc.mallinfo2()
    left: int = info.fordblks - info.keepcost
    return max(0, holes - left)
