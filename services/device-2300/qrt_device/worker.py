"""The device's worker process: parses, checks and simulates circuits for the device.

    python -m qrt_device.worker DEVICE_PID

Everything native the device runs (libqasm's analyzer, Aer) runs here, so whatever it does to
a process (a SIGFPE, a SIGSEGV, a simulation that does not end) ends this one alone; the
device (`supervisor.py`) answers the execute with a failure and starts another worker. Reads
`Setup` and then `Task`s on stdin, writes `Ready` and then one `Outcome` per task on stdout
(`worker_protocol.py`); ends with the device, or when the device closes stdin.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import BinaryIO

# The parsers (lark, libqasm) load here, at the worker's start, not with its first circuit (the
# package imports them on first use, so the device's front never holds them).
from qrt_common.cqasm import DEFAULT_LIMITS, Limits, parse, to_circuit, v1, v3  # noqa: F401
from qrt_common.errors import CqasmError
from qrt_common.processes import end_with_parent

from .config import DeviceConfig
from .noise import NoiseModels
from .rules import check
from .simulator import Simulator, instruction_names
from .worker_protocol import (
    Counted,
    Failed,
    Noise,
    Outcome,
    Ready,
    Rejected,
    Setup,
    Task,
    frame,
    read_instruction,
)


class Runner:
    """What a worker does with a task, for one device."""

    def __init__(self, config: DeviceConfig) -> None:
        self.config = config
        self.simulator = Simulator()
        self.noise = NoiseModels(config)
        # The device's own qubit count is a rule of its own (`check`), with its name in the
        # message; the parser's bound only keeps a declaration from costing work.
        self.limits = Limits(
            max_qubits=max(config.qubits, DEFAULT_LIMITS.max_qubits),
            max_bits=config.max_bits,
            max_operations=config.max_operations,
            max_shots=config.max_shots,
        )

    def run(self, task: Task) -> Outcome:
        """Parse `task`'s circuit, check it against the device's rules and simulate it."""
        try:
            parsed = parse(task.circuit, self.limits)
            check(parsed, self.config, task.shots)
            circuit = to_circuit(parsed)
        except CqasmError as exc:
            return Rejected(exc.rule, exc.line, exc.message)
        except Exception as exc:
            return Failed(f"{type(exc).__name__}: {exc}")
        try:
            noise = None
            if task.noise is not None:
                names = instruction_names(circuit)
                noise = self.noise.get(task.noise.version, task.noise.values, names)
            sample = self.simulator.run(
                parsed, task.shots, noise=noise, seed=task.seed, raw_data=task.raw_data,
                circuit=circuit, limits=self.limits,
            )  # fmt: skip
        except Exception as exc:
            return Failed(f"{type(exc).__name__}: {exc}")
        return Counted(sample.counts, sample.raw_data)

    def warm_up(self, noise: Noise | None) -> None:
        """Run a Bell pair once, with `noise`: Aer's first run and a first noise model are
        slow."""
        a, b = self.config.topology[0] if self.config.topology else (0, 0)
        n = max(a, b) + 1
        pair = f"CNOT q[{a}], q[{b}]\n" if a != b else ""
        bell = f"version 3.0\nqubit[{n}] q\nbit[{n}] b\nH q[{a}]\n{pair}b = measure q\n"
        self.run(Task(bell, 10, None, False, noise))


def serve(instructions: BinaryIO, answers: BinaryIO) -> None:
    """Answer `Setup` with `Ready` and each `Task` with its `Outcome`, until `instructions`
    ends."""
    setup = read_instruction(instructions)
    if not isinstance(setup, Setup):
        return
    runner = Runner(DeviceConfig.model_validate_json(setup.config))
    runner.warm_up(setup.noise)
    answers.write(frame(Ready()))
    answers.flush()
    while (task := read_instruction(instructions)) is not None:
        if not isinstance(task, Task):
            return
        answers.write(frame(runner.run(task)))
        answers.flush()


def main(argv: list[str]) -> None:
    """The worker of the device whose process id is `argv[1]`."""
    end_with_parent(int(argv[1]))
    # Ctrl-C in a terminal reaches the whole process group: the device stops its worker itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.fdopen(os.dup(1), "wb")
    # Whatever native code prints goes to stderr (the device's log), never into the answers.
    os.dup2(2, 1)
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main(sys.argv)
