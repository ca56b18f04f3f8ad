"""Job processes forked from a warmed zygote (Targets kept, Qiskit and Aer exercised ahead,
`qrt_executor.warm`) transpile exactly as a fresh interpreter does, and what one job changes
of its backend reaches no other job."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import qiskit.compiler.transpiler as qiskit_transpile
from qiskit import QuantumCircuit, qasm3, transpile
from qiskit.circuit.library import CXGate
from qiskit.transpiler import InstructionProperties
from qiskit_aer import AerSimulator
from qiskit_ibm_runtime import RuntimeEncoder

from qrt_common.backends import SIMULATORS
from qrt_common.jobs import JobStatus
from qrt_common.messages import JobEvent
from qrt_common.programs import ProgramKind
from qrt_executor import warm
from qrt_executor.job_protocol import Launch
from qrt_executor.pool import WarmPool
from qrt_executor.runner import JobOutput, run_job
from qrt_executor.warm import sample_circuits
from tests.support.executors import Run

IN_THE_POOL = pytest.mark.asyncio(loop_scope="module")

PROGRAM = textwrap.dedent(
    '''
    """Transpiles as circuit-runner does; returns each circuit as OpenQASM 3 with its layout,
    and what the backend looked like before the job changed it (when asked to)."""
    import json
    import sys

    from qiskit import qasm3, transpile


    def describe(circuit):
        layout = circuit.layout.final_index_layout() if circuit.layout is not None else None
        return [qasm3.dumps(circuit), layout]


    def main(backend, user_messenger, circuits, seed_transpiler=None,
             optimization_level=None, transpiler_options=None, mutate=False, again=()):
        seen = {
            "basis": sorted(backend.target.operation_names),
            "shots": backend.options.shots,
        }
        transpiled = transpile(
            circuits,
            backend=backend,
            seed_transpiler=seed_transpiler,
            optimization_level=optimization_level,
            **(transpiler_options or {}),
        )
        for arguments in again:  # later transpiles in the same job, with other arguments
            options = arguments.pop("transpiler_options", None) or {}
            transpiled += transpile(circuits, backend=backend, **arguments, **options)
        if mutate:
            # What a careless program might do to the backend it was given.
            backend.set_options(shots=7, basis_gates=["rz", "sx", "cx", "measure"])
            from qiskit.circuit import Gate

            backend.target.add_instruction(Gate("qrt_mutant", 1, []), name="qrt_mutant")
        return {"circuits": [describe(c) for c in transpiled], "seen": seen}


    if __name__ == "__main__":
        # A fresh interpreter: the same transpile on a backend built the usual way.
        from qiskit_aer import AerSimulator
        from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder

        options, params = json.loads(sys.argv[1]), json.loads(sys.argv[2], cls=RuntimeDecoder)
        print(json.dumps(main(AerSimulator(**options), None, **params), cls=RuntimeEncoder))
    '''
)


@pytest.fixture(scope="module")
def programs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("programs")
    (where / "transpiling.py").write_text(PROGRAM)
    return where


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[WarmPool]:
    warm = WarmPool(2)
    await warm.start()
    try:
        yield warm
    finally:
        await warm.close()


async def in_a_job(
    pool: WarmPool,
    programs: Path,
    backend: str,
    params: dict[str, Any],
    module: str = "transpiling",
) -> Any:
    """The result of `module` for `params`, run in a job process of `pool`, on `backend`."""
    events: list[JobEvent] = []

    async def send(batch: list[JobEvent]) -> None:
        events.extend(batch)

    job_id = f"job-{uuid.uuid4().hex[:8]}"
    output = JobOutput(job_id, 1, "ex", send, max_log_bytes=1 << 20)
    launch = Launch(
        job_id=job_id,
        kind=ProgramKind.QISKIT_RUNTIME,
        module=module,
        search_path=str(programs),
        project_dir=str(programs),
        backend=backend,
        params=json.dumps(params, cls=RuntimeEncoder),
        workdir=str(programs),
    )
    proc = await pool.acquire()
    stop: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    try:
        outcome = await run_job(proc, launch, output, time_limit=300, stop=stop)
    finally:
        proc.close()
    await output.close()
    run = Run(outcome, events)
    assert outcome.status is JobStatus.COMPLETED, (outcome, run.log)
    return run.results[0]


def in_a_fresh_interpreter(programs: Path, backend: str, params: dict[str, Any]) -> Any:
    """The program's result for `params` in a new Python process, on `AerSimulator(...)`."""
    done = subprocess.run(
        [
            sys.executable,
            str(programs / "transpiling.py"),
            json.dumps(SIMULATORS[backend]),
            json.dumps(params, cls=RuntimeEncoder),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(done.stdout)


def _line(width: int) -> list[list[int]]:
    return [[qubit, qubit + 1] for qubit in range(width - 1)]


CASES = [
    # (backend, transpile's arguments): every level, two seeds, the default level (None: 2),
    # and options that change the pass manager (a coupling map with routing, a basis, a layout).
    *[
        ("aer_simulator", {"optimization_level": level, "seed_transpiler": seed})
        for level in (0, 1, 2, 3)
        for seed in (7, 1234)
    ],
    ("aer_simulator", {"seed_transpiler": 11}),
    ("aer_simulator_statevector", {"optimization_level": 2, "seed_transpiler": 5}),
    ("aer_simulator_statevector", {"optimization_level": 3, "seed_transpiler": 6}),
    # One job transpiling again and again: each call as if it were its first.
    (
        "aer_simulator",
        {
            "optimization_level": 2,
            "seed_transpiler": 7,
            "again": [
                {"optimization_level": 3, "seed_transpiler": 1234},
                {
                    "optimization_level": 2,
                    "seed_transpiler": 8,
                    "transpiler_options": {
                        "coupling_map": _line(6),
                        "basis_gates": ["rz", "sx", "cx"],
                    },
                },
                {"optimization_level": 2},
                {"optimization_level": 2, "seed_transpiler": 7},
            ],
        },
    ),
    (
        "aer_simulator",
        {
            "optimization_level": 3,
            "seed_transpiler": 3,
            "transpiler_options": {"coupling_map": _line(6), "basis_gates": ["rz", "sx", "cx"]},
        },
    ),
    (
        "aer_simulator",
        {
            "optimization_level": 1,
            "seed_transpiler": 9,
            "transpiler_options": {"layout_method": "sabre"},
        },
    ),
]


@IN_THE_POOL
@pytest.mark.parametrize(("backend", "arguments"), CASES)
async def test_a_warm_job_process_transpiles_as_a_fresh_interpreter(
    pool: WarmPool, programs: Path, backend: str, arguments: dict[str, Any]
) -> None:
    circuits = sample_circuits()
    wide = QuantumCircuit(6)
    wide.h(0)
    for qubit in range(5):
        wide.cx(0, qubit + 1)
    wide.cx(5, 2)
    wide.measure_all()
    params = {"circuits": [*circuits, wide], **arguments}
    warm, cold = await asyncio.gather(
        in_a_job(pool, programs, backend, params),
        asyncio.to_thread(in_a_fresh_interpreter, programs, backend, params),
    )
    assert warm == cold


@IN_THE_POOL
async def test_what_a_job_changes_of_its_backend_reaches_no_later_job(
    pool: WarmPool, programs: Path
) -> None:
    params = {"circuits": sample_circuits(), "seed_transpiler": 1, "optimization_level": 2}
    first = await in_a_job(pool, programs, "aer_simulator", {**params, "mutate": True})
    second = await in_a_job(pool, programs, "aer_simulator", params)
    assert first == second
    assert "qrt_mutant" not in second["seen"]["basis"] and second["seen"]["shots"] == 1024


@IN_THE_POOL
@pytest.mark.parametrize("change", ["basis_gates", "noise_model"])
async def test_a_changed_configuration_builds_its_own_target(
    pool: WarmPool, programs: Path, change: str
) -> None:
    """A job that sets other basis gates, or a noise model with its own, on its backend
    transpiles to them, as with a backend built fresh (the kept Target is for the
    configuration it was built from only)."""
    program = programs / "changing.py"
    program.write_text(
        textwrap.dedent(
            """
            from qiskit import transpile
            from qiskit_aer.noise import NoiseModel, depolarizing_error

            def main(backend, user_messenger, circuits, change):
                backend.target  # the kept one, read before the change
                if change == "basis_gates":
                    backend.set_options(basis_gates=["rz", "sx", "cx", "measure"])
                else:
                    noise = NoiseModel(basis_gates=["rz", "sx", "cx"])
                    noise.add_all_qubit_quantum_error(depolarizing_error(0.1, 1), ["sx"])
                    backend.set_options(noise_model=noise)
                transpiled = transpile(circuits, backend=backend, seed_transpiler=1)
                return sorted({i.operation.name for c in transpiled for i in c.data})
            """
        )
    )
    params = {"circuits": sample_circuits(), "change": change}
    names = await in_a_job(pool, programs, "aer_simulator", params, module="changing")
    assert set(names) <= {"rz", "sx", "cx", "measure", "barrier"}


@pytest.fixture
def prepared(monkeypatch: pytest.MonkeyPatch) -> Any:
    """An Aer simulator with its Target kept and its pass managers prepared, in this process
    (what the zygote does), undone after the test."""
    monkeypatch.setattr(qiskit_transpile, "generate_preset_pass_manager", warm._build_pass_manager)
    monkeypatch.setattr(warm, "_prepared", {})
    backend = AerSimulator()
    warm.keep_target(backend)
    warm.prepare_pass_managers({"aer_simulator": backend})
    return backend


def _plain(circuits: list[QuantumCircuit], backend: Any, **arguments: Any) -> list[str]:
    """`circuits` transpiled with a pass manager built as Qiskit builds it, as OpenQASM 3."""
    manager = warm._build_pass_manager(backend=backend, **arguments)
    return [qasm3.dumps(circuit) for circuit in manager.run(circuits)]


def test_transpile_takes_the_prepared_pass_manager_for_a_plain_call(prepared: Any) -> None:
    circuits = sample_circuits()
    for level in warm.PREPARED_LEVELS:
        manager = qiskit_transpile.generate_preset_pass_manager(
            level, backend=prepared, **warm._TRANSPILE_DEFAULTS, seed_transpiler=level
        )
        assert manager is warm._prepared[(id(prepared), level)].manager
        transpiled = transpile(
            circuits, backend=prepared, optimization_level=level, seed_transpiler=level
        )
        assert [qasm3.dumps(circuit) for circuit in transpiled] == _plain(
            circuits, prepared, optimization_level=level, seed_transpiler=level
        )


def test_a_call_or_a_backend_unlike_the_prepared_ones_builds_its_own(prepared: Any) -> None:
    def taken(backend: Any = prepared, **changes: Any) -> bool:
        arguments = {**warm._TRANSPILE_DEFAULTS, "seed_transpiler": 1, **changes}
        manager = qiskit_transpile.generate_preset_pass_manager(2, backend=backend, **arguments)
        return manager is warm._prepared[(id(prepared), 2)].manager

    assert taken()
    assert not taken(layout_method="trivial")
    assert not taken(approximation_degree=0.99)
    assert not taken(initial_layout=[1, 0])
    with pytest.raises(ValueError, match="seed"):  # as Qiskit refuses it
        taken(seed_transpiler=-1)
    assert not taken(backend=AerSimulator())
    other = AerSimulator()
    warm.keep_target(other)
    assert not taken(backend=other)
    # From another thread: the one prepared pass manager is re-seeded per call.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert not pool.submit(taken).result()
    assert taken()


def test_a_target_changed_in_place_gets_a_pass_manager_built_for_it(prepared: Any) -> None:
    """A job that adds an instruction to the Target its backend keeps transpiles for it, as a
    pass manager built for the changed Target does (here: routed on the 2-qubit gate's line)."""
    circuits = sample_circuits()
    prepared.target.add_instruction(
        CXGate(),
        {(a, a + 1): InstructionProperties(error=0.01) for a in range(5)},
        name="cx_on_a_line",
    )
    transpiled = transpile(circuits, backend=prepared, optimization_level=2, seed_transpiler=3)
    assert [qasm3.dumps(circuit) for circuit in transpiled] == _plain(
        circuits, prepared, optimization_level=2, seed_transpiler=3
    )
    prepared.set_options(shots=5)  # another configuration: another Target, built by Aer
    assert (
        qiskit_transpile.generate_preset_pass_manager(
            2, backend=prepared, **warm._TRANSPILE_DEFAULTS, seed_transpiler=3
        )
        is not warm._prepared[(id(prepared), 2)].manager
    )


def test_prepared_pass_managers_start_no_thread() -> None:
    """Building levels 2 and 3 leaves their two-qubit decomposers to their first use (building
    one starts rayon's threads); a decomposer sent to another process is a real one."""
    code = textwrap.dedent(
        """
        import os, pickle
        from qiskit import qasm3
        from qiskit_aer import AerSimulator
        from qrt_executor import warm

        backend = AerSimulator()
        warm.keep_target(backend)
        before = len(os.listdir("/proc/self/task"))
        warm.prepare_pass_managers({"aer_simulator": backend})
        assert len(os.listdir("/proc/self/task")) == before, "a thread started"
        circuits = warm.sample_circuits()
        for level in (2, 3):
            manager = warm._prepared[(id(backend), level)].manager
            lazy = [t.decomposer for t in warm._tasks_of(manager) if hasattr(t, "decomposer")]
            assert lazy and all(isinstance(d, warm._LazyDecomposer) for d in lazy)
            real = pickle.loads(pickle.dumps(lazy[0]))
            assert type(real).__name__ == "TwoQubitBasisDecomposer"
            ran = [qasm3.dumps(c) for c in manager.run(circuits)]
            fresh = warm._build_pass_manager(level, backend=backend)
            assert ran == [qasm3.dumps(c) for c in fresh.run(circuits)]
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def _fingerprints(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The Targets `warm._fingerprint` reads from now on (it still reads them)."""
    read: list[Any] = []
    fingerprint = warm._fingerprint

    def reading(target: Any) -> tuple[Any, ...]:
        read.append(target)
        return fingerprint(target)

    monkeypatch.setattr(warm, "_fingerprint", reading)
    return read


def test_a_target_no_program_code_reached_is_taken_as_unchanged(
    prepared: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`transpile` (which reads `num_qubits`) and `run` leave the kept Target unread; once
    `backend.target` handed it out, every `transpile` checks it again."""
    circuits = sample_circuits()
    read = _fingerprints(monkeypatch)
    for _ in range(2):
        transpiled = transpile(circuits, backend=prepared, seed_transpiler=1)
    prepared.run(transpiled, shots=10, seed_simulator=1).result()
    assert prepared.num_qubits == prepared.target.num_qubits and read == []
    transpile(circuits, backend=prepared, seed_transpiler=1)
    assert read == [prepared.target]


@pytest.mark.parametrize("reached", ["callback", "pass manager"])
def test_a_target_reached_through_the_passes_is_checked_again(
    prepared: Any, monkeypatch: pytest.MonkeyPatch, reached: str
) -> None:
    """The prepared passes hold the kept Target: once a program got them (a `transpile`
    callback, the pass manager itself) and could have changed it through one, every later
    `transpile` checks it (as after `backend.target`)."""
    circuits = sample_circuits()
    read = _fingerprints(monkeypatch)
    if reached == "callback":
        passes: list[Any] = []
        transpile(
            circuits,
            backend=prepared,
            seed_transpiler=3,
            callback=lambda pass_, **_: passes.append(pass_),
        )
        assert any(warm._kept_target(prepared) in vars(held).values() for held in passes)
    else:
        qiskit_transpile.generate_preset_pass_manager(
            2, backend=prepared, **warm._TRANSPILE_DEFAULTS, seed_transpiler=3
        )
    assert read == []
    transpile(circuits, backend=prepared, seed_transpiler=3)
    assert read == [warm._kept_target(prepared)]


def test_filling_the_heap_holes_leaves_few_free_chunks_below_the_top() -> None:
    """`fill_heap_holes` takes the free chunks a forked process's `malloc` would otherwise
    reuse (and copy the pages of): what is free below the heap's top shrinks to what its
    size classes cannot take."""
    code = textwrap.dedent(
        """
        from qrt_executor import warm
        import ctypes

        kept = [bytes(size) for size in range(40, 4000, 8) for _ in range(20)]
        del kept[::2]  # free chunks all over the heap
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = warm._MallInfo2
        info = libc.mallinfo2()
        before = info.fordblks - info.keepcost
        taken = warm.fill_heap_holes()
        info = libc.mallinfo2()
        after = info.fordblks - info.keepcost
        assert before > 1_000_000 and taken > before // 2 and after < before // 4, (
            before, taken, after)
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONMALLOC": "malloc"},
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
