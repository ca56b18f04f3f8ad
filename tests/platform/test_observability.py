"""Alert rules and dashboards, proven against a real Prometheus scraping real services."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.support.mesh import Mesh, free_port, wait_for_port
from tests.support.platform import get_json, wait_for
from tests.support.waiting import eventually

pytestmark = [pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "charts" / "qrt" / "files" / "alerts.yaml"
DASHBOARDS = ROOT / "charts" / "qrt" / "files" / "dashboards"
BELL = "version 3.0\nqubit[5] q\nbit[5] b\nH q[0]\nCNOT q[0], q[2]\nb = measure q\n"
RATE_INTERVAL = "30s"
"""What Grafana's `$__rate_interval` stands for in these queries (scrapes are 1 s apart)."""


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install prometheus (see the README)")
    return path


def test_alert_rules_pass_promtool_check_and_unit_tests():
    check = subprocess.run(
        [tool("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(
        [tool("promtool"), "test", "rules", "alerts_test.yaml"],
        cwd=ROOT / "observability",
        capture_output=True,
        text=True,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_dashboards_in_the_chart_are_generated_from_the_code():
    check = subprocess.run(
        [sys.executable, str(ROOT / "observability" / "dashboards.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def dashboard_queries() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        document = json.loads(path.read_text())
        panels = [p for top in document["panels"] for p in [top, *top.get("panels", [])]]
        for panel in panels:
            for target in panel.get("targets", []):
                expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
                found.append((path.stem, panel["title"], expr))
    return found


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real Prometheus on loopback; yields its URL and the file of its scrape targets."""
    port = free_port()
    targets = tmp_path / "targets.json"
    targets.write_text("[]")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": "qrt",
                "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - lives with the process
    process = subprocess.Popen(
        [tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=log,
    )  # fmt: skip
    log.close()
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}", targets
    finally:
        process.terminate()
        process.wait(30)


async def query(http: aiohttp.ClientSession, expr: str, at: datetime | None = None) -> list[dict]:
    """`expr`'s instant vector now, or evaluated at the moment `at`."""
    params = {"query": expr} if at is None else {"query": expr, "time": f"{at.timestamp():.3f}"}
    async with http.get("/api/v1/query", params=params) as response:
        body = await response.json()
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


async def scraped_since(http: aiohttp.ClientSession, moment: datetime, count: int) -> None:
    """Wait until Prometheus has `count` targets, each scraped successfully since `moment`."""

    async def targets() -> list[dict]:
        return list((await get_json(http, "/api/v1/targets"))["data"]["activeTargets"])

    def all_scraped(found: list[dict]) -> bool:
        fresh = [t for t in found if datetime.fromisoformat(t["lastScrape"]) > moment]
        return len(fresh) == len(found) == count and all(t["health"] == "up" for t in fresh)

    what = f"Prometheus scraped {count} targets since {moment:%H:%M:%S.%f}"
    await eventually(targets, what, until=all_scraped)


async def test_every_panel_shows_data_and_every_rule_evaluates(mesh: Mesh, prometheus):
    prometheus_url, targets = prometheus
    rep, pub = free_port(), free_port()
    mesh.start("device", "device", QRT_DEVICE_REP_ADDRESS=f"tcp://127.0.0.1:{rep}",
               QRT_DEVICE_PUB_ADDRESS=f"tcp://127.0.0.1:{pub}")  # fmt: skip
    mesh.scheduler()
    executor = mesh.executor(
        capacity=2, QRT_DEVICES=f"tcp://127.0.0.1:{rep}", QRT_DEVICE_METRICS_INTERVAL="1"
    )
    gateway_url = mesh.gateway()
    services = {
        "scheduler": "scheduler",
        executor: "executor",
        "gateway-0": "gateway",
        "device": "device",
    }
    for name in services:
        wait_for_port(mesh.ops_ports[name], mesh.processes[name])
    targets.write_text(json.dumps([
        {"targets": [f"127.0.0.1:{mesh.ops_ports[name]}"], "labels": {"service": service}}
        for name, service in services.items()
    ]))  # fmt: skip

    async with (
        aiohttp.ClientSession(base_url=gateway_url) as api,
        aiohttp.ClientSession(base_url=prometheus_url) as http,
    ):
        ids = []
        for _ in range(4):  # each in a scrape of its own, so rates have two points
            for program in ("noop", "failing", "failing"):
                async with api.post("/jobs", json={"programId": program}) as response:
                    ids.append((await response.json())["id"])
            on_device = {"programId": "cqasm-runner", "backend": "Starmon-5",
                         "params": {"circuit": BELL, "shots": 100}}  # fmt: skip
            async with api.post("/jobs", json=on_device) as response:
                assert response.status == 200, await response.text()
                ids.append((await response.json())["id"])
            async with api.get("/jobs/no-such-job") as response:
                assert response.status == 404
            async with api.ws_connect(f"/stream/jobs/{ids[-2]}") as ws:
                async for _ in ws:
                    pass
            await scraped_since(http, datetime.now(UTC), len(services))
        for job_id in ids:
            await wait_for(api, job_id)

        await scraped_since(http, datetime.now(UTC), len(services))

        async def seen() -> tuple[list[dict], list[dict], list[dict]]:
            up = await query(http, "up == 1")
            done = await query(http, "sum(qrt_job_duration_seconds_count)")
            calibrated = await query(http, "qi_t1_in_us")
            return up, done, calibrated

        def everything(found: tuple[list[dict], list[dict], list[dict]]) -> bool:
            up, done, calibrated = found
            all_done = bool(done) and float(done[0]["value"][1]) == len(ids)
            return len(up) == len(services) and all_done and bool(calibrated)

        what = "Prometheus sees every service up, every job done and the calibration"
        await eventually(seen, what, until=everything)

        # Every panel at one moment, when all the jobs are in: one by one, on a busy machine,
        # the last would look at a rate window the jobs have left by then.
        settled = datetime.now(UTC)
        empty = []
        for board, title, expr in dashboard_queries():
            result = await query(http, expr, at=settled)
            values = [float(r["value"][1]) for r in result]
            if not values or all(math.isnan(v) for v in values):
                empty.append(f"{board} / {title}: {expr}")
        assert empty == [], "panels without data:\n" + "\n".join(empty)

        async with http.get("/api/v1/rules") as response:
            groups = (await response.json())["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert {r["name"] for r in rules} == {
            "QrtNoLiveExecutor",
            "QrtQueueGrowing",
            "QrtJobFailureRatioHigh",
            "QrtProgramsCannotBeLoaded",
            "QrtSchedulerDown",
            "QrtDeviceOffline",
            "QrtDeviceNotIdleForLong",
            "QrtDeviceCalibrationOutOfBounds",
        }
        for rule in rules:
            assert rule["health"] == "ok", rule
            assert rule["lastEvaluation"] != "0001-01-01T00:00:00Z", rule
        firing = {r["name"] for r in rules if r["state"] != "inactive"}
        # Half of the jobs failed: that alert is pending (it needs 10 minutes to fire); the
        # executor is alive, so that one is quiet.
        assert "QrtJobFailureRatioHigh" in firing and "QrtNoLiveExecutor" not in firing
        assert "QrtDeviceOffline" not in firing and "QrtDeviceCalibrationOutOfBounds" not in firing
        assert "QrtProgramsCannotBeLoaded" not in firing
        # The device's calibration arrives as the protocol maps it, e.g. qi_t1_in_us{qubit="q0"}.
        t1 = await query(http, 'qi_t1_in_us{device="Starmon-5", qubit="q0"}')
        assert len(t1) == 1 and float(t1[0]["value"][1]) > 0
