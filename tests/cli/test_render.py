"""What the client commands show of results: counts found where Qiskit puts them, as tables with
bars; anything else as JSON."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import numpy as np
from rich.console import Console

from qrt_cli import render


def shown(value: object) -> str:
    out = Console(file=io.StringIO(), width=100)
    render.show_value(out, "result", value)
    text: str = out.file.getvalue()  # type: ignore[attr-defined]
    return text


def test_counts_are_bit_strings_or_hex_to_counts():
    assert render.is_counts({"00": 3, "11": 0, "0x3": 1, "01 10": 2})
    assert not render.is_counts({"tick": 1})
    assert not render.is_counts({"00": -1})
    assert not render.is_counts({"00": 1.5})
    assert not render.is_counts({"00": True})
    assert not render.is_counts({})


def test_counts_are_found_in_a_result_dict_and_a_qiskit_result():
    result = {"results": [{"data": {"counts": {"0x0": 5}}, "header": {"name": "bell"}},
                          {"data": {"counts": {"0x3": 7}}}]}  # fmt: skip
    assert render.counts_in(result) == [("experiment 0 (bell)", {"0x0": 5}),
                                        ("experiment 1", {"0x3": 7})]  # fmt: skip
    assert render.counts_in({"iteration": 1, "counts": {"1": 2}}) == [("counts", {"1": 2})]
    assert render.counts_in("All done!") == []


def test_a_counts_table_is_most_frequent_first_with_shares_and_bars():
    text = shown({"00": 250, "11": 750})
    rows = [line.split() for line in text.splitlines() if line.startswith(("00", "11"))]
    assert [r[:3] for r in rows] == [["11", "750", "75.0%"], ["00", "250", "25.0%"]]
    assert len(rows[0][3]) == render.BAR_WIDTH and len(rows[1][3]) == render.BAR_WIDTH // 3


def test_other_values_are_json_even_with_arrays_and_complex_numbers():
    text = shown({"energy": complex(1, 2), "values": np.arange(2)})
    assert text.startswith("result: {") and "energy" in text
    assert render.to_json({"when": datetime(2026, 1, 1, tzinfo=UTC)}, None) == (
        '{"when": "2026-01-01T00:00:00+00:00"}'
    )
