"""qrt's rule for results and interim results (`qrt_common.results`), the same for every kind
of program: strict JSON (no NaN, no Infinity) within QRT_MAX_RESULT_BYTES and
QRT_MAX_INTERIM_BYTES. A real executor runs real job processes and a real sandbox."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from qiskit_ibm_runtime import RuntimeDecoder

from qrt_common.jobs import JobStatus
from qrt_common.programs import planqk_input
from qrt_executor.runner import Outcome
from tests.executor.test_oneshot_and_template import one_shot
from tests.support.executors import LoneExecutor, Run

pytestmark = pytest.mark.asyncio(loop_scope="module")

KINDS = ["qiskit-runtime", "python-template", "one-shot"]
NO_NAN = (
    "JSON has no NaN or Infinity (strict parsers refuse them): send null or a string in its place"
)
RESULT_LIMIT, INTERIM_LIMIT = 4096, 2048


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def executor(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LoneExecutor]:
    lone = await LoneExecutor.started(tmp_path_factory.mktemp("executor"),
                                      max_result_bytes=RESULT_LIMIT,
                                      max_interim_bytes=INTERIM_LIMIT)  # fmt: skip
    yield lone
    await lone.close()


def loads(text: str) -> str:
    """A Python expression that reads `text` as Python's json does (NaN and Infinity too)."""
    return f"__import__('json').loads({text!r})"


async def shaped(
    executor: LoneExecutor, kind: str, *, interims: tuple[str, ...] = (), result: str | None
) -> Run:
    """A job of `kind` that publishes each of `interims` and then `result` (JSON texts, as
    Python's json writes them: NaN and Infinity are allowed). A Qiskit Runtime program catches
    and logs an interim result `publish` refuses."""
    if kind == "qiskit-runtime":
        params = {"interims": [loads(i) for i in interims], "catch": True,
                  "result": None if result is None else loads(result)}  # fmt: skip
        return await executor.run("shaper", json.dumps(params))
    lines = [f"PlanQK:Job:InterimResult:{i}" for i in interims]
    if kind == "python-template":
        shape = {"respond": "shape", "lines": lines, "result": loads(result or "null")}
        return await executor.run("planqk-modes", planqk_input({}, shape))
    lines += [] if result is None else [f"PlanQK:Job:Result:{result}"]
    return await executor.run("oneshot-modes", planqk_input({}, {"print": "lines", "lines": lines}))


def refused_interim(kind: str, reason: str) -> str:
    """How the log of a job of `kind` shows an interim result refused for `reason` ("holds
    NaN at $.x; ..." or "is larger than ...")."""
    if kind == "qiskit-runtime":
        return f"refused: an interim result {reason}"
    return f"[qrt] not an interim result: it {reason}"


@pytest.mark.parametrize(
    ("result", "where"),
    [
        ('{"stderr": Infinity, "chisq": NaN}', "Infinity at $.stderr"),
        ('{"a": [1, {"b c": -Infinity}]}', '-Infinity at $.a[1]["b c"]'),
        ('{"x": 1e999}', "Infinity at $.x"),
        ("NaN", "NaN at $"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
async def test_a_result_holding_nan_or_infinity_fails_the_job(executor, kind, result, where):
    run = await shaped(executor, kind, result=result)
    assert run.outcome == Outcome(JobStatus.FAILED, f"the result holds {where}; {NO_NAN}"), run.log
    assert run.results == []
    assert "Traceback" not in run.log


@pytest.mark.parametrize("kind", KINDS)
async def test_an_interim_result_holding_nan_is_refused_and_the_job_goes_on(executor, kind):
    run = await shaped(executor, kind, interims=('{"step": 1}', '{"x": NaN}', '{"step": 2}'),
                       result='{"done": true}')  # fmt: skip
    assert run.outcome == Outcome(JobStatus.COMPLETED), run.log
    assert run.interims == [{"step": 1}, {"step": 2}]
    assert refused_interim(kind, f"holds NaN at $.x; {NO_NAN}") in run.log
    assert run.results == [{"done": True}]


NO_SURROGATE = (
    "JSON text must be Unicode (UTF-8 cannot carry half of a surrogate pair): send whole "
    "characters or bytes"
)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_lone_surrogate_in_a_result_or_interim_result_is_refused(executor, kind):
    # JSON escapes of half a pair: Python's json reads them into a string UTF-8 cannot carry.
    run = await shaped(executor, kind, interims=('{"x": "\\ud800"}', '["\\ud83d\\ude00"]'),
                       result='{"y": ["ok", "\\udfff"]}')  # fmt: skip
    assert run.outcome == Outcome(
        JobStatus.FAILED, f"the result holds a lone surrogate at $.y[1]; {NO_SURROGATE}"
    ), run.log
    assert run.interims == [["\U0001f600"]]  # a whole pair is a character
    assert refused_interim(kind, f"holds a lone surrogate at $.x; {NO_SURROGATE}") in run.log


async def test_a_refused_publish_raises_a_value_error_a_program_may_leave_uncaught(executor):
    run = await executor.run("shaper", json.dumps({"interims": ["{'x': math.nan}"]}))
    assert run.outcome == Outcome(JobStatus.FAILED, f"an interim result holds NaN at $.x; {NO_NAN}")
    assert "Traceback (most recent call last)" in run.log and "publish" in run.log


async def test_numbers_in_numpy_arrays_and_strings_naming_nan_are_kept(executor):
    # RuntimeEncoder carries numeric arrays in binary: their NaN is no JSON number.
    expression = "{'evs': np.array([math.nan, 1.0]), 'note': 'NaN or Infinity'}"
    run = await executor.run("shaper", json.dumps({"result": expression}))
    assert run.outcome == Outcome(JobStatus.COMPLETED), run.log
    final = json.loads(run.result_text or "", cls=RuntimeDecoder)
    assert math.isnan(final["evs"][0]) and final["note"] == "NaN or Infinity"


async def test_what_bypasses_publish_is_held_to_the_rule_by_the_executor(executor):
    frames = [["interim", '{"x": NaN}'], ["interim", '{"ok": 1}'], ["final", '{"y": Infinity}']]
    run = await executor.run("shaper", json.dumps({"frames": frames}))
    assert run.outcome == Outcome(JobStatus.FAILED, f"the result holds Infinity at $.y; {NO_NAN}")
    assert run.interims == [{"ok": 1}] and run.results == []
    assert f"[qrt] an interim result holds NaN at $.x; {NO_NAN}" in run.log


async def test_a_frame_no_client_could_read_back_is_refused_by_the_executor(executor):
    deep = "[" * 1000 + "]" * 1000
    frames = [["interim", deep], ["interim", "[1, 2"], ["final", "not json at all"]]
    run = await executor.run("shaper", json.dumps({"frames": frames}))
    assert run.outcome.status is JobStatus.FAILED
    assert (run.outcome.reason or "").startswith("the result is not JSON: Expecting value")
    assert run.interims == [] and run.results == []
    assert "[qrt] an interim result is nested too deeply" in run.log


async def test_a_failures_body_is_held_to_the_rule_too(executor):
    frames = [["failure", '{"code": "500", "detail": NaN}']]
    run = await executor.run("shaper", json.dumps({"frames": frames}))
    assert run.outcome == Outcome(JobStatus.FAILED, "the program says it failed")
    assert run.results == []
    assert f"[qrt] the failure's body is dropped: the result holds NaN at $.detail; {NO_NAN}" in (
        run.log
    )


def string_of(size: int) -> str:
    """A JSON string of `size` bytes."""
    return json.dumps("x" * (size - 2))


@pytest.mark.parametrize("kind", KINDS)
async def test_one_result_limit_for_every_kind(executor, kind):
    over = await shaped(executor, kind, result=string_of(RESULT_LIMIT + 1))
    assert over.outcome == Outcome(JobStatus.FAILED, "the result is larger than "
                                   "QRT_MAX_RESULT_BYTES (4096 bytes): 4097 bytes"), over.log  # fmt: skip
    assert over.results == []
    fits = await shaped(executor, kind, result=string_of(RESULT_LIMIT))
    assert fits.outcome == Outcome(JobStatus.COMPLETED), fits.log
    assert fits.results == [json.loads(string_of(RESULT_LIMIT))]


@pytest.mark.parametrize("kind", KINDS)
async def test_one_interim_limit_for_every_kind(executor, kind):
    run = await shaped(executor, kind, result='"ok"',
                       interims=(string_of(INTERIM_LIMIT + 1), string_of(INTERIM_LIMIT)))  # fmt: skip
    assert run.outcome == Outcome(JobStatus.COMPLETED), run.log
    assert run.interims == [json.loads(string_of(INTERIM_LIMIT))]
    reason = "is larger than QRT_MAX_INTERIM_BYTES (2048 bytes): 2049 bytes"
    assert refused_interim(kind, reason) in run.log


async def test_a_multiline_result_over_the_limit_fails_the_execution(executor):
    marker = "PlanQK:Job:MultilineResult"
    lines = [marker, "[", string_of(RESULT_LIMIT), "]", marker]
    run = await executor.run("oneshot-modes", planqk_input({}, {"print": "lines", "lines": lines}))
    assert run.outcome.status is JobStatus.FAILED
    assert (run.outcome.reason or "").startswith(
        "the result is larger than QRT_MAX_RESULT_BYTES (4096 bytes): "
    )


async def test_a_result_frame_over_the_limit_fails_the_job_whatever_sent_it(executor):
    frames = [["final", string_of(RESULT_LIMIT + 1)]]
    run = await executor.run("shaper", json.dumps({"frames": frames}))
    assert run.outcome == Outcome(
        JobStatus.FAILED, "the result is larger than QRT_MAX_RESULT_BYTES (4096 bytes): 4097 bytes"
    )


async def test_an_endless_frame_is_cut_rather_than_held(executor):
    # Longer than any result may be, escaped in a frame: read in pieces, none of them a frame.
    frames = [["final", string_of(400_000)]]
    run = await executor.run("shaper", json.dumps({"frames": frames}))
    assert run.results == []
    assert "[qrt] ignored a malformed frame from the program process" in run.log


async def test_a_one_shot_result_may_be_as_large_as_a_qiskit_programs():
    # By default a result may have 32 MiB, whatever the kind (one-shot programs had 8 MiB).
    text = string_of(9 << 20)
    run = await one_shot({"print": "lines", "lines": [f"PlanQK:Job:Result:{text}"]})
    assert run.outcome == Outcome(JobStatus.COMPLETED)
    assert len(run.result_text or "") == 9 << 20
