"""A device's configuration: every key optional, for any number of qubits and any topology."""

from __future__ import annotations

import math

import pytest

from qrt_common.errors import DeviceConfigError
from qrt_device.config import STARMON_5, DeviceConfig, load_config, star
from tests.support.device_clients import Client, running
from tests.support.programs import ROOT

COUNTS = [1, 2, 3, 4, 5, 6, 7, 12, 30]


@pytest.mark.parametrize("qubits", COUNTS)
def test_a_config_giving_only_the_number_of_qubits_is_accepted(tmp_path, qubits):
    path = tmp_path / "device.toml"
    path.write_text(f"qubits = {qubits}\n")
    config = load_config(path)
    assert config.qubits == qubits
    assert config.topology == star(qubits)
    for key, starmon in STARMON_5.items():
        assert config.per_qubit(key) == [starmon[q % 5] for q in range(qubits)]
    assert set(config.edge_fidelities()) == set(config.topology)


def test_the_default_star_couples_every_qubit_to_qubit_2_or_the_last():
    assert star(1) == []
    assert star(2) == [(0, 1)]
    assert star(3) == [(0, 2), (1, 2)]
    assert star(5) == [(0, 2), (1, 2), (3, 2), (4, 2)] == DeviceConfig().topology
    assert star(7)[-2:] == [(5, 2), (6, 2)]


def test_default_calibration_fits_a_topology_of_its_own(tmp_path):
    path = tmp_path / "device.toml"
    path.write_text("qubits = 4\ntopology = [[0, 1], [1, 2], [2, 3]]\n")
    config = load_config(path)
    # Starmon-5's fidelity where it has the edge (1-2, 3-2), 0.98 where it has none.
    assert config.edge_fidelities() == {(0, 1): 0.98, (1, 2): 0.976, (2, 3): 0.979}


def test_the_readme_configuration_is_the_default(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quantum devices (device-2300)", 1)[1]
    toml = section.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "device.toml"
    path.write_text(toml)
    shown = load_config(path)
    assert shown.model_dump(exclude={"calibration"}) == DeviceConfig().model_dump(
        exclude={"calibration"}
    )
    for key in STARMON_5:
        assert shown.per_qubit(key) == DeviceConfig().per_qubit(key)
    assert shown.edge_fidelities() == DeviceConfig().edge_fidelities()


@pytest.mark.parametrize("qubits", [1, 3, 7, 30])
async def test_a_device_of_any_size_runs_with_the_default_calibration(qubits):
    async with running(qubits=qubits) as (device, context):
        client = Client(context, device.rep_endpoint)
        static = (await client.call("get_static"))["payload"]
        assert static["nqubits"] == qubits
        assert static["topology"] == [list(edge) for edge in star(qubits)]
        dynamic = (await client.call("get_dynamic"))["payload"]
        assert set(dynamic["t1_in_us"]) == {"__labels__", *(f"q{q}" for q in range(qubits))}
        assert sum(
            len(v) for k, v in dynamic["two_qubit_gate_fidelity"].items() if k[0] == "q"
        ) == (qubits - 1)
        await client.call("initialize")
        # A noisy circuit on up to six qubits, coupled as the star says.
        used = min(qubits, 6)
        centre = min(2, qubits - 1)
        lines = ["version 3.0", f"qubit[{used}] q", f"bit[{used}] b", f"H q[{centre}]"]
        lines += [f"CNOT q[{centre}], q[{q}]" for q in range(used) if q != centre]
        lines.append("b = measure q")
        reply = await client.execute("\n".join(lines) + "\n", shots=200)
        assert reply["status"] == "success", reply
        counts = reply["payload"]["results"]
        assert sum(counts.values()) == 200
        assert counts.get("0" * used, 0) + counts.get("1" * used, 0) > 100


async def test_a_worker_kept_once_started_is_configured_with_inf(tmp_path):
    path = tmp_path / "device.toml"
    path.write_text("worker_idle_seconds = inf\n")
    config = load_config(path)
    assert config.worker_idle_seconds == math.inf
    # What the worker gets: the same configuration, inf included.
    assert DeviceConfig.model_validate_json(config.model_dump_json()) == config
    async with running(noise=False, worker_idle_seconds=math.inf) as (device, context):
        client = Client(context, device.rep_endpoint)
        await client.call("initialize")
        reply = await client.execute("version 3.0\nqubit q\nbit b\nX q\nb = measure q\n", 4)
        assert reply["payload"]["results"] == {"1": 4}, reply
        assert device.supervisor.running


@pytest.mark.parametrize("value", ["0", "-1.0", "nan"])
def test_a_worker_idle_time_must_be_positive(tmp_path, value):
    path = tmp_path / "device.toml"
    path.write_text(f"worker_idle_seconds = {value}\n")
    with pytest.raises(DeviceConfigError, match="worker_idle_seconds"):
        load_config(path)
