"""qrt's rule for results and interim results: strict JSON (no NaN, no Infinity), within the
size limits of the settings."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import ValidationError

from qrt_common.results import (
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
