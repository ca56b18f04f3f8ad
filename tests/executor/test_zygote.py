"""The zygote never outlives its executor: not while it starts, not while it serves."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from qrt_executor.pool import WarmPool
from tests.executor.test_runner import run as run_job_of
from tests.support.programs import write_program
from tests.support.waiting import eventually_sync

STARTER = """
import asyncio
from qrt_executor.pool import WarmPool

async def main():
    pool = WarmPool(size={size})
    await pool.start()
    print("ready", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


def zygote_of(parent: int) -> int | None:
    """The pid of the zygote `parent` started, if it runs."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == parent and b"qrt_executor.zygote" in command:
            return int(entry.name)
    return None


def importing(pid: int) -> bool:
    """True once the zygote `pid` has numpy loaded: it runs its own code and imports."""
    return "_multiarray_umath" in Path(f"/proc/{pid}/maps").read_text()


def gone(pid: int) -> bool:
    """True once `pid` has ended (a zombie nobody reaps has ended too)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def start(size: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", STARTER.format(size=size)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


SUPERVISOR = """
import ctypes, json, os, subprocess, sys
sys.path[:0] = {paths!r}
from tests.executor.test_zygote import STARTER, importing, zygote_of
from tests.support.waiting import eventually_sync

# Orphans of this process's tree come back to it, so it learns how the zygote ended.
ctypes.CDLL(None).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
executor = subprocess.Popen([sys.executable, "-c", STARTER.format(size=1)])
zygote = eventually_sync(lambda: zygote_of(executor.pid), "the executor starts its zygote")
# Past its first lines (numpy is loaded early) and still importing qiskit, which takes seconds.
eventually_sync(lambda: importing(zygote), "the zygote imports qiskit")
executor.kill()
executor.wait()
try:
    _, status = os.waitpid(zygote, 0)
    print(json.dumps({{"signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None}}))
except ChildProcessError:
    # The death signal comes when the thread that started the zygote ends; another thread of
    # the dying executor (asyncio's child watcher, waiting on it) may then reap it first.
    print(json.dumps({{"signal": "reaped by its executor"}}))
"""


def test_a_zygote_ends_at_once_when_its_executor_dies_while_it_imports():
    script = SUPERVISOR.format(paths=sys.path)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    # Ended by the executor's death (SIGTERM, asked of the kernel), not by finishing its
    # imports first and then finding nobody to talk to.
    assert json.loads(done.stdout)["signal"] in (signal.SIGTERM, "reaped by its executor")
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr


def test_a_serving_zygote_takes_its_job_processes_along_when_its_executor_dies():
    executor = start(size=2)
    assert executor.stdout is not None and executor.stdout.readline() == "ready\n"
    zygote = zygote_of(executor.pid)
    assert zygote is not None
    # The zygote's children: the job processes and, where each has a PID namespace of its
    # own, the `cat` that is process 1 there.
    waiting = eventually_sync(
        lambda: [
            int(p) for p in Path(f"/proc/{zygote}/task/{zygote}/children").read_text().split()
        ],
        "the warm pool's job processes are forked",
        until=lambda pids: len([p for p in pids if _command(p) != "cat"]) == 2,
    )
    os.kill(executor.pid, signal.SIGKILL)
    executor.wait()
    for pid in [zygote, *waiting]:
        eventually_sync(partial(gone, pid), f"process {pid} ends with the executor", timeout=5)
    _, errors = executor.communicate(timeout=30)
    assert "Traceback" not in errors


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


SLEEPING_THREADS = """
import os
import time

from qiskit import QuantumCircuit


def main(backend, user_messenger):
    # Statevector updates of 15 qubits run in an OpenMP team (Aer's threshold: 14 qubits).
    circuit = QuantumCircuit(15)
    circuit.h(range(15))
    circuit.cx(0, 14)
    circuit.measure_all()
    backend.set_options(method="statevector")
    result = backend.run(circuit, shots=10, seed_simulator=1).result()
    me = str(os.getpid())
    # Looked at five times, 0.2 ms apart: a spinning thread spins through all of them (300,000
    # rounds), while one that sleeps at once may be seen running on its way to sleep on a
    # loaded machine, but not at every look.
    looks = []
    for _ in range(5):
        looks.append({
            task: open(f"/proc/self/task/{task}/stat").read().rsplit(")", 1)[1].split()[0]
            for task in os.listdir("/proc/self/task")
            if task != me
        })
        time.sleep(0.0002)
    return {"team": result.results[0].metadata["parallel_state_update"], "looks": looks}
"""


@pytest.mark.asyncio(loop_scope="module")
async def test_a_job_s_openmp_threads_sleep_once_their_work_is_done(
    pool: WarmPool, programs_dir: Path
) -> None:
    """Aer's OpenMP threads wait passively (`OPENMP_SETTINGS`): right after a parallel run no
    thread of the job process but the one asking is running (spinning, they would be)."""
    write_program(programs_dir, "sleepers", {"name": "sleepers"}, SLEEPING_THREADS)
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: Aer runs no OpenMP team")
    run = await run_job_of(pool, programs_dir, "sleepers")
    [result] = run.results
    assert result["team"] >= 2, result
    assert any(set(look.values()) <= {"S"} for look in result["looks"]), result


IBM_RUNTIME_USER = """
import sys


def main(backend, user_messenger):
    client_loaded = "qiskit_ibm_runtime.qiskit_runtime_service" in sys.modules
    import qiskit_ibm_runtime
    import qiskit_ibm_runtime.json as codec
    from qiskit_ibm_runtime import QiskitRuntimeService, SamplerV2

    return {
        "client_loaded_at_start": client_loaded,
        "service": QiskitRuntimeService.__name__,
        "sampler": SamplerV2.__name__,
        "same_codec": qiskit_ibm_runtime.RuntimeEncoder is codec.RuntimeEncoder,
    }
"""


@pytest.mark.asyncio(loop_scope="module")
async def test_a_job_starts_without_qiskit_ibm_runtime_s_client_and_gets_it_when_it_asks(
    pool: WarmPool, programs_dir: Path
) -> None:
    """The zygote holds qiskit-ibm-runtime's codec, not the package's client (88 MiB); a program
    that uses the package gets all of it, the codec its job was decoded with included."""
    write_program(programs_dir, "ibmuser", {"name": "ibmuser"}, IBM_RUNTIME_USER)
    run = await run_job_of(pool, programs_dir, "ibmuser", time_limit=120)
    assert run.results == [
        {
            "client_loaded_at_start": False,
            "service": "QiskitRuntimeService",
            "sampler": "SamplerV2",
            "same_codec": True,
        }
    ], run


@pytest.mark.asyncio(loop_scope="module")
async def test_qrt_job_preload_loads_what_it_names_and_names_what_it_cannot(
    programs_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """QRT_JOB_PRELOAD's modules start loaded in every job (qiskit_ibm_runtime whole); one that
    does not import is named on the executor's log, and jobs still run."""
    write_program(programs_dir, "ibmuser", {"name": "ibmuser"}, IBM_RUNTIME_USER)
    preloaded = WarmPool(size=1, preload=["qiskit_ibm_runtime", "no_such_module_qrt", "colorsys"])
    await preloaded.start()
    try:
        run = await run_job_of(preloaded, programs_dir, "ibmuser", time_limit=120)
    finally:
        await preloaded.close()
    [result] = run.results
    assert result["client_loaded_at_start"] is True and result["same_codec"] is True
    err = capfd.readouterr().err
    assert "QRT_JOB_PRELOAD: could not import no_such_module_qrt" in err, err
    assert "colorsys" not in err
