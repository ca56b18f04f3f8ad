"""The client commands (`qrt login|jobs|programs|backends`) against a running `qrt dev`: what they
print for people and for scripts (`--output json`), their exit codes, and their one-line errors."""

from __future__ import annotations

import functools
import json
import os
import re
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from qrt_cli import exits, remote
from qrt_cli.main import main
from qrt_client import AsyncClient
from tests.support.dev import DevServer, serving_with_keys
from tests.support.mesh import free_port
from tests.support.programs import ROOT
from tests.support.proxies import FlakyProxy
from tests.support.waiting import eventually_sync

QRT = [sys.executable, "-m", "qrt_cli"]


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines()]


Qrt = Callable[..., Ran]


@pytest.fixture
def dev(qrt_dev: DevServer) -> DevServer:
    """The session's `qrt dev`."""
    return qrt_dev


@pytest.fixture
def config_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty config directory, and no QRT_* from outside."""
    for name in list(os.environ):
        if name.startswith("QRT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config"


@pytest.fixture
def run(config_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> Qrt:
    """`qrt ARGS...` in this process, as the shell runs it: its exit code, stdout and stderr.
    Its client retries as often as by default, but without the seconds of backoff."""
    monkeypatch.setattr(remote, "AsyncClient", functools.partial(AsyncClient, first_pause=0.001))

    def qrt(*argv: str) -> Ran:
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return qrt


@pytest.fixture
def qrt(run: Qrt, dev: DevServer, monkeypatch: pytest.MonkeyPatch) -> Qrt:
    """`run`, talking to the module's `qrt dev` (QRT_URL)."""
    monkeypatch.setenv("QRT_URL", dev.url)
    return run


def submit(qrt: Qrt, *argv: str) -> str:
    ran = qrt("jobs", "submit", *argv, "-o", "json")
    assert ran.code == 0, ran.err
    job_id: str = ran.json()["id"]
    return job_id


def one_line_error(ran: Ran, code: int, *words: str) -> None:
    assert ran.code == code, (ran.out, ran.err)
    assert len(ran.err.strip().splitlines()) == 1, ran.err
    assert ran.err.startswith("qrt: ") and "Traceback" not in ran.err
    assert all(word in ran.err for word in words), ran.err


def test_login_keeps_profiles_in_a_private_config_file(
    run: Qrt, dev: DevServer, config_home: Path, monkeypatch
):
    ran = run("login", dev.url)
    assert ran.code == 0, ran.err
    config = config_home / "qrt" / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert run("backends", "list").code == 0  # the profile says where

    dead = f"http://127.0.0.1:{free_port()}"
    assert run("login", dead, "--profile", "dead", "--key", "k1", "--no-check").code == 0
    one_line_error(run("backends", "list"), exits.UNREACHABLE, dead)  # now the default
    assert run("backends", "list", "--profile", "default").code == 0
    monkeypatch.setenv("QRT_URL", dev.url)  # the environment wins over any profile
    assert run("backends", "list").code == 0
    one_line_error(run("backends", "list", "--profile", "nope"), exits.USAGE, "nope", "dead")
    text = config.read_text()
    assert 'default = "dead"' in text and '"k1"' in text and dev.url in text


def test_login_refuses_an_unreachable_platform_and_keeps_nothing(run: Qrt, config_home: Path):
    dead = f"http://127.0.0.1:{free_port()}"
    one_line_error(run("login", dead, "--key", "k"), exits.UNREACHABLE, dead)
    assert not (config_home / "qrt" / "config.toml").exists()


def test_submit_watch_shows_interims_as_counts_charts_and_the_result(qrt: Qrt):
    ran = qrt("jobs", "submit", "sample-program", "--params", '{"iterations": 2}', "--watch")
    assert ran.code == exits.OK, ran.err
    assert ran.out.count("interim: ") == 2
    assert "outcome" in ran.out and "share" in ran.out and "█" in ran.out
    assert "result: All done!" in ran.out
    last = ran.out.strip().splitlines()[-1].split()
    assert last[1] == "Completed" and last[3] == "s"  # id, status, elapsed seconds


def test_watch_with_json_output_is_one_event_a_line(qrt: Qrt):
    job_id = submit(qrt, "sample-program", "--params", '{"iterations": 3}')
    ran = qrt("jobs", "watch", job_id, "-o", "json")
    assert ran.code == exits.OK, ran.err
    events = ran.lines()
    kinds = [e["event"] for e in events]
    assert kinds[0] == "status" and kinds[-1] == "end" and kinds[-2] == "result"
    interims = [e["value"] for e in events if e["event"] == "interim"]
    assert [i["iteration"] for i in interims] == [0, 1, 2]
    assert all(sum(i["counts"].values()) > 0 for i in interims)
    assert events[-2]["value"] == "All done!"
    assert events[-1]["job"]["status"] == "Completed" and events[-1]["job"]["id"] == job_id
    assert any(e["event"] == "log" for e in events)


def test_a_watch_joined_late_still_gets_everything_and_result_reads_it(qrt: Qrt):
    job_id = submit(qrt, "hello-quantum", "--params", '{"greeting": "hi"}', "--tag", "late")
    assert qrt("jobs", "result", job_id, "--timeout", "120").code == 0
    watched = qrt("jobs", "watch", job_id)
    assert watched.code == 0 and "interim: hi" in watched.out and "Completed" in watched.out
    result = qrt("jobs", "result", job_id, "-o", "json").json()
    assert result["status"] == "Completed" and result["id"] == job_id
    assert result["result"] == watched_result(qrt, job_id)


def watched_result(qrt: Qrt, job_id: str) -> Any:
    events = qrt("jobs", "watch", job_id, "-o", "json").lines()
    return next(e["value"] for e in events if e["event"] == "result")


def test_a_failed_job_exits_1_with_its_traceback_in_the_log(qrt: Qrt):
    ran = qrt("jobs", "submit", "failing", "--watch")
    assert ran.code == exits.FAILED
    assert "ValueError: boom" in ran.out and "Failed" in ran.out.strip().splitlines()[-1]
    job_id = ran.out.split()[1]  # "submitted <id>"
    one_line_error(qrt("jobs", "result", job_id), exits.FAILED, "Failed", "boom")
    assert qrt("jobs", "result", job_id, "-o", "json").json()["status"] == "Failed"
    assert "about to fail" in qrt("jobs", "logs", job_id).out
    assert "ValueError" in qrt("jobs", "logs", job_id, "--attempt", "1", "-o", "json").json()["log"]


def test_a_cancelled_job_exits_3_and_can_then_be_deleted(qrt: Qrt):
    job_id = submit(qrt, "sleeper", "--params", '{"seconds": 120, "ticks": 120}')
    eventually_sync(lambda: qrt("jobs", "show", job_id, "-o", "json").json()["status"],
                    "the sleeper runs", until=lambda s: s == "Running", timeout=60, every=0.2)  # fmt: skip
    one_line_error(qrt("jobs", "delete", job_id), exits.REFUSED, "409")  # still running
    assert qrt("jobs", "cancel", job_id).code == 0
    watched = qrt("jobs", "watch", job_id)
    assert watched.code == exits.CANCELLED and "cancelled on request" in watched.out
    assert qrt("jobs", "result", job_id).code == exits.CANCELLED
    one_line_error(qrt("jobs", "cancel", job_id), exits.REFUSED, "409")
    shown = qrt("jobs", "show", job_id)
    assert shown.code == 0 and "Cancelled" in shown.out and job_id in shown.out
    assert qrt("jobs", "delete", job_id, "-o", "json").json() == {"id": job_id, "deleted": True}
    one_line_error(qrt("jobs", "show", job_id), exits.REFUSED, "404", job_id)


def test_a_job_past_its_time_limit_exits_4(qrt: Qrt):
    ran = qrt("jobs", "submit", "sleeper", "--params", '{"seconds": 60}',
              "--max-execution-time", "1", "--watch", "-o", "json")  # fmt: skip
    assert ran.code == exits.RAN_TOO_LONG, ran.err
    assert ran.lines()[-1]["job"]["status"] == "Cancelled - Ran too long"


def test_list_filters_and_shows_whole_ids(qrt: Qrt, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # off a terminal, as in a pipe to grep
    ids = {submit(qrt, "noop", "--tag", "listed") for _ in range(2)}
    for job_id in ids:
        qrt("jobs", "result", job_id, "--timeout", "120")
    page = qrt("jobs", "list", "--tag", "listed", "--ended", "-o", "json").json()
    assert page["count"] == 2 and {j["id"] for j in page["jobs"]} == ids
    assert all(j["status"] == "Completed" and j["program"] == "noop" for j in page["jobs"])
    text = qrt("jobs", "list", "--tag", "listed", "--status", "Completed", "--program", "noop")
    assert all(job_id in text.out for job_id in ids) and "2 of 2" in text.out
    rows = [line.split() for line in text.out.splitlines() if line.split()[:1] == [min(ids)]]
    assert rows and rows[0][1:4] == ["noop", "Completed", "aer_simulator"], text.out
    assert qrt("jobs", "list", "--tag", "listed", "--pending", "-o", "json").json()["count"] == 0
    assert qrt("jobs", "list", "--pending", "--ended").code == exits.USAGE


def test_show_as_json_is_the_job(qrt: Qrt):
    job_id = submit(
        qrt, "noop", "--backend", "aer_simulator_statevector", "--instance", "ibm-q/open/main"
    )
    shown = qrt("jobs", "show", job_id, "-o", "json").json()
    assert shown["id"] == job_id and shown["program"] == "noop"
    assert shown["backend"] == "aer_simulator_statevector" and shown["hub"] == "ibm-q"


def snake_case_keys(value: Any) -> list[str]:
    """The keys of `value` and the objects it holds that are not snake_case."""
    if isinstance(value, list):
        return [key for item in value for key in snake_case_keys(item)]
    if not isinstance(value, dict):
        return []
    own = [key for key in value if not re.fullmatch(r"[a-z0-9_]+", key)]
    return own + snake_case_keys(list(value.values()))


def test_json_output_names_fields_in_snake_case_in_every_command(qrt: Qrt):
    # One convention across the CLI: the qrt_client models' field names, not the HTTP API's
    # camelCase (`maxExecutionTime`, `isPublic`).
    job_id = submit(qrt, "noop")
    job = qrt("jobs", "show", job_id, "-o", "json").json()
    assert job["max_execution_time"] > 0 and "session_id" in job
    program = qrt("programs", "show", "sample-program", "-o", "json").json()
    assert program["max_execution_time"] > 0 and program["is_public"] is True
    assert {"return_values", "interim_results", "created_at"} <= program.keys()
    listed = qrt("programs", "list", "-o", "json").json()
    assert next(p for p in listed if p["id"] == "sample-program") == program
    # Inside a program's parameters (and return values...) the keys are its author's.
    authors = {"parameters", "return_values", "interim_results", "backend_requirements"}
    programs = [{k: v for k, v in p.items() if k not in authors} for p in listed]
    jobs = qrt("jobs", "list", "-o", "json").json()
    assert snake_case_keys([job, jobs, programs]) == []


def test_programs_upload_show_update_and_delete(qrt: Qrt, tmp_path: Path):
    listed = qrt("programs", "list", "-o", "json").json()
    assert "sample-program" in {p["id"] for p in listed}
    assert "sample-program" in qrt("programs", "list").out
    shown = qrt("programs", "show", "sample-program")
    assert shown.code == 0 and "iterations" in shown.out
    source = tmp_path / "adder"
    source.mkdir()
    (source / "program.py").write_text(
        "def main(backend, user_messenger, a, b):\n    return a + b\n"
    )
    uploaded = qrt("programs", "upload", str(source), "--description", "adds", "-o", "json")
    assert uploaded.code == 0, uploaded.err
    program_id = uploaded.json()["id"]
    assert program_id.startswith("adder") and uploaded.json()["description"] == "adds"
    ran = qrt("jobs", "submit", program_id, "--params", '{"a": 2, "b": 3}', "--watch", "-o", "json")
    assert ran.code == 0 and ran.lines()[-2] == {"event": "result", "value": 5}
    updated = qrt("programs", "update", program_id, "--description", "sums", "-o", "json")
    assert updated.json()["description"] == "sums"
    assert qrt("programs", "delete", program_id).code == 0
    one_line_error(qrt("programs", "show", program_id), exits.REFUSED, "404")
    one_line_error(qrt("programs", "upload", str(tmp_path / "missing")), exits.USAGE, "missing")
    one_line_error(qrt("programs", "delete", "sample-program"), exits.REFUSED, "403")


def test_programs_show_control_characters_of_their_metadata_escaped(
    qrt: Qrt, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("COLUMNS", "250")  # the list's table keeps each description on one line
    source = tmp_path / "painter"
    source.mkdir()
    (source / "program.py").write_text("def main(backend, user_messenger, **kwargs):\n    pass\n")
    parameters = [{"name": "shots\u001b]0;owned\u0007", "description": "how\tmany\u001b[2J"}]
    (source / "program.json").write_text(json.dumps({"parameters": parameters}))
    description = "line1\nline2\u001b[31mred [bold]not markup[/bold]\u202e"
    uploaded = qrt("programs", "upload", str(source), "--description", description, "-o", "json")
    assert uploaded.code == 0, uploaded.err
    program_id = uploaded.json()["id"]
    try:
        exact = qrt("programs", "show", program_id, "-o", "json").json()
        assert exact["description"] == description and exact["parameters"] == parameters
        for ran in (qrt("programs", "show", program_id), qrt("programs", "list")):
            assert ran.code == 0 and "\x1b" not in ran.out and "\u202e" not in ran.out
            assert "line2\\x1b[31mred [bold]not markup[/bold]\\u202e" in ran.out
        shown = qrt("programs", "show", program_id).out
        assert "\x07" not in shown
        lines = [line.rstrip() for line in shown.splitlines()]
        assert lines[lines.index("description         line1") + 1].endswith(
            "line2\\x1b[31mred [bold]not markup[/bold]\\u202e"
        )
        assert lines[-1].startswith("  shots\\x1b]0;owned\\x07: how") and lines[-1].endswith(
            "many\\x1b[2J"
        )  # rich writes the tab as spaces
    finally:
        qrt("programs", "delete", program_id)


def test_backends_list(qrt: Qrt):
    backends = qrt("backends", "list", "-o", "json").json()
    assert {"name": "aer_simulator", "simulator": True} in backends
    assert "aer_simulator" in qrt("backends", "list").out


def test_backends_show_a_devices_state_topology_and_calibration(qrt: Qrt, dev: DevServer):
    def device() -> str | None:
        listed = qrt("backends", "list", "-o", "json").json()
        return next((b["name"] for b in listed if not b["simulator"]), None)

    name = eventually_sync(device, "the simulated device is listed")
    assert name is not None
    raw = httpx.get(f"{dev.url}/backends/{name}").json()
    shown = qrt("backends", "show", name, "-o", "json").json()
    assert (shown["name"], shown["simulator"], shown["online"]) == (name, False, True)
    assert shown["nqubits"] == raw["nqubits"] and shown["topology"] == raw["topology"]
    assert len(shown["qubits"]) == raw["nqubits"]
    assert shown["qubits"][0]["t1_us"] == raw["calibration"]["qubits"][0]["t1Us"]
    assert [p["fidelity"] for p in shown["pairs"]] == [
        p["fidelity"] for p in raw["calibration"]["pairs"]
    ]
    text = qrt("backends", "show", name)
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    rows = dict(line.strip().split(None, 1) for line in lines[:9])
    assert rows["state"] == "online" and rows["qubits"] == str(raw["nqubits"])
    assert rows["topology"] == " ".join(f"{a}-{b}" for a, b in raw["topology"])
    assert rows["queue"].endswith("running")
    assert "T1 (µs)" in text.out and "readout fidelity" in text.out
    first = raw["calibration"]["qubits"][0]
    row = next(line.split() for line in lines if line.split()[:1] == ["0"])
    assert row[1:] == [f"{first['t1Us']:.1f}", f"{first['t2Us']:.1f}",
                       f"{first['readoutFidelity']:.4f}",
                       f"{first['singleQubitGateFidelity']:.4f}"]  # fmt: skip
    pair = raw["calibration"]["pairs"][0]
    assert f"{pair['qubits'][0]}-{pair['qubits'][1]} {pair['fidelity']:.4f}".split() in [
        line.split() for line in lines
    ]
    simulator = qrt("backends", "show", "aer_simulator")
    assert simulator.code == 0 and "simulator" in simulator.out and "T1" not in simulator.out


def test_backends_show_of_an_unknown_backend_is_one_line(qrt: Qrt):
    one_line_error(qrt("backends", "show", "no-such-backend"), exits.REFUSED, "404",
                   "no-such-backend")  # fmt: skip
    refused = qrt("backends", "show", "no-such-backend", "-o", "json")
    assert refused.code == exits.REFUSED and refused.lines()[0]["status"] == 404


def test_params_from_a_file_and_bad_params(qrt: Qrt, tmp_path: Path):
    params = tmp_path / "params.json"
    params.write_text('{"greeting": "from a file"}')
    ran = qrt("jobs", "submit", "hello-quantum", "--params", f"@{params}", "--watch")
    assert ran.code == 0 and "interim: from a file" in ran.out
    one_line_error(qrt("jobs", "submit", "noop", "--params", "{oops"), exits.USAGE, "not JSON")
    one_line_error(qrt("jobs", "submit", "noop", "--params", "[1]"), exits.USAGE, "JSON object")
    one_line_error(qrt("jobs", "submit", "noop", "--params", "@/no/such"), exits.USAGE, "/no/such")
    one_line_error(
        qrt("jobs", "submit", "noop", "--instance", "a/b"), exits.USAGE, "hub/group/project"
    )


def test_the_platforms_refusals_are_one_line_with_detail_and_field(qrt: Qrt):
    one_line_error(
        qrt("jobs", "submit", "no-such-program"), exits.REFUSED, "404", "field programId"
    )
    ran = qrt("jobs", "submit", "no-such-program", "-o", "json")
    assert ran.json() == {"error": "404 program 'no-such-program' not found (field programId)",
                          "status": 404, "field": "programId"}  # fmt: skip
    one_line_error(qrt("jobs", "show", "no-such-job"), exits.REFUSED, "404")
    assert qrt("jobs", "frobnicate").code == exits.USAGE


def test_connection_refused_names_the_url_in_one_line(run: Qrt, config_home: Path, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("QRT_URL", url)
    message = f"qrt: cannot reach {url}: All connection attempts failed"
    ran = run("jobs", "list")  # retried, then given up
    assert ran.code == exits.UNREACHABLE and ran.err.strip() == message
    # The same in a process of its own (a cancel is not retried: it fails at once).
    env = {**os.environ, "QRT_URL": url}
    done = subprocess.run(
        [*QRT, "jobs", "cancel", "some-job"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == exits.UNREACHABLE
    assert done.stderr.strip() == message


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevServer, str]]:
    """A `qrt dev --auth`, and a platform admin's key made with `qrt admin`."""
    with serving_with_keys(tmp_path_factory.mktemp("cli-auth")) as served:
        yield served


def test_a_bad_key_is_refused_in_one_line_and_login_keeps_only_a_good_one(
    run: Qrt, secured, config_home: Path, monkeypatch
):
    server, key = secured
    one_line_error(
        run("login", server.url, "--key", "qrt_bad_key"), exits.REFUSED, "401", server.url
    )
    assert not (config_home / "qrt" / "config.toml").exists()
    assert run("login", server.url, "--key", key).code == 0
    ran = run("jobs", "submit", "hello-quantum", "--params", '{"greeting": "keyed"}', "--watch")
    assert ran.code == 0 and "interim: keyed" in ran.out
    monkeypatch.setenv("QRT_API_KEY", "qrt_bad_key")  # the environment wins over the profile
    one_line_error(run("jobs", "list"), exits.REFUSED, "401", "qrt login")
    monkeypatch.delenv("QRT_API_KEY")
    monkeypatch.setenv("QRT_URL", server.url)
    monkeypatch.setenv("QRT_PROFILE", "default")
    assert run("jobs", "list", "-o", "json").json()["count"] == 1


def test_programs_upload_into_the_instance_a_user_belongs_to(
    run: Qrt, secured, tmp_path, monkeypatch
):
    server, key = secured
    admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"})
    with admin:
        assert admin.post("/admin/users", json={"name": "carol"}).status_code == 201
        made = admin.post("/admin/users/carol/keys", json={})
        assert admin.post("/admin/instances", json={"name": "lab/team/qubits"}).status_code == 201
        joined = admin.put(
            "/admin/instances/lab/team/qubits/members/carol", json={"role": "member"}
        )
        assert joined.status_code == 200, joined.text
    monkeypatch.setenv("QRT_URL", server.url)
    monkeypatch.setenv("QRT_API_KEY", made.json()["key"])
    source = tmp_path / "adder"
    source.mkdir()
    (source / "program.py").write_text(
        "def main(backend, user_messenger, a, b):\n    return a + b\n"
    )
    # carol is no member of the default instance: without --instance her upload goes to her
    # one instance; once she belongs to two it is refused, saying how to name one (as a submit).
    alone = run("programs", "upload", str(source), "-o", "json")
    assert alone.code == 0 and alone.json()["owner"] == "lab/team/qubits", alone.err
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as admin:
        assert admin.post("/admin/instances", json={"name": "lab/team/more"}).status_code == 201
        joined = admin.put("/admin/instances/lab/team/more/members/carol", json={"role": "member"})
        assert joined.status_code == 200, joined.text
    one_line_error(run("programs", "upload", str(source)), exits.REFUSED, "403",
                   "without --instance the platform's default instance is used")  # fmt: skip
    one_line_error(run("jobs", "submit", "hello-quantum"), exits.REFUSED, "403",
                   "--instance HUB/GROUP/PROJECT")  # fmt: skip
    uploaded = run("programs", "upload", str(source), "--instance", "lab/team/more", "-o", "json")
    assert uploaded.code == 0, uploaded.err
    assert uploaded.json()["owner"] == "lab/team/more"
    one_line_error(
        run("programs", "upload", str(source), "--instance", "lab/team"), exits.USAGE,
        "hub/group/project",
    )  # fmt: skip


def test_shell_completion_offers_the_commands(config_home: Path, tmp_path: Path):
    out = tmp_path / "completions"
    env = {**os.environ, "_ARGCOMPLETE": "1", "COMP_LINE": "qrt jobs s", "COMP_POINT": "10",
           "_ARGCOMPLETE_STDOUT_FILENAME": str(out), "_ARGCOMPLETE_IFS": "\n"}  # fmt: skip
    done = subprocess.run([*QRT], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert set(out.read_text().split()) == {"submit", "show"}


def test_a_url_that_is_no_url_is_a_usage_error_that_says_why(
    run: Qrt, config_home: Path, monkeypatch
):
    one_line_error(run("login", "127.0.0.1:8000", "--key", "k"), exits.USAGE,
                   "qrt login: '127.0.0.1:8000' is no URL; write http://127.0.0.1:8000")  # fmt: skip
    assert not (config_home / "qrt" / "config.toml").exists()
    monkeypatch.setenv("QRT_URL", "localhost:8000")
    one_line_error(run("jobs", "list"), exits.USAGE, "QRT_URL", "write http://localhost:8000")
    monkeypatch.setenv("QRT_URL", "http://127.0.0.1:8000\n  mode  single user")  # grep -A1
    one_line_error(run("jobs", "list"), exits.USAGE, "QRT_URL", "is no URL: ")
    monkeypatch.setenv("QRT_URL", "http://127.0.0.1:80000")
    one_line_error(run("jobs", "list"), exits.USAGE, "QRT_URL", "port 80000 is not 1 to 65535")
    monkeypatch.setenv("QRT_URL", "http://")
    one_line_error(run("jobs", "list"), exits.USAGE, "QRT_URL", "names no host")


def test_a_submit_whose_answer_was_lost_makes_one_job(qrt: Qrt, dev: DevServer, monkeypatch):
    proxy = FlakyProxy(dev.port, drops=1)
    try:
        monkeypatch.setenv("QRT_URL", proxy.url)
        job_id = submit(qrt, "hello-quantum", "--params", '{"greeting": "once"}', "--tag", "lost")
    finally:
        proxy.close()
    keys = [
        m.group(1) for h in proxy.heads if (m := re.search(r"(?im)^idempotency-key: ([^\r\n]+)", h))
    ]
    assert len(keys) >= 2 and keys[0] == keys[1] and uuid.UUID(keys[0])
    monkeypatch.setenv("QRT_URL", dev.url)
    page = qrt("jobs", "list", "--tag", "lost", "-o", "json").json()
    assert page["count"] == 1 and page["jobs"][0]["id"] == job_id


def test_result_gives_up_after_its_timeout_with_exit_7(qrt: Qrt):
    job_id = submit(qrt, "sleeper", "--params", '{"seconds": 120}')
    one_line_error(qrt("jobs", "result", job_id, "--timeout", "0.5"), exits.TIMED_OUT, job_id)
    assert qrt("jobs", "cancel", job_id).code == 0


def test_a_broken_config_file_is_one_line(run: Qrt, config_home: Path):
    (config_home / "qrt").mkdir(parents=True)
    (config_home / "qrt" / "config.toml").write_text("default = \n")
    one_line_error(run("backends", "list"), exits.USAGE, "config.toml", "not valid TOML")


def test_the_readme_documents_every_exit_code():
    readme = (ROOT / "README.md").read_text().split("### From the command line", 1)[1]
    codes = {v for k, v in vars(exits).items() if k.isupper() and isinstance(v, int)}
    assert all(f"`{code}`" in readme for code in codes)


def test_on_a_terminal_watch_keeps_a_status_line_with_the_elapsed_time(
    dev: DevServer, config_home: Path
):
    env = {**os.environ, "QRT_URL": dev.url, "TTY_COMPATIBLE": "1", "COLUMNS": "100"}
    argv = [*QRT, "jobs", "submit", "sleeper", "--params", '{"seconds": 3, "ticks": 3}', "--watch"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = re.findall(r"(\S+)  Running  (\d+\.\d) s", done.stdout)
    assert len({elapsed for _, elapsed in lines}) >= 2  # it counts up while the job runs
    assert "tick 2" in done.stdout and "woke up" in done.stdout


def test_services_start_wait_and_read_an_execution(qrt: Qrt):
    data, params = '{"values": [1, 5.2, 20]}', '{"round_off": true}'
    ran = qrt("services", "start", "planqk-starter", "--data", data, "--params", params,
              "--wait", "-o", "json")  # fmt: skip
    assert ran.code == 0, ran.err
    ended = ran.json()
    assert ended["status"] == "SUCCEEDED" and ended["result"]["result"] == {"sum": 26}
    execution = ended["id"]
    shown = qrt("services", "show", "planqk-starter", execution, "-o", "json").json()
    assert (shown["id"], shown["service"], shown["status"]) == (
        execution,
        "planqk-starter",
        "SUCCEEDED",
    )
    assert shown["ended"] is not None
    text = qrt("services", "result", "planqk-starter", execution)
    assert text.code == 0 and '"sum": 26' in text.out
    interims = qrt("services", "interim-results", "planqk-starter", execution, "-o", "json")
    assert interims.json() == [{"sum": 1}, {"sum": 6.2}, {"sum": 26.2}]
    last = qrt("services", "interim-results", "planqk-starter", execution, "--last", "-o", "json")
    assert last.json() == {"sum": 26.2}
    log = qrt("services", "log", "planqk-starter", execution)
    assert log.out.splitlines()[0] == "Starting execution: 3 values, round_off=True"
    listed = qrt("services", "list", "planqk-starter", "-o", "json").json()
    assert {"id": execution, "status": "SUCCEEDED"}.items() <= next(
        e for e in listed if e["id"] == execution
    ).items()
    table = qrt("services", "list", "planqk-starter")
    assert execution in table.out and "SUCCEEDED" in table.out


def test_services_start_prints_the_id_and_a_failed_execution_exits_1(qrt: Qrt):
    ran = qrt("services", "start", "planqk-starter", "--data", '{"values": [1, "x"]}')
    assert ran.code == 0, ran.err
    execution = ran.out.strip()
    failed = qrt("services", "result", "planqk-starter", execution, "--timeout", "120")
    reason = 'data.values[1] must be a number, not str \\"x\\"'
    one_line_error(failed, exits.FAILED, f"execution {execution} FAILED", reason)
    as_json = qrt("services", "result", "planqk-starter", execution, "-o", "json").json()
    assert as_json["status"] == "FAILED" and as_json["result"]["code"] == "400"


def test_services_cancel_exits_3_for_its_result_and_refusals_are_one_line(qrt: Qrt):
    ran = qrt("services", "start", "sleeper", "--params", '{"seconds": 120, "ticks": 120}',
              "-o", "json")  # fmt: skip
    execution = ran.json()["id"]
    cancelled = qrt("services", "cancel", "sleeper", execution, "-o", "json").json()
    assert cancelled["id"] == execution
    assert qrt("services", "result", "sleeper", execution).code == exits.CANCELLED
    one_line_error(qrt("services", "cancel", "sleeper", execution), exits.REFUSED, "409")
    running = qrt("services", "start", "sleeper", "--params", '{"seconds": 120}').out.strip()
    said = qrt("services", "cancel", "sleeper", running)
    assert (said.code, said.out) == (exits.OK, f"cancelled {running}\n")
    assert qrt("services", "result", "sleeper", running).code == exits.CANCELLED
    one_line_error(qrt("services", "show", "nope", execution), exits.REFUSED, "404", "nope")
    one_line_error(qrt("services", "start", "planqk-starter", "--data", "[1]"), exits.USAGE,
                   "--data must be a JSON object")  # fmt: skip
    refused = qrt("services", "show", "sleeper", "unknown-id", "-o", "json")
    assert refused.code == exits.REFUSED and refused.json()["status"] == 404


def test_result_of_a_cancelled_job_says_it_has_none(qrt: Qrt, dev: DevServer):
    job_id = submit(qrt, "sleeper", "--params", '{"seconds": 120, "ticks": 120}')
    assert qrt("jobs", "cancel", job_id).code == 0
    ran = qrt("jobs", "result", job_id, "-o", "json")
    assert ran.code == exits.CANCELLED
    assert ran.json()["status"] == "Cancelled" and ran.json()["result"] is None
    answer = httpx.get(f"{dev.url}/jobs/{job_id}/results")
    assert answer.status_code == 409
    assert answer.json()["detail"].startswith(f"job '{job_id}' ended Cancelled")


def test_a_key_with_surrounding_whitespace_works_and_a_malformed_one_is_a_usage_error(
    run: Qrt, secured, config_home: Path, monkeypatch
):
    server, key = secured
    secret = key.split("_", 2)[2]
    monkeypatch.setenv("QRT_URL", server.url)
    monkeypatch.setenv("QRT_API_KEY", f"{key} ")  # as a shell's "$KEY " gives it
    assert run("jobs", "list").code == exits.OK
    for bad in (f"{key[:10]} {key[10:]}", f"{key}\n{key}", f"{key}\x1b"):
        monkeypatch.setenv("QRT_API_KEY", bad)
        ran = run("jobs", "list", "-o", "json")
        one_line_error(ran, exits.USAGE, "QRT_API_KEY: the API key holds", "qrt_<id>_<secret>")
        assert secret not in ran.err + ran.out and key[4:20] not in ran.err + ran.out
    monkeypatch.delenv("QRT_API_KEY")
    monkeypatch.delenv("QRT_URL")
    assert run("login", server.url, "--key", f"{key}\n").code == exits.OK  # $(cat keyfile)
    assert f'key = "{key}"' in (config_home / "qrt" / "config.toml").read_text()
    assert run("jobs", "list").code == exits.OK
    ran = run("login", server.url, "--key", f"{key}\ttab")
    one_line_error(ran, exits.USAGE, "qrt login --key: the API key holds")
    assert secret not in ran.err


def test_watch_shows_no_attempt_for_a_program_that_tries_to_publish_a_notice(
    qrt: Qrt, tmp_path: Path
):
    source = tmp_path / "lookalike"
    source.mkdir()
    (source / "program.py").write_text(
        "def main(backend, user_messenger):\n"
        "    for notice in ({'attempt': 2, 'reason': 'executor ex1 was lost'}, {'attempt': 'x'}):\n"
        "        try:\n"
        "            user_messenger.publish({'__qrt__': notice})\n"
        "        except ValueError as exc:\n"
        "            print('refused:', exc)\n"
        '    return "done"\n'
    )
    uploaded = qrt("programs", "upload", str(source), "-o", "json")
    assert uploaded.code == 0, uploaded.err
    ran = qrt("jobs", "submit", uploaded.json()["id"], "--watch", "-o", "json")
    assert ran.code == exits.OK and "Traceback" not in ran.err, ran.err
    kinds = [line["event"] for line in ran.lines()]
    assert "attempt" not in kinds and "interim" not in kinds, kinds
    assert {"event": "result", "value": "done"} in ran.lines()
    job_id = ran.lines()[0]["job"]["id"]
    watched = qrt("jobs", "watch", job_id)
    assert watched.code == exits.OK and "attempt 2" not in watched.out, watched.out
    assert watched.out.count("refused:") == 2, watched.out


def test_watch_of_a_job_whose_key_is_revoked_exits_5(secured, config_home: Path):
    server, admin_key = secured
    admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {admin_key}"})
    with admin:
        assert admin.post("/admin/users", json={"name": "frank"}).status_code == 201
        made = admin.post("/admin/users/frank/keys", json={}).json()
        assert admin.post("/admin/instances", json={"name": "lab/team/watch"}).status_code == 201
        member = admin.put("/admin/instances/lab/team/watch/members/frank", json={"role": "member"})
        assert member.status_code == 200, member.text
        env = {**os.environ, "QRT_URL": server.url, "QRT_API_KEY": made["key"]}
        submitted = subprocess.run(
            [*QRT, "jobs", "submit", "sleeper", "--params", '{"seconds": 600, "ticks": 300}',
             "--instance", "lab/team/watch"], env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip()
        argv = [*QRT, "jobs", "watch", job_id, "-o", "json"]
        with subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) as watch:  # fmt: skip
            assert watch.stdout is not None
            for line in watch.stdout:  # watching: the job's first interim result came
                if json.loads(line)["event"] == "interim":
                    break
            assert admin.delete(f"/admin/keys/{made['id']}").status_code == 204
            out, err = watch.communicate(timeout=120)
        admin.post(f"/jobs/{job_id}/cancel")
    assert watch.returncode == exits.REFUSED, err
    assert err.startswith("qrt: 401 ") and "Traceback" not in err and len(err.splitlines()) == 1
    assert made["key"] not in err + out and made["key"].split("_", 2)[2] not in err + out


LISTING = """import os


def main(backend, user_messenger):
    here = os.path.dirname(os.path.abspath(__file__))
    return sorted(
        os.path.relpath(os.path.join(directory, name), here)
        for directory, _, names in os.walk(here) if "__pycache__" not in directory
        for name in names
    )
"""


def test_programs_upload_leaves_out_vcs_and_dot_names_and_refuses_links_out(
    qrt: Qrt, tmp_path: Path
):
    source = tmp_path / "lister"
    (source / ".git").mkdir(parents=True)
    (source / ".git" / "config").write_text("[core]\n")
    (source / ".env").write_text("API_TOKEN=hunter2\n")
    (source / ".shots.json").write_text("{}")
    (source / "program.py").write_text(LISTING)
    uploaded = qrt("programs", "upload", str(source), "--include", ".shots.json", "-o", "json")
    assert uploaded.code == 0, uploaded.err
    ran = qrt("jobs", "submit", uploaded.json()["id"], "--watch", "-o", "json")
    assert ran.code == 0 and ran.lines()[-2]["value"] == [".shots.json", "program.py"], ran.out
    outside = tmp_path / "id_rsa"
    outside.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (source / "key").symlink_to(outside)
    one_line_error(
        qrt("programs", "upload", str(source)), exits.USAGE, "key is a symbolic link to",
        str(outside), "outside the program's directory",
    )  # fmt: skip
    (source / "key").unlink()
    (source / "noise.bin").write_bytes(os.urandom(9 * 1024 * 1024))
    one_line_error(
        qrt("programs", "upload", str(source)), exits.USAGE, "over 8,388,608 bytes by noise.bin"
    )
    assert "--include" in qrt("programs", "upload", "--help").out


def test_results_and_reasons_reach_the_terminal_with_control_characters_escaped(qrt: Qrt):
    """A program's words (a string result, an exception's message) cannot drive the reader's
    terminal (clear it, set its title): ESC and BEL are shown escaped."""
    text = "'title \\x1b]0;owned\\x07 clear \\x1b[2J'"
    job_id = submit(qrt, "shaper", "--params", json.dumps({"result": text}))
    ran = qrt("jobs", "result", job_id, "--timeout", "120")
    assert ran.code == 0 and "\x1b" not in ran.out and "\x07" not in ran.out, ran.out
    assert "\\x1b]0;owned\\x07" in ran.out
    raising = "(_ for _ in ()).throw(ValueError('bad \\x1b[2J input'))"
    job_id = submit(qrt, "shaper", "--params", json.dumps({"result": raising}))
    ran = qrt("jobs", "result", job_id, "--timeout", "120")
    one_line_error(ran, exits.FAILED, "bad \\x1b[2J input")
    assert "\x1b" not in ran.err
    # rich markup in a reason is text: "[/]" once broke `watch` with a MarkupError.
    marked = "(_ for _ in ()).throw(ValueError('[/] [link=https://x]here[/link]'))"
    job_id = submit(qrt, "shaper", "--params", json.dumps({"result": marked}))
    ran = qrt("jobs", "watch", job_id)
    assert ran.code == exits.FAILED and "MarkupError" not in ran.err + ran.out, ran.err
    assert "[/] [link=https://x]here[/link]" in ran.out
