"""The one backoff: its pauses, and `until_available`, which retries only what is unavailable."""

from __future__ import annotations

import itertools
import logging

import pytest

from qrt_common.errors import BusUnavailable, Conflict, StoreUnavailable, Unavailable
from qrt_common.retry import Backoff, until_available

QUICK = Backoff(first=0.001, longest=0.004)
"""Pauses short enough that a test of retrying does not wait."""


def test_pauses_double_from_the_first_up_to_the_longest():
    pauses = list(itertools.islice(Backoff(), 8))
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_a_backoff_without_tries_goes_on_forever():
    assert len(list(itertools.islice(Backoff(0.1, 0.1), 1000))) == 1000


def test_factor_and_tries_shape_the_pauses():
    assert list(Backoff(1, 100, factor=3, tries=5)) == [1, 3, 9, 27, 81]
    assert list(Backoff(0.1, 0.25, factor=2, tries=4)) == [0.1, 0.2, 0.25, 0.25]
    assert list(Backoff(2, 2, factor=1, tries=3)) == [2, 2, 2]
    assert list(Backoff(tries=0)) == []


def test_a_backoff_can_be_iterated_again_from_the_start():
    backoff = Backoff(1, 8, tries=3)
    assert list(backoff) == list(backoff) == [1, 2, 4]


class Flaky:
    """An attempt that raises each of `errors` in turn, then returns `value`."""

    def __init__(self, errors: list[Exception], value: object = "done") -> None:
        self.errors, self.value, self.calls = list(errors), value, 0

    async def __call__(self) -> object:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value


async def test_unavailable_is_retried_until_the_attempt_returns_its_value(caplog):
    attempt = Flaky([StoreUnavailable("db down"), BusUnavailable("broker down")], value=42)
    with caplog.at_level(logging.WARNING, logger="qrt_common.retry"):
        assert await until_available(attempt, what="the widget", backoff=QUICK) == 42
    assert attempt.calls == 3
    warnings = [r.getMessage() for r in caplog.records if r.name == "qrt_common.retry"]
    assert len(warnings) == 2
    assert (
        warnings[0].startswith("the widget unavailable, retrying in") and "db down" in warnings[0]
    )


async def test_an_attempt_that_succeeds_at_once_is_called_once():
    attempt = Flaky([])
    assert await until_available(attempt, what="x", backoff=QUICK) == "done"
    assert attempt.calls == 1


@pytest.mark.parametrize("error", [Conflict("taken"), ValueError("bad"), RuntimeError("boom")])
async def test_any_other_error_goes_through_at_once(error):
    attempt = Flaky([error, error])
    with pytest.raises(type(error)):
        await until_available(attempt, what="x", backoff=QUICK)
    assert attempt.calls == 1


async def test_another_error_after_unavailable_ones_goes_through():
    attempt = Flaky([StoreUnavailable("down"), Conflict("taken")])
    with pytest.raises(Conflict):
        await until_available(attempt, what="x", backoff=QUICK)
    assert attempt.calls == 2


async def test_a_bounded_backoff_ends_with_a_last_try_that_decides():
    failing = Flaky([Unavailable(f"down {n}") for n in range(10)])
    with pytest.raises(Unavailable, match="down 3"):
        await until_available(failing, what="x", backoff=Backoff(0.001, 0.001, tries=3))
    assert failing.calls == 4
    recovering = Flaky([Unavailable("down")] * 3, value="up")
    assert await until_available(recovering, what="x", backoff=Backoff(0.001, tries=3)) == "up"
    assert recovering.calls == 4


async def test_with_no_tries_left_the_attempt_is_made_once():
    attempt = Flaky([Unavailable("down")])
    with pytest.raises(Unavailable):
        await until_available(attempt, what="x", backoff=Backoff(tries=0))
    assert attempt.calls == 1
