"""Parse cQASM circuits in a child process, so a circuit that crashes native code (libqasm's
SIGFPE), exhausts memory or never ends fails the test that sent it instead of killing pytest.

The child has an address-space limit (4 GiB), so a regression that expands a circuit without
bounds ends there instead of taking the machine's memory from every other process.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from dataclasses import asdict
from typing import Any

from qrt_common.cqasm import Limits

MEMORY_LIMIT = 4 << 30

_CHILD = r"""
import json, sys
from qrt_common.cqasm import Limits, parse, to_circuit
from qrt_common.errors import CqasmError

request = json.load(sys.stdin)
limits = Limits(**request["limits"])
for source in request["sources"]:
    try:
        circuit = parse(source, limits)
        if request["convert"]:
            to_circuit(circuit)
        result = {"operations": len(circuit.operations), "qubits": circuit.num_qubits,
                  "names": sorted({op.name for op in circuit.operations})}
    except CqasmError as exc:
        result = {"rule": exc.rule, "line": exc.line, "error": str(exc)}
    except BaseException as exc:
        result = {"unexpected": f"{type(exc).__name__}: {exc}"[:500]}
    print(json.dumps(result), flush=True)
"""


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def parse_in_child(
    sources: list[str], limits: Limits | None = None, *, convert: bool = False, timeout: float = 100
) -> list[dict[str, Any]]:
    """One result per source, in order: `{"operations", "qubits", "names"}` for a circuit that
    parsed, `{"rule", "line", "error"}` for a CqasmError, `{"unexpected": ...}` for any other
    exception, and `{"crashed": returncode, "stderr": ...}` for every source from the one the
    child died on (a negative returncode is the signal). `convert` also builds the Qiskit circuit.
    """
    request = {"sources": sources, "limits": asdict(limits or Limits()), "convert": convert}
    try:
        child = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=_limit_memory,
        )
        returncode, stdout, stderr = child.returncode, child.stdout, child.stderr
    except subprocess.TimeoutExpired as exc:
        returncode = "timed out"  # type: ignore[assignment]
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        stderr = ""
    results: list[dict[str, Any]] = [json.loads(line) for line in stdout.splitlines()]
    died = {"crashed": returncode, "stderr": stderr[-2000:]}
    return results + [died] * (len(sources) - len(results))
