"""PlanQK's stdout markers: interim results, and the result of a one-shot program.

- `PlanQK:Job:InterimResult: {json}` on one line: an interim result (repeatable);
- `PlanQK:Job:Result: {json}` on one line: the result; only the first one counts;
- a block of lines between two `PlanQK:Job:MultilineResult` lines: the result as well.

The space after a marker's colon is optional. Every other line is log. What a marker carries
follows qrt's rule for results (`qrt_common.results`): strict JSON, within its size limit; a
result that breaks it fails the execution, an interim result that does stays a log line, with a
note saying why.
"""

from __future__ import annotations

import json
from typing import Any

from qrt_common.results import ResultLimits, refusal, size_refusal, text_bytes

from .runner import JobOutput

INTERIM_MARKER = "PlanQK:Job:InterimResult:"
RESULT_MARKER = "PlanQK:Job:Result:"
MULTILINE_MARKER = "PlanQK:Job:MultilineResult"


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

    def __init__(
        self, output: JobOutput, *, takes_result: bool, limits: ResultLimits | None = None
    ) -> None:
        self._output = output
        self._takes_result = takes_result
        self._limits = limits or ResultLimits()
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
        self._block_bytes += text_bytes(text) + 1
        too_large = size_refusal(self._block_bytes, interim=False, limits=self._limits)
        if too_large is not None:
            self._block = None
            self.error = too_large
            return
        self._block.append(text)

    def _interim(self, line: str, payload: str) -> None:
        text, reason = self._strict(
            payload, interim=True, subject="it", not_json="the text after the marker is not JSON"
        )
        if text is None:
            self._output.log(line)
            self._output.log(f"[qrt] not an interim result: {reason}")
            return
        self._output.interim(text)

    def _settle(self, payload: str, where: str) -> None:
        not_json = f"the result after {where} is not valid JSON"
        self.result, self.error = self._strict(
            payload, interim=False, subject="the result", not_json=not_json
        )

    def _strict(
        self, payload: str, *, interim: bool, subject: str, not_json: str
    ) -> tuple[str, None] | tuple[None, str]:
        """The compact JSON text of `payload`, or why it is not one qrt keeps (a reason about
        `subject`, or `not_json` and why)."""
        limits = self._limits
        too_large = size_refusal(
            text_bytes(payload), interim=interim, limits=limits, subject=subject
        )
        if too_large is not None:
            return None, too_large
        try:
            text = json.dumps(_parse(payload))
        except ValueError as exc:
            return None, f"{not_json}: {exc}"
        reason = refusal(text, interim=interim, limits=limits, subject=subject)
        return (text, None) if reason is None else (None, reason)

    def finish(self) -> None:
        """The output ended: an unterminated result block is an error."""
        if self._block is not None:
            self._block = None
            self.error = "the PlanQK:Job:MultilineResult block was never closed"
