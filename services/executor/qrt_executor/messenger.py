"""The program's side of a job process's control socket: the `user_messenger` a Qiskit Runtime
program publishes with, and how any frame goes back to the executor."""

from __future__ import annotations

import json
import socket
import sys
import threading
from typing import Any

import qiskit_ibm_runtime

from qrt_common.errors import ResultRefused
from qrt_common.results import ResultLimits, refusal
from qrt_common.wire import to_json

from .job_protocol import Failure, Final, Interim, Usage

RuntimeEncoder: type[json.JSONEncoder] = qiskit_ibm_runtime.RuntimeEncoder
RuntimeDecoder: type[json.JSONDecoder] = qiskit_ibm_runtime.RuntimeDecoder


class UserMessenger:
    """Handed to a program's `main()` to publish interim results and its final result."""

    def __init__(self, channel: socket.socket, limits: ResultLimits | None = None) -> None:
        self._channel = channel
        self._lock = threading.Lock()
        self.limits = limits or ResultLimits()
        self.final_published = False

    def publish(
        self,
        message: Any,
        encoder: type[json.JSONEncoder] = RuntimeEncoder,
        final: bool = False,
    ) -> None:
        """Publish `message`: an interim result, or the final result if `final`.

        Raises ResultRefused (a ValueError) when qrt cannot keep it: it holds NaN or Infinity,
        or is over its size limit (see `qrt_common.results`); nothing is published then.
        """
        text = json.dumps(message, cls=encoder)
        reason = refusal(text, interim=not final, limits=self.limits)
        if reason is not None:
            raise ResultRefused(reason)
        # As in Qiskit Runtime, the log shows every published message.
        print(text, flush=True)
        self.send(Final(text) if final else Interim(text))
        self.final_published = self.final_published or final

    def send(self, frame: Interim | Final | Usage | Failure) -> None:
        """Write one frame to the executor (from any thread)."""
        line = to_json(frame) + b"\n"
        with self._lock:
            self._channel.sendall(line)

    def fail(self, reason: str) -> None:
        """Log and report a failure that qrt's own `reason` explains (no traceback to show)."""
        print(f"[qrt] {reason}", file=sys.stderr, flush=True)
        self.send(Failure(reason))
