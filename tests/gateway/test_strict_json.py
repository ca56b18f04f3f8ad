"""Strict JSON out, even from old stored data: results and interim results stored with NaN or
Infinity (Python's json writes them; strict parsers refuse them) go out with each non-finite
number as null, through every route and stream that sends them."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from qrt_common.jobs import JobStatus
from qrt_gateway.strict import strict_json
from tests.support.programs import b64_zip_of

from .conftest import Harness

STORED_RESULT = '{"stderr": Infinity, "chisq": NaN, "ok": [1.5, -Infinity], "text": "NaN"}'
STRICT_RESULT = {"stderr": None, "chisq": None, "ok": [1.5, None], "text": "NaN"}
STORED_INTERIMS = ['{"step": 1, "energy": NaN}', '{"step": 2, "energy": -0.5}', "1e999"]
STRICT_INTERIMS: list[Any] = [{"step": 1, "energy": None}, {"step": 2, "energy": -0.5}, None]


def strictly(text: str | bytes) -> Any:
    """`text` read as a strict parser reads JSON: NaN and Infinity are errors."""

    def refuse(word: str) -> Any:
        raise ValueError(f"not JSON: {word}")

    return json.loads(text, parse_constant=refuse)


async def ended_job(gw: Harness) -> str:
    """An ended planqk-starter job whose stored result and interim results hold NaN and
    Infinity (as a store written before executors refused them may)."""
    job_id: str = (await gw.submit("planqk-starter"))["id"]
    await gw.move(job_id, JobStatus.RUNNING, JobStatus.COMPLETED)
    for index, data in enumerate(STORED_INTERIMS):
        assert await gw.store.add_interim(job_id, 1, index, data)
    assert await gw.store.set_result(job_id, STORED_RESULT)
    return job_id


async def test_results_and_interim_results_go_out_as_strict_json(gw: Harness):
    job_id = await ended_job(gw)
    base = f"/services/planqk-starter/{job_id}"
    async with gw.client.get(f"{base}/result") as response:
        assert strictly(await response.read()) == STRICT_RESULT
    async with gw.client.get(f"{base}/interim-results") as response:
        assert strictly(await response.read()) == STRICT_INTERIMS
    async with gw.client.get(f"{base}/interim-results?last=true") as response:
        assert strictly(await response.read()) is None  # 1e999: Infinity
    async with gw.client.get(f"/jobs/{job_id}/results") as response:
        # The test server's shape: the result's text inside a JSON string, strict inside too.
        assert strictly(strictly(await response.read())) == STRICT_RESULT


async def test_a_results_stream_sends_strict_json_frames(gw: Harness):
    job_id = await ended_job(gw)
    frames = []
    async with gw.client.ws_connect(f"/stream/jobs/{job_id}") as ws:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                frames.append(strictly(message.data))
    assert frames == [*STRICT_INTERIMS, STRICT_RESULT]


@pytest.mark.parametrize(
    ("stored", "sent"),
    [
        ('{"a": 1}', '{"a": 1}'),  # strict already: as stored
        ('{"a": NaN}', '{"a": null}'),
        ("[Infinity, -Infinity, 1e400]", "[null, null, null]"),
        ('"NaN and Infinity in a string"', '"NaN and Infinity in a string"'),
        ("not json", '"not json"'),
        # What an executor now refuses, but a store may hold: never a 500.
        ("[" * 1000 + "]" * 1000, json.dumps("[" * 1000 + "]" * 1000)),
        (
            '{"big": NaN, "pad": "' + "x" * 70_000 + '"}',
            '{"big": null, "pad": "' + "x" * 70_000 + '"}',
        ),
    ],
)
def test_strict_json_keeps_strict_text_and_nulls_non_finite_numbers(stored, sent):
    assert strict_json(stored) == sent
    strictly(strict_json(stored))


@pytest.mark.parametrize("word", ["NaN", "Infinity", "-Infinity"])
async def test_a_request_body_holding_non_finite_numbers_is_refused(gw: Harness, word):
    body = '{"programId": "noop", "params": {"x": ' + word + "}}"
    refused = await gw.call("POST", "/jobs", 400, data=body)
    assert refused["detail"] == (
        f"request body is not valid JSON: {word} is not a JSON number (send null or a string "
        "in its place)"
    )


async def test_metadata_a_program_file_gives_goes_out_strict(gw: Harness):
    files = {
        "program.py": "def main(backend, user_messenger, **kwargs):\n    pass\n",
        "program.json": '{"parameters": [{"name": "x", "default": NaN}], '
        '"backend_requirements": {"max_error": Infinity}}',
    }
    body = {"name": "odd", "data": b64_zip_of(files)}
    program_id = (await gw.call("POST", "/programs", 201, json=body))["id"]
    async with gw.client.get(f"/programs/{program_id}") as response:
        shown = strictly(await response.read())
    assert shown["parameters"] == [{"name": "x", "default": None}]
    assert shown["backendRequirements"] == {"max_error": None}
    async with gw.client.get("/programs?owner=ibm-q/open/main") as response:
        strictly(await response.read())


async def test_a_stored_lone_surrogate_goes_out_escaped_never_as_a_500(gw: Harness):
    # Executors refuse results holding half a surrogate pair; a store may hold older ones.
    stored = '{"x": "\\ud800"}'
    job_id: str = (await gw.submit("planqk-starter"))["id"]
    await gw.move(job_id, JobStatus.RUNNING, JobStatus.COMPLETED)
    assert await gw.store.add_interim(job_id, 1, 0, stored)
    assert await gw.store.set_result(job_id, stored)
    base = f"/services/planqk-starter/{job_id}"
    for path in (f"{base}/result", f"{base}/interim-results?last=true"):
        async with gw.client.get(path) as response:
            assert response.status == 200, path
            assert strictly((await response.read()).decode("utf-8")) == {"x": "\ud800"}, path
    async with gw.client.get(f"/jobs/{job_id}/results") as response:
        assert response.status == 200
        assert strictly(strictly((await response.read()).decode("utf-8"))) == {"x": "\ud800"}
    async with gw.client.ws_connect(f"/stream/jobs/{job_id}") as ws:
        frames = [message.data async for message in ws]
    assert [strictly(frame) for frame in frames] == [{"x": "\ud800"}, {"x": "\ud800"}]
    assert ws.close_code == aiohttp.WSCloseCode.OK
