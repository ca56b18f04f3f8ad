"""A job's stream: when the job runs again the client passes on the platform's notice, so a
caller can tell the earlier attempt's interim results from the last one's; what only looks like
a notice is an interim result; a key revoked mid-stream is Unauthorized."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qrt_client import Attempt, Client, Interim, Log, Result, Unauthorized
from qrt_client.streams import _attempt_of, _value
from tests.client.conftest import member_key
from tests.support.dev import DevServer
from tests.support.programs import merge_programs
from tests.support.waiting import eventually_sync


@pytest.fixture
def own_dev(tmp_path: Path) -> Iterator[DevServer]:
    server = DevServer(tmp_path / "data", merge_programs(tmp_path / "programs"))
    server.start()
    yield server
    server.kill()


def test_a_job_cut_off_by_a_restart_streams_its_second_attempt_after_a_notice(own_dev: DevServer):
    with Client(own_dev.url) as client:
        job = client.run("sleeper", {"seconds": 600, "ticks": 300})
        stream = job.stream(logs=False)
        assert next(stream) == Interim({"tick": 0})
        stream.close()
    assert own_dev.stop(signal.SIGTERM) == 0
    own_dev.start()
    with Client(own_dev.url) as client:
        job = client.job(job.id)
        eventually_sync(
            lambda: job.info().attempt, "attempt 2 runs", until=lambda a: a == 2, timeout=60
        )
        events = job.stream()
        seen = []
        for event in events:
            if not isinstance(event, Log):
                seen.append(event)
            if seen[-2:] == [Interim({"tick": 0}), Interim({"tick": 1})] and len(seen) > 2:
                break
        events.close()
        notice = next(e for e in seen if isinstance(e, Attempt))
        before = seen[: seen.index(notice)]
        assert notice.attempt == 2 and before and all(isinstance(e, Interim) for e in before)
        assert seen[seen.index(notice) + 1] == Interim({"tick": 0})
        assert not any(isinstance(e, Result) for e in seen)
        assert "[qrt] attempt 2" in job.logs() and job.logs(attempt=2).startswith("[qrt] attempt 2")
        job.cancel()


NOTICE_LOOKALIKES = [
    {"__qrt__": {"attempt": "not-a-number"}},
    {"__qrt__": {"attempt": True}},
    {"__qrt__": {"attempt": 0, "reason": "zero"}},
    {"__qrt__": {"attempt": 2, "reason": 5}},
    {"__qrt__": {"attempt": 2, "by": "a program"}},
    {"__qrt__": ["attempt", 2]},
    {"__qrt__": {"attempt": 2.5}},
]
"""What a program may publish that looks like the platform's notice of another attempt."""


def lookalike_program(directory: Path) -> Path:
    """A program that tries to publish every NOTICE_LOOKALIKES (counting the refusals), then
    publishes and returns how many were refused."""
    directory.mkdir()
    (directory / "program.py").write_text(
        "import json\n\n\ndef main(backend, user_messenger):\n"
        "    refused = 0\n"
        f"    for value in json.loads({json.dumps(json.dumps(NOTICE_LOOKALIKES))}):\n"
        "        try:\n"
        "            user_messenger.publish(value)\n"
        "        except ValueError:\n"
        "            refused += 1\n"
        "    user_messenger.publish({'refused': refused})\n"
        "    return refused\n"
    )
    return directory


def test_the_platform_refuses_a_published_lookalike_of_a_notice(client: Client, tmp_path: Path):
    # A program's {"__qrt__": ...} would make clients drop what came before it, as if its
    # executor had been lost: publish refuses it, and the stream has only the job's own frames.
    program = client.programs.upload(lookalike_program(tmp_path / "lookalikes"))
    job = client.run(program.id)
    refused = len(NOTICE_LOOKALIKES)
    assert job.result(timeout=120) == refused
    events = [e for e in job.stream() if not isinstance(e, Log)]
    assert events == [Interim({"refused": refused}), Result(refused)]


@pytest.mark.parametrize("lookalike", NOTICE_LOOKALIKES)
def test_a_frame_that_only_looks_like_a_notice_is_an_interim_result(lookalike: Any):
    # Whatever a platform relays (an older one let programs publish these), the client takes
    # only the notice's exact shape for one, and never raises on the rest.
    text = json.dumps(lookalike)
    assert _attempt_of(text) is None
    assert _value(text) == lookalike
    notice = json.dumps({"__qrt__": {"attempt": 2, "reason": None}})
    assert _attempt_of(notice) == Attempt(attempt=2, reason=None)


def test_a_key_revoked_while_its_job_is_followed_ends_the_stream_unauthorized(secured):
    server, admin_key = secured
    key, key_id = member_key(server, admin_key, "erin", "lab/team/streams")
    with Client(server.url, key) as client:
        job = client.run(
            "sleeper", {"seconds": 600, "ticks": 300}, hub="lab", group="team", project="streams"
        )
        stream = job.stream(logs=False)
        assert next(stream) == Interim({"tick": 0})
        with httpx.Client(base_url=server.url) as admin:
            revoked = admin.delete(
                f"/admin/keys/{key_id}", headers={"Authorization": f"Bearer {admin_key}"}
            )
            assert revoked.status_code == 204, revoked.text
            with pytest.raises(Unauthorized) as refused:
                for _ in stream:
                    pass
            assert refused.value.status == 401 and key not in str(refused.value)
            admin.post(f"/jobs/{job.id}/cancel", headers={"Authorization": f"Bearer {admin_key}"})


def test_work_that_names_no_instance_goes_to_the_callers_one_instance(secured, tmp_path: Path):
    # A member of one instance only, who may not submit in the default one: a submit or an
    # upload that names none goes there, as a Service API execution does; one who belongs to
    # two must choose (403 for the default instance, naming it).
    server, admin_key = secured
    key, _ = member_key(server, admin_key, "frank", "solo/team/one")
    with Client(server.url, key) as client:
        job = client.run("hello-quantum", {"greeting": "hi"})
        assert job.result(timeout=120) is not None
        info = client.job(job.id).info()
        assert (info.hub, info.group, info.project) == ("solo", "team", "one")
        source = tmp_path / "mine"
        source.mkdir()
        (source / "program.py").write_text("def main(backend, user_messenger):\n    return 1\n")
        assert client.programs.upload(source).owner == "solo/team/one"
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {admin_key}"}) as a:
        assert a.post("/admin/instances", json={"name": "solo/team/two"}).status_code == 201
        joined = a.put("/admin/instances/solo/team/two/members/frank", json={"role": "member"})
        assert joined.status_code == 200, joined.text
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as frank:
        refused = frank.post(
            "/jobs", json={"programId": "hello-quantum", "params": {"greeting": "hi"}}
        )
        assert refused.status_code == 403 and "ibm-q/open/main" in refused.text, refused.text
