"""A bundled program's shots checked, and Aer's failures turned into the job's reason."""

from __future__ import annotations

import pytest

from qrt_common.backends import MAX_SHOTS
from qrt_common.errors import InvalidInput
from qrt_common.simulation import checked_shots, failure


@pytest.mark.parametrize("shots", [1, MAX_SHOTS])
def test_shots_from_one_to_the_most_pass(shots):
    assert checked_shots(shots) == shots


@pytest.mark.parametrize("shots", [-5, 0, MAX_SHOTS + 1, 1.0, "10", None, True])
def test_other_shots_are_refused_naming_the_field(shots):
    with pytest.raises(InvalidInput) as caught:
        checked_shots(shots, "params.pubs[0][2]")
    assert caught.value.field == "params.pubs[0][2]"
    assert str(caught.value).startswith("params.pubs[0][2]: shots must be an integer from 1 to")


@pytest.mark.parametrize(
    "status",
    [
        "ERROR: Cannot allocate memory by posix_memalign",
        "Aer simulation failed: ERROR: std::bad_alloc",
    ],
)
def test_a_failed_allocation_is_caused_by_a_memory_error(status):
    error = failure(status)
    assert isinstance(error.__cause__, MemoryError)
    assert str(error).count("Aer simulation failed") == 1


def test_another_failure_keeps_aers_words_on_one_line():
    error = failure("ERROR:  [Experiment 0] invalid\n parameters")
    assert str(error) == "Aer simulation failed: ERROR: [Experiment 0] invalid parameters"
    assert error.__cause__ is None
