"""The one settings object: every knob is documented, bad values are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from qrt_common.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme_configuration_table(name: str):
    assert f"`QRT_{name.upper()}`" in README


def test_settings_come_from_qrt_environment_variables(monkeypatch):
    monkeypatch.setenv("QRT_OPS_PORT", "9200")
    monkeypatch.setenv("QRT_ONESHOT_RUNNER", "kubernetes")
    settings = Settings()
    assert (settings.ops_port, settings.oneshot_runner) == (9200, "kubernetes")
    monkeypatch.setenv("QRT_ONESHOT_RUNNER", "docker")
    with pytest.raises(ValidationError):
        Settings()


def test_an_executor_counts_as_lost_after_ten_silent_seconds_by_default(monkeypatch):
    for name in ("QRT_HEARTBEAT_INTERVAL", "QRT_HEARTBEAT_TIMEOUT", "QRT_MAX_ATTEMPTS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.heartbeat_interval, settings.heartbeat_timeout) == (2.0, 10.0)
    assert settings.max_attempts == 3


def test_job_preload_takes_module_names_and_refuses_anything_else(monkeypatch):
    monkeypatch.setenv("QRT_JOB_PRELOAD", " qiskit_ibm_runtime, qiskit_nature.second_q ,")
    assert Settings().job_preload_modules == ["qiskit_ibm_runtime", "qiskit_nature.second_q"]
    for wrong in ("os; rm -rf /", "a..b", "../evil", "1module"):
        monkeypatch.setenv("QRT_JOB_PRELOAD", wrong)
        with pytest.raises(ValidationError, match="no module name"):
            Settings()
