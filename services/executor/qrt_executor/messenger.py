"""The program's side of a job process's control socket: the `user_messenger` a Qiskit Runtime
program publishes with, and how any frame goes back to the executor."""

from __future__ import annotations

import json
import socket
import sys
import threading
from typing import Any

from qiskit_ibm_runtime.json import RuntimeEncoder

from qrt_common.errors import ResultRefused
from qrt_common.results import ResultLimits, refusal
from qrt_common.wire import from_json, to_json

from .job_protocol import (
    DeviceAnswer,
    DeviceCall,
    Exit,
    Failure,
    Final,
    Interim,
    JobLimits,
    Usage,
)


class UserMessenger:
    """Handed to a program's `main()` to publish interim results and its final result."""

    def __init__(
        self,
        channel: socket.socket,
        limits: ResultLimits | None = None,
        job_limits: JobLimits | None = None,
    ) -> None:
        self._channel = channel
        self._lock = threading.Lock()
        self._calling = threading.Lock()
        self._answers = b""
        self.limits = limits or ResultLimits()
        self.job_limits = job_limits or JobLimits()
        """The sandbox's limits, to name the one a program ran into."""
        self.final_published = False

    def publish(
        self,
        message: Any,
        encoder: type[json.JSONEncoder] = RuntimeEncoder,
        final: bool = False,
    ) -> None:
        """Publish `message`: an interim result, or the final result if `final`.

        Raises ResultRefused (a ValueError) when qrt cannot keep it: it holds NaN or Infinity,
        is over its size limit, or is an interim result that holds qrt's notice key `__qrt__` (see
        `qrt_common.results`); nothing is published then.
        """
        text = json.dumps(message, cls=encoder)
        reason = refusal(text, interim=not final, limits=self.limits)
        if reason is not None:
            raise ResultRefused(reason)
        if final:
            # As in Qiskit Runtime, the log shows every published message.
            print(text, flush=True)
            self.send(Final(text))
        else:
            # The frame first: the executor knows this line for the echo of an interim
            # result (runner.Echoes), which counts against the interims' limit, not the log's.
            self.send(Interim(text))
            print(text, flush=True)
        self.final_published = self.final_published or final

    def send(self, frame: Interim | Final | Usage | Failure | DeviceCall | Exit) -> None:
        """Write one frame to the executor (from any thread)."""
        line = to_json(frame) + b"\n"
        with self._lock:
            self._channel.sendall(line)

    def call_device(self, call: DeviceCall) -> DeviceAnswer:
        """Have the executor make `call` to the job's device, and wait for its answer; an
        answer that says so when the executor went away."""
        with self._calling:
            self.send(call)
            while b"\n" not in self._answers:
                chunk = self._channel.recv(65536)
                if not chunk:
                    return DeviceAnswer(error="the executor closed the job's channel",
                                        unavailable=True)  # fmt: skip
                self._answers += chunk
            line, self._answers = self._answers.split(b"\n", 1)
        answer: DeviceAnswer = from_json(DeviceAnswer, line)
        return answer

    def fail(self, reason: str) -> None:
        """Log and report a failure that qrt's own `reason` explains (no traceback to show)."""
        print(f"[qrt] {reason}", file=sys.stderr, flush=True)
        self.send(Failure(reason))
