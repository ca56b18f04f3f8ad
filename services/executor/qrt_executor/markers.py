"""PlanQK's stdout markers: interim results, and the result of a one-shot program.

- `PlanQK:Job:InterimResult: {json}` on one line: an interim result (repeatable);
- `PlanQK:Job:Result: {json}` on one line: the result; only the first one counts;
- a block of lines between two `PlanQK:Job:MultilineResult` lines: the result as well.

The space after a marker's colon is optional. Every other line is log.
"""

from __future__ import annotations

import json
from typing import Any

from qrt_common.messages import EventKind

from .runner import JobOutput

INTERIM_MARKER = "PlanQK:Job:InterimResult:"
RESULT_MARKER = "PlanQK:Job:Result:"
MULTILINE_MARKER = "PlanQK:Job:MultilineResult"
MAX_RESULT_BYTES = 8 * 1024 * 1024
"""Largest result a one-shot program may print (what one stored document comfortably holds)."""


def _parse(text: str) -> Any:
    """The JSON value in `text`; raises ValueError (with the reason) if it is not one."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


class PlanQKStdout:
    """Reads a PlanQK program's stdout line by line into interim results, a result and log.

    With `takes_result` (one-shot programs) the first result marker gives `result`, or
    `error` when what follows it is not JSON; later result markers are ordinary log lines.
    """

    def __init__(self, output: JobOutput, *, takes_result: bool) -> None:
        self._output = output
        self._takes_result = takes_result
        self._block: list[str] | None = None
        self._block_bytes = 0
        self.result: str | None = None
        """The result as compact JSON text, once a marker gave one."""
        self.error: str | None = None
        """Why the result a marker announced cannot be used."""

    @property
    def settled(self) -> bool:
        """True once the first result (or its failure) is known: later markers are log."""
        return self.result is not None or self.error is not None

    def line(self, line: str) -> None:
        """Take one line of stdout (without its newline)."""
        text = line.rstrip("\r")
        if self._block is not None:
            self._in_block(text)
        elif text.startswith(INTERIM_MARKER):
            self._interim(line, text.removeprefix(INTERIM_MARKER))
        elif not self._takes_result or self.settled:
            self._output.log(line)
        elif text.startswith(RESULT_MARKER):
            self._settle(text.removeprefix(RESULT_MARKER), RESULT_MARKER)
        elif text.strip() == MULTILINE_MARKER:
            self._block = []
        else:
            self._output.log(line)

    def _in_block(self, text: str) -> None:
        assert self._block is not None
        if text.strip() == MULTILINE_MARKER:
            body, self._block = "\n".join(self._block), None
            self._settle(body, "the PlanQK:Job:MultilineResult block")
            return
        self._block_bytes += len(text) + 1
        if self._block_bytes > MAX_RESULT_BYTES:
            self._block = None
            self.error = f"the result is larger than {MAX_RESULT_BYTES} bytes"
            return
        self._block.append(text)

    def _interim(self, line: str, payload: str) -> None:
        try:
            value = _parse(payload)
        except ValueError as exc:
            self._output.log(line)
            self._output.log(
                f"[qrt] not an interim result: the text after the marker is not JSON: {exc}"
            )
            return
        self._output.event(EventKind.INTERIM, data=json.dumps(value))

    def _settle(self, payload: str, where: str) -> None:
        if len(payload) > MAX_RESULT_BYTES:
            self.error = f"the result is larger than {MAX_RESULT_BYTES} bytes"
            return
        try:
            self.result = json.dumps(_parse(payload))
        except ValueError as exc:
            self.error = f"the result after {where} is not valid JSON: {exc}"

    def finish(self) -> None:
        """The output ended: an unterminated result block is an error."""
        if self._block is not None:
            self._block = None
            self.error = "the PlanQK:Job:MultilineResult block was never closed"
