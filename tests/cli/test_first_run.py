"""A first run as a new user makes it (README, "Try it" and "Configuration"): `qrt dev` from any
directory serves the bundled programs (from a checkout and from the installed wheel) and says
where everything is; a configuration that cannot work is one line and a non-zero exit before
anything starts; a lone service on the in-process bus warns."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from qrt_cli.main import main, parser
from tests.support.mesh import free_port, wait_for_port
from tests.support.programs import ROOT, write_program
from tests.support.waiting import eventually_sync


def clean_env(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QRT_")}
    return {**env, "QRT_HEARTBEAT_INTERVAL": "0.2", **more}


def qrt(args: list[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 60):
    return subprocess.run([sys.executable, "-m", "qrt_cli", *args], cwd=cwd,
                          env=dict(env or clean_env()), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


@contextmanager
def running(
    args: list[str], cwd: Path, env: Mapping[str, str], python: str = sys.executable
) -> Iterator[tuple[str, Path, Path]]:
    """`qrt dev` with `args` in `cwd`: its URL and the files its stdout and stderr go to."""
    port = free_port()
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        process = subprocess.Popen([python, "-m", "qrt_cli", "dev", "--port", str(port), *args],
                                   cwd=cwd, env=dict(env), stdout=stdout, stderr=stderr)  # fmt: skip
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}", out, err
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_job(url: str, program: str, params: dict) -> dict:
    with httpx.Client(base_url=url, timeout=30) as http:
        response = http.post("/jobs", json={"programId": program, "params": params})
        assert response.status_code == 200, response.text
        job_id = response.json()["id"]
        job = eventually_sync(lambda: http.get(f"/jobs/{job_id}").json(), f"job {job_id} ends",
                              until=lambda j: j["status"] not in ("Queued", "Running"),
                              timeout=120)  # fmt: skip
        job["result"] = http.get(f"/jobs/{job_id}/results").json()
        return dict(job)


def test_qrt_dev_elsewhere_serves_the_bundled_programs_and_the_users_and_a_banner(tmp_path):
    mine = tmp_path / "programs"
    source = "def main(backend, user_messenger, name='you'):\n    return f'hello {name}'\n"
    write_program(mine, "greeter", {"name": "greeter"}, source)
    (mine / "programs.ini").write_text("[programs]\ngreeter=greeter.greeter\n")
    env = clean_env(QRT_DEV_DEVICE="false")
    with running(["--log-format", "text"], tmp_path, env) as (url, out, err):
        with httpx.Client(base_url=url) as http:
            listing = http.get("/programs").json()
        ids = {p["id"] for p in listing["programs"]}
        assert {"greeter", "sample-program", "hello-quantum", "planqk-starter"} <= ids
        assert listing["errors"] == []
        greeted = run_job(url, "greeter", {"name": "Ada"})
        assert (greeted["status"], json.loads(greeted["result"])) == ("Completed", "hello Ada")
        hello = run_job(url, "hello-quantum", {"greeting": "hi"})
        assert hello["status"] == "Completed", hello
        with httpx.Client(base_url=url) as http:
            console = http.get("/ui/")
        assert console.status_code == 200 and "text/html" in console.headers["content-type"]
        banner = eventually_sync(out.read_text, "the banner", until=lambda t: "Ctrl-C" in t)
    lines = banner.splitlines()
    assert lines[0].startswith("qrt ") and lines[0].endswith(" is running")
    rows = dict(line.split(None, 1) for line in lines[1:-1])
    assert rows["API"] == url and rows["docs"] == f"{url}/docs"
    assert rows["console"] == f"{url}/ui/"
    assert rows["device"] == "none (QRT_DEV_DEVICE=false)"
    assert rows["data"] == str(tmp_path / ".qrt")
    assert rows["programs"].endswith(f"from {ROOT / 'programs'}, {mine}")
    assert rows["mode"].startswith("single user, no API keys")
    log = err.read_text().splitlines()
    assert log and not any(line.startswith("{") for line in log)
    assert any(" INFO    qrt-dev executor ready" in line for line in log)


def test_the_installed_wheel_carries_the_bundled_programs(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                            str(wheels), str(ROOT)], capture_output=True, text=True,
                           timeout=600)  # fmt: skip
    assert built.returncode == 0, built.stderr
    [wheel] = wheels.glob("qrt-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "qrt_common/bundled_programs/programs.ini" in names
    assert "qrt_common/bundled_programs/sample_program/sample_program.py" in names
    assert not [name for name in names if "__pycache__" in name]
    zipfile.ZipFile(wheel).extractall(target)
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(PYTHONPATH=str(target), QRT_DEV_DEVICE="false")
    shown = subprocess.run([sys.executable, "-c", "import qrt_common.registry as r; "
                            "print(r.bundled_programs_dir())"], cwd=home, env=env,
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert shown.stdout.strip() == str(target / "qrt_common" / "bundled_programs"), shown.stderr
    with running([], home, env) as (url, _, _):
        job = run_job(url, "sample-program", {"iterations": 1})
    assert job["status"] == "Completed" and json.loads(job["result"]) == "All done!"


def broken_metadata(tmp_path: Path) -> tuple[list[str], str]:
    write_program(tmp_path / "mine", "bad", '{\n  "name": "bad",\n  "version": 1.0,,\n}\n')
    (tmp_path / "mine" / "programs.ini").write_text("[programs]\nbad=bad.bad\n")
    meta = tmp_path / "mine" / "bad" / "bad.json"
    return ["--programs-dir", "mine"], (
        f"qrt: program 'bad' cannot be loaded: {meta}, line 3: Expecting property name enclosed"
        " in double quotes"
    )


def broken_ini(tmp_path: Path) -> tuple[list[str], str]:
    (tmp_path / "mine").mkdir()
    ini = tmp_path / "mine" / "programs.ini"
    ini.write_text("[programs]\nsample=sample_program.sample_program\noops\n")
    return ["--programs-dir", "mine"], (
        f"qrt: {ini.resolve()}, line 3: cannot parse 'oops' (write program-id=location)"
    )


def data_dir_is_a_file(tmp_path: Path) -> tuple[list[str], str]:
    (tmp_path / "data").write_text("")
    return ["--data-dir", "data"], "qrt: QRT_DATA_DIR (--data-dir) data is a file, not a directory"


def bad_device_config(tmp_path: Path) -> tuple[list[str], str]:
    (tmp_path / "device.toml").write_text("qubits = 0\n")
    return [], "qrt: invalid device configuration: device.toml: qubits: "


CONFIGURATIONS = {
    "bus url": ({"QRT_BUS_URL": "rabbit://x"}, "qrt: invalid setting bus_url: use memory:// or "
                "amqp://user:password@host:5672/ (QRT_BUS_URL='rabbit://x')"),
    "log level": ({"QRT_LOG_LEVEL": "LOUD"}, "qrt: invalid setting log_level: use one of DEBUG, "
                  "INFO, WARNING, ERROR, CRITICAL (QRT_LOG_LEVEL='LOUD')"),
    "log format": ({"QRT_LOG_FORMAT": "xml"}, "qrt: invalid setting log_format: "),
    "store url": ({"QRT_STORE_URL": "postgres://db"}, "qrt: invalid setting store_url: use "
                  "sqlite:///path/to/file.db or mongodb://host/database (QRT_STORE_URL='postgres://db')"),
    "device addresses": ({"QRT_DEVICES": "tcp://127.0.0.1:4203,foo"}, "qrt: invalid setting "
                         "devices: 'foo' is no device address; write tcp://host:port,..."),
    "host": ({"QRT_HOST": "no-such-host.invalid"},
             "qrt: QRT_HOST (--host) 'no-such-host.invalid' cannot be resolved: "),
    "a number": ({"QRT_EXECUTOR_CAPACITY": "many"}, "qrt: invalid setting executor_capacity: "),
    "a flag": ({"QRT_AUTH": "maybe"}, "qrt: invalid setting auth: "),
    "missing device config": ({"QRT_DEVICE_CONFIG": "absent.toml"},
                              "qrt: invalid device configuration: cannot read absent.toml: "),
    "invalid device config": ({"QRT_DEVICE_CONFIG": "device.toml"}, bad_device_config),
    "data dir is a file": ({}, data_dir_is_a_file),
    "programs dir missing": ({"QRT_PROGRAMS_DIR": "nowhere"},
                             "qrt: QRT_PROGRAMS_DIR nowhere is not a directory"),
    "programs.ini broken": ({}, broken_ini),
    "bootstrap admin key": ({"QRT_AUTH": "true", "QRT_BOOTSTRAP_ADMIN_KEY": "abc"},
                            "qrt: QRT_BOOTSTRAP_ADMIN_KEY must be an API key: "),
    "metadata broken": ({}, broken_metadata),
}  # fmt: skip


@pytest.mark.parametrize(("env", "said"), CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_a_configuration_that_cannot_work_is_one_line_before_anything_starts(tmp_path, env, said):
    args: list[str] = []
    if callable(said):
        args, said = said(tmp_path)
    done = qrt(["dev", "--port", "0", *args], tmp_path, clean_env(**env))
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(said) and done.stderr.count("\n") == 1, done.stderr
    assert done.stdout == ""
    assert not (tmp_path / ".qrt").exists()  # nothing started, nothing made


def test_a_taken_port_is_one_line_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = qrt(["dev", "--port", str(port)], tmp_path)
        scheduler = qrt(["scheduler"], tmp_path, clean_env(QRT_OPS_PORT=str(port)))
    assert done.returncode == 2
    assert done.stderr == (
        f"qrt: port {port} on 127.0.0.1 is taken by another program; choose another with "
        "QRT_PORT (--port)\n"
    )
    assert scheduler.returncode == 2
    assert scheduler.stderr.startswith(f"qrt: port {port} on 127.0.0.1 is taken")
    assert scheduler.stderr.endswith("choose another with QRT_OPS_PORT\n")


def test_a_second_qrt_dev_on_the_same_data_directory_stops_before_anything_starts(tmp_path):
    # Both would run: the second's scheduler took the first's running jobs for orphans and
    # ran them again, and the first went on running them too.
    with running([], tmp_path, clean_env()) as (url, _, _):
        second = qrt(["dev", "--port", "0"], tmp_path)
        assert second.returncode == 2, second.stderr
        assert second.stderr.startswith("qrt: another qrt dev (pid ")
        assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
        assert (
            f"uses the store {(tmp_path / '.qrt' / 'qrt.db').resolve()}; stop it" in second.stderr
        )
        assert second.stdout == ""
        assert httpx.get(f"{url}/programs", timeout=30).status_code == 200  # the first goes on
    with running([], tmp_path, clean_env()) as (url, _, _):  # stopped, it let the store go
        assert httpx.get(f"{url}/programs", timeout=30).status_code == 200


def test_a_lone_gateway_on_the_in_process_bus_warns_at_start(tmp_path):
    port = free_port()
    with open(tmp_path / "err.txt", "wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "qrt_cli", "gateway", "--port", str(port)],
                                   cwd=tmp_path, env=clean_env(), stderr=err)  # fmt: skip
    try:
        wait_for_port(port, process)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    first = json.loads((tmp_path / "err.txt").read_text().splitlines()[0])
    assert first["level"] == "WARNING"
    assert first["message"].startswith(
        "qrt gateway: QRT_BUS_URL is memory://, the in-process bus: a scheduler and an executor "
        "cannot reach this process, so jobs stay Queued."
    )


def test_qrt_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith("qrt 0.")


@pytest.mark.parametrize(
    ("command", "offered", "not_offered"),
    [
        ("scheduler", {"--host", "--ops-port", "--data-dir", "--log-format"},
         {"--port", "--programs-dir", "--auth"}),
        ("executor", {"--host", "--ops-port", "--programs-dir", "--log-format"},
         {"--port", "--data-dir", "--auth"}),
        ("gateway", {"--host", "--port", "--data-dir", "--programs-dir"}, {"--ops-port", "--auth"}),
        ("dev", {"--host", "--port", "--data-dir", "--programs-dir", "--auth", "--log-format"},
         {"--ops-port"}),
    ],
)  # fmt: skip
def test_each_service_offers_only_the_options_it_uses(command, offered, not_offered):
    options = {
        option
        for action in parser()._subparsers._group_actions[0].choices[command]._actions  # type: ignore[union-attr,index]
        for option in action.option_strings
    }
    assert offered <= options and not (not_offered & options)


def make_dry_run(target: str, venv: Path) -> list[str]:
    # Under `make test` (CI) this make is a sub-make, which would print "Entering directory".
    done = subprocess.run(["make", "--no-print-directory", "-n", target, f"VENV={venv}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_make_dev_installs_what_running_needs_with_progress_and_make_test_the_test_tools(
    tmp_path,
):
    dev = make_dry_run("dev", tmp_path / "fresh")
    installs = [line for line in dev if " install " in line and "--upgrade pip" not in line]
    assert installs == [f"{tmp_path / 'fresh'}/bin/pip install --progress-bar on -e ."]
    assert dev[0].startswith('echo "qrt: installing qrt')  # says what it does before it does it
    assert dev[-1] == f"{tmp_path / 'fresh'}/bin/qrt dev"
    test = make_dry_run("test", tmp_path / "fresh")
    assert f"{tmp_path / 'fresh'}/bin/pip install --quiet -e '.[test]'" in test
    assert test.index(installs[0]) < test.index(
        f"{tmp_path / 'fresh'}/bin/pip install --quiet -e '.[test]'"
    )
