"""qrt's rule for results and interim results: strict JSON (no NaN, no Infinity), within the
size limits of the settings."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from qrt_common.results import (
    NOTICE_KEY,
    ResultLimits,
    non_finite,
    refusal,
    size_refusal,
    text_bytes,
)
from qrt_common.settings import Settings

NO_NAN = (
    "JSON has no NaN or Infinity (strict parsers refuse them): send null or a string in its place"
)
LIMITS = ResultLimits(result_bytes=100, interim_bytes=50)


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ({"stderr": math.inf, "chisq": math.nan}, ("Infinity", "$.stderr")),
        ({"chisq": math.nan, "stderr": math.inf}, ("NaN", "$.chisq")),
        ([1, 2, [3, -math.inf]], ("-Infinity", "$[2][1]")),
        ({"a": [1, {"b c": math.nan}]}, ("NaN", '$.a[1]["b c"]')),
        ({"1x": {"ok": [float("1e999")]}}, ("Infinity", '$["1x"].ok[0]')),
        (math.nan, ("NaN", "$")),
        ({"note": "NaN and Infinity", "x": 1.5, "n": None}, None),
    ],
)
def test_the_first_non_finite_number_and_where_it_sits(value, found):
    assert non_finite(value) == found


def test_refusal_names_the_number_and_its_path():
    text = json.dumps({"stderr": math.inf, "chisq": math.nan})
    assert (
        refusal(text, interim=False, limits=LIMITS)
        == f"the result holds Infinity at $.stderr; {NO_NAN}"
    )
    assert (
        refusal(text, interim=True, limits=LIMITS)
        == f"an interim result holds Infinity at $.stderr; {NO_NAN}"
    )
    assert (
        refusal(text, interim=True, limits=LIMITS, subject="it")
        == f"it holds Infinity at $.stderr; {NO_NAN}"
    )


@pytest.mark.parametrize(
    "text", ['{"note": "NaN, Infinity"}', '["-Infinity"]', "[1, 2.5e300]", '"x"']
)
def test_strict_json_passes_even_when_strings_spell_nan(text):
    assert refusal(text, interim=False, limits=LIMITS) is None


def test_each_kind_of_result_has_its_size_limit_counted_in_utf8_bytes():
    assert text_bytes('"\u00e9"') == 4 and text_bytes('"e"') == 3
    fits, over = json.dumps("x" * 98), json.dumps("x" * 99)
    assert refusal(fits, interim=False, limits=LIMITS) is None
    assert refusal(over, interim=False, limits=LIMITS) == (
        "the result is larger than QRT_MAX_RESULT_BYTES (100 bytes): 101 bytes"
    )
    assert refusal(json.dumps("x" * 49), interim=True, limits=LIMITS) == (
        "an interim result is larger than QRT_MAX_INTERIM_BYTES (50 bytes): 51 bytes"
    )
    # Two-byte characters count twice.
    assert refusal(json.dumps("\u00e9" * 50, ensure_ascii=False), interim=False, limits=LIMITS)
    assert size_refusal(50, interim=True, limits=LIMITS) is None


def test_text_that_is_not_json_is_refused_when_it_could_hide_nan():
    assert refusal("[NaN", interim=False, limits=LIMITS) == (
        "the result is not JSON: Expecting ',' delimiter: line 1 column 5 (char 4)"
    )


def test_the_limits_are_settings_with_bounds(monkeypatch):
    for name in ("QRT_MAX_RESULT_BYTES", "QRT_MAX_INTERIM_BYTES"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().result_limits == ResultLimits(32 * 1024 * 1024, 1024 * 1024)
    monkeypatch.setenv("QRT_MAX_RESULT_BYTES", "2000")
    monkeypatch.setenv("QRT_MAX_INTERIM_BYTES", "1500")
    assert Settings().result_limits == ResultLimits(2000, 1500)
    # A result travels in one bus message, an interim result is one MongoDB document.
    for name, value in (("QRT_MAX_RESULT_BYTES", 49 << 20), ("QRT_MAX_INTERIM_BYTES", 9 << 20)):
        monkeypatch.setenv(name, str(value))
        with pytest.raises(ValidationError):
            Settings()
        monkeypatch.delenv(name)


def test_an_interim_result_may_not_hold_the_key_of_qrts_own_notices():
    # A program that published {"__qrt__": {"attempt": 2}} made clients drop the results it
    # sent before, as if its executor had been lost.
    forged = json.dumps({NOTICE_KEY: {"attempt": 2}})
    assert refusal(forged, interim=True, limits=LIMITS) == (
        "an interim result holds the key '__qrt__' at its top level, which qrt keeps for its "
        "own notices on results streams: use another key"
    )
    assert refusal(json.dumps({NOTICE_KEY: 1, "counts": {}}), interim=True, limits=LIMITS)
    # Deeper down, in a string, or in the final result (not on the stream's notice path) it is
    # the program's own data.
    for fine in ({"data": {NOTICE_KEY: 1}}, ["__qrt__"], {"note": "__qrt__"}):
        assert refusal(json.dumps(fine), interim=True, limits=LIMITS) is None
    assert refusal(forged, interim=False, limits=LIMITS) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json at all", "the result is not JSON: Expecting value"),
        ("[1, 2", "the result is not JSON: Expecting ',' delimiter"),
        ("[" * 1000 + "]" * 1000, "the result is nested too deeply"),
        ("1" * 4301, "the result is not JSON: Exceeds the limit (4300 digits)"),
    ],
    ids=["words", "cut-short", "nested-1000-deep", "a-4301-digit-integer"],
)
def test_a_result_no_client_could_read_back_is_refused(text, reason):
    """What a program sends past qrt's messenger (a raw frame) is read before it is kept: a
    client (qiskit-ibm-runtime's json.loads) must be able to read it back."""
    limits = ResultLimits(1 << 20, 1 << 20)
    found = refusal(text, interim=False, limits=limits)
    assert found is not None and found.startswith(reason), found
    assert refusal(json.dumps([[[1]]] * 10 + [10**4000]), interim=True, limits=limits) is None
