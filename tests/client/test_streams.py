"""A job's stream when the job runs again: the client passes on the platform's notice, so a
caller can tell the earlier attempt's interim results from the last one's."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from qrt_client import Attempt, Client, Interim, Log, Result
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
