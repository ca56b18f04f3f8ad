"""How the client commands show what the platform answers: JSON for scripts (`--output json`),
tables and counts as bar charts for people (rich)."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from qrt_client import BackendDetail, JobInfo
from qrt_client.codec import to_json as encoded

BAR_WIDTH = 40
"""Characters of the longest bar of a counts chart."""
OUTCOME = re.compile(r"[01]+( [01]+)*|0x[0-9a-fA-F]+")
"""An outcome as Qiskit writes counts: bit strings (registers apart by spaces) or hex."""


def plain(value: Any) -> Any:
    """`value` as JSON-ready data: dataclasses as dicts, datetimes as ISO 8601 (what the
    platform's circuits, arrays and complex numbers become is RuntimeEncoder's business)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


UNSHOWN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Zl", "Zp"})
"""Unicode categories shown escaped in text the platform stores for people (a description, a
parameter's name): control characters, among them ESC that starts a terminal escape sequence
(colours, cursor moves, a window title), format characters such as the bidirectional overrides,
private-use and surrogate code points, and line separators."""

_KEPT_LINE_BREAKS = frozenset("\n\t")


def shown(text: str, *, multiline: bool = True) -> str:
    """`text` for a terminal: each character of UNSHOWN_CATEGORIES written as Python writes it
    in a string literal (`\\x1b`, `\\u202e`), except newline and tab in `multiline` text, so
    that text a program's uploader wrote cannot drive the reader's terminal."""
    if text.isprintable():  # the common case, without a character-by-character copy
        return text
    kept = _KEPT_LINE_BREAKS if multiline else frozenset()
    return "".join(
        char
        if char in kept or unicodedata.category(char) not in UNSHOWN_CATEGORIES
        else repr(char)[1:-1]
        for char in text
    )


_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def snake_keys(body: Mapping[str, Any]) -> dict[str, Any]:
    """`body` (the platform's JSON, camelCase) with its own keys in snake_case, as `-o json`
    names every field (the `qrt_client` models' names); nested values are left as they are
    (a program's parameters are its author's)."""
    return {_HUMP.sub("_", key).lower(): value for key, value in body.items()}


def to_json(value: Any, indent: int | None = 2) -> str:
    """`value` as JSON text, results encoded as the platform encodes them (RuntimeEncoder)."""
    return encoded(plain(value), indent=indent, ensure_ascii=False)


OFF_TERMINAL_WIDTH = 200
"""Width of tables off a terminal (COLUMNS unset): rich's 80 cut a job list's statuses to
`Comple…`, which `grep Completed` then missed."""


def console() -> Console:
    """A console on the process's stdout now (tests swap it); no colour off a terminal, and
    tables as wide as their rows need up to OFF_TERMINAL_WIDTH."""
    wide = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    return Console(highlight=False, soft_wrap=True, width=OFF_TERMINAL_WIDTH if wide else None)


def is_counts(value: Any) -> bool:
    """True for a counts dict: outcomes (bit strings or hex) to non-negative integer counts."""
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(k, str) and OUTCOME.fullmatch(k) for k in value)
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value.values())
    )


def counts_in(value: Any) -> list[tuple[str, Mapping[str, int]]]:
    """The counts a result holds, with a title each: the value itself, its "counts" entry, or
    the counts of each experiment of a `Result.to_dict()` ("results"[i]["data"]["counts"])."""
    if is_counts(value):
        return [("counts", value)]
    if not isinstance(value, Mapping):
        return []
    if is_counts(value.get("counts")):
        return [("counts", value["counts"])]
    found: list[tuple[str, Mapping[str, int]]] = []
    experiments = value.get("results")
    if isinstance(experiments, Sequence) and not isinstance(experiments, str):
        for number, experiment in enumerate(experiments):
            data = experiment.get("data") if isinstance(experiment, Mapping) else None
            if isinstance(data, Mapping) and is_counts(data.get("counts")):
                header = experiment.get("header") or {}
                name = header.get("name") if isinstance(header, Mapping) else None
                found.append((f"experiment {number}" + (f" ({name})" if name else ""),
                              data["counts"]))  # fmt: skip
    return found


def counts_table(title: str, counts: Mapping[str, int]) -> Table:
    """Outcomes by count (most frequent first) with their share and a bar."""
    total = sum(counts.values()) or 1
    most = max(counts.values()) or 1
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    table.add_column("outcome")
    table.add_column("count", justify="right")
    table.add_column("share", justify="right")
    table.add_column("")
    for outcome, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        bar = "█" * max(1 if count else 0, round(BAR_WIDTH * count / most))
        table.add_row(escape(outcome), str(count), f"{100 * count / total:.1f}%", bar)
    return table


def show_value(out: Console, label: str, value: Any) -> None:
    """A result or interim result: counts as tables with bars, anything else as JSON."""
    tables = counts_in(value)
    rest = value
    if tables and isinstance(value, Mapping) and "counts" in value and len(tables) == 1:
        rest = {k: v for k, v in value.items() if k != "counts"}
    elif tables:
        rest = None
    if rest is not None and rest != {}:
        text = rest if isinstance(rest, str) else to_json(rest, None)
        if len(text) > 100:
            text = to_json(rest)
        out.print(f"{label}: {escape(shown(text))}")
    elif not tables:
        out.print(f"{label}: {escape(to_json(rest, None))}")
    else:
        out.print(f"{label}:")
    for title, counts in tables:
        out.print(counts_table(title, counts))


def elapsed(info: JobInfo, now: datetime | None = None) -> float:
    """Seconds since the job was created: until it ended, or until now."""
    if info.created is None:
        return 0.0
    end = info.ended or now or datetime.now(UTC)
    return max(0.0, (end - info.created).total_seconds())


def status_line(info: JobInfo) -> str:
    """`<id>  <status>  <elapsed>` and the reason, if any."""
    # Printed as rich markup (a status line): a program's "[/]" must not be read as markup.
    reason = f"  ({escape(shown(info.reason, multiline=False))})" if info.reason else ""
    return f"{info.id}  {info.status}  {elapsed(info):.1f} s{reason}"


def jobs_table(jobs: Sequence[JobInfo], count: int) -> Table:
    """A job listing."""
    table = Table(box=None, pad_edge=False, caption=f"{len(jobs)} of {count}")
    table.add_column("id", no_wrap=True, min_width=36)  # whole, to be copied
    for column in ("program", "status", "backend", "created", "elapsed"):
        table.add_column(column)
    for job in jobs:
        created = job.created.strftime("%m-%d %H:%M:%S") if job.created else "-"
        table.add_row(job.id, job.program, job.status, job.backend, created,
                      f"{elapsed(job):.1f} s")  # fmt: skip
    return table


def key_values(pairs: Sequence[tuple[str, Any]]) -> Table:
    """Two columns, a name and its value, for `show`."""
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for name, value in pairs:
        cell = "-" if value is None or value == "" else value
        if isinstance(cell, datetime):
            cell = cell.isoformat()
        table.add_row(name, escape(shown(cell) if isinstance(cell, str) else to_json(cell, None)))
    return table


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def backend_detail(backend: BackendDetail) -> list[Table]:
    """`qrt backends show`: the backend's state and queue; for a device also its qubits,
    topology (coupled pairs as `a-b`), gates, a table of its qubits' calibration and one of
    its coupled pairs' two-qubit gate fidelities."""
    rows: list[tuple[str, Any]] = [
        ("name", backend.name),
        ("kind", "simulator" if backend.simulator else "device"),
        ("state", "online" if backend.online else "offline"),
        ("queue", f"{backend.queued} queued, {backend.running} running"),
    ]
    if not backend.simulator:
        rows[3:3] = [("qubits", None if backend.nqubits is None else str(backend.nqubits))]
        rows += [
            ("topology", " ".join(f"{a}-{b}" for a, b in backend.topology)),
            ("gates", " ".join(backend.gates)),
            ("last seen", backend.last_seen),
            ("calibrated", backend.calibrated_at),
        ]
    tables = [key_values(rows)]
    if backend.qubits:
        qubits = Table(title="qubits", title_justify="left", box=None, pad_edge=False)
        qubits.add_column("qubit", justify="right")
        for column in ("T1 (µs)", "T2 (µs)", "readout fidelity", "gate fidelity"):
            qubits.add_column(column, justify="right")
        for qubit in backend.qubits:
            qubits.add_row(str(qubit.qubit), _number(qubit.t1_us, 1), _number(qubit.t2_us, 1),
                           _number(qubit.readout_fidelity, 4),
                           _number(qubit.gate_fidelity, 4))  # fmt: skip
        tables.append(qubits)
    if backend.pairs:
        pairs = Table(title="two-qubit gates", title_justify="left", box=None, pad_edge=False)
        pairs.add_column("pair")
        pairs.add_column("fidelity", justify="right")
        for pair in backend.pairs:
            pairs.add_row(f"{pair.qubits[0]}-{pair.qubits[1]}", _number(pair.fidelity, 4))
        tables.append(pairs)
    return tables
