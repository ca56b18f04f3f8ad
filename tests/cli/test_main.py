"""The `qrt` command: its subcommands, and how it says a configuration cannot work (an exit code
and one line, no traceback)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qrt_cli.main import SERVICES, main, parser
from qrt_common.logs import QRT_LOGGERS
from tests.support.programs import ROOT

COMMANDS = {"dev", "gateway", "scheduler", "executor", "device"}


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No QRT_* setting from outside, data under tmp_path, and logging as it was after `main`
    configured it for a service."""
    for name in list(os.environ):
        if name.startswith("QRT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("QRT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("QRT_PROGRAMS_DIR", str(tmp_path / "programs"))
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in QRT_LOGGERS}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def test_the_parser_has_the_five_commands():
    assert set(SERVICES) == COMMANDS
    for name in COMMANDS:
        assert parser().parse_args([name]).command == name
    usage = parser().format_help()
    assert all(name in usage for name in COMMANDS)


def test_a_missing_or_unknown_command_is_a_usage_error(capsys):
    for argv in ([], ["serve"]):
        with pytest.raises(SystemExit) as caught:
            parser().parse_args(argv)
        assert caught.value.code == 2
    assert "usage: qrt" in capsys.readouterr().err


def test_service_options_become_settings_and_the_device_has_its_own():
    args = parser().parse_args(["gateway", "--host", "0.0.0.0", "--port", "0", "--data-dir", "d"])
    assert (args.host, args.port, args.data_dir) == ("0.0.0.0", 0, "d")
    device = parser().parse_args(["device", "--config", "x.toml", "--rep-address", "tcp://*:1"])
    assert (device.device_config, device.device_rep_address) == ("x.toml", "tcp://*:1")
    with pytest.raises(SystemExit):
        parser().parse_args(["device", "--port", "1"])


def test_an_invalid_option_is_an_invalid_setting_without_a_traceback(capsys):
    assert main(["gateway", "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qrt: invalid setting port: ")
    assert "65535" in err and "Traceback" not in err


def test_an_invalid_environment_setting_is_named(capsys, monkeypatch):
    monkeypatch.setenv("QRT_HEARTBEAT_TIMEOUT", "-1")
    monkeypatch.setenv("QRT_EXECUTOR_CAPACITY", "none")
    assert main(["scheduler"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert all(line.startswith("qrt: invalid setting ") for line in lines)
    assert {line.split()[3] for line in lines} == {"heartbeat_timeout:", "executor_capacity:"}


BUS_REFUSED = (
    "qrt: invalid setting bus_url: use memory:// or amqp://user:password@host:5672/"
    " (QRT_BUS_URL='carrier-pigeon://')\n"
)


def test_an_unsupported_bus_url_makes_the_gateway_exit_2_saying_so(capsys, monkeypatch):
    monkeypatch.setenv("QRT_BUS_URL", "carrier-pigeon://")
    assert main(["gateway", "--port", "0"]) == 2
    assert capsys.readouterr().err == BUS_REFUSED


def test_an_unsupported_store_url_makes_the_scheduler_exit_2_saying_so(capsys, monkeypatch):
    monkeypatch.setenv("QRT_STORE_URL", "postgres://db/qrt")
    assert main(["scheduler"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "qrt: invalid setting store_url: use sqlite:///path/to/file.db or mongodb://host/database"
        " (QRT_STORE_URL='postgres://db/qrt')\n"
    )


@pytest.mark.parametrize(
    ("text", "said"),
    [("qubits = 0\n", "qubits"), ("name = [unclosed\n", "is not valid TOML")],
    ids=["bad value", "not toml"],
)
def test_an_invalid_device_configuration_exits_2_saying_so(capsys, tmp_path, text, said):
    config = tmp_path / "device.toml"
    config.write_text(text)
    assert main(["device", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"qrt: invalid device configuration: {config}")
    assert said in err and "Traceback" not in err


def test_a_missing_device_configuration_exits_2_saying_so(capsys, tmp_path):
    assert main(["device", "--config", str(tmp_path / "absent.toml")]) == 2
    assert "qrt: invalid device configuration: cannot read" in capsys.readouterr().err


def test_python_m_qrt_cli_is_the_qrt_command(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("QRT_")}
    env.update(QRT_BUS_URL="carrier-pigeon://", QRT_DATA_DIR=str(tmp_path / "data"))
    done = subprocess.run(
        [sys.executable, "-m", "qrt_cli", "gateway", "--port", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr == BUS_REFUSED
