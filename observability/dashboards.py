"""qrt's Grafana dashboards as code (grafana-foundation-sdk), written into the Helm chart.

    python observability/dashboards.py          # write charts/qrt/files/dashboards/*.json
    python observability/dashboards.py --check  # fail if the written files are out of date

Every panel's query is run against a real Prometheus scraping real services by
tests/test_observability.py, so a dashboard here is known to show data.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as StatPanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphDrawStyle
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUTPUT = Path(__file__).resolve().parent.parent / "charts" / "qrt" / "files" / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")


@dataclass(frozen=True)
class Query:
    """One PromQL expression of a panel and the legend of its series."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Chart:
    """A panel: a time series (or a single stat) of one or more queries, in a unit."""

    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    description: str = ""
    stat: bool = False
    width: int = 12


def _panel(chart: Chart) -> Any:
    panel = StatPanel() if chart.stat else TimeseriesPanel().draw_style(GraphDrawStyle.LINE)
    panel = panel.title(chart.title).unit(chart.unit).datasource(DATASOURCE)
    panel = panel.span(chart.width).height(6 if chart.stat else 8)
    if chart.description:
        panel = panel.description(chart.description)
    if not chart.stat:
        panel = panel.min(0)
    for index, query in enumerate(chart.queries):
        target = Dataquery().expr(query.expr).ref_id(chr(ord("A") + index))
        if query.legend:
            target = target.legend_format(query.legend)
        panel = panel.with_target(target)
    return panel


def dashboard(uid: str, title: str, sections: Iterable[tuple[str, Iterable[Chart]]]) -> Any:
    """A dashboard of rows of charts, with a Prometheus data source picker."""
    board = (
        Dashboard(title)
        .uid(uid)
        .tags(["qrt"])
        .refresh("30s")
        .time("now-1h", "now")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    for row_title, charts in sections:
        board = board.with_row(Row(row_title))
        for chart in charts:
            board = board.with_panel(_panel(chart))
    return board.build()


RATE = "[$__rate_interval]"

JOBS_PER_SECOND = Chart(
    "Jobs ended per second, by status",
    (Query(f"sum by (status) (rate(qrt_jobs_ended_total{RATE}))", "{{status}}"),),
    unit="ops",
)
SUBMITTED = Chart(
    "Jobs submitted per second",
    (Query(f"sum(rate(qrt_jobs_submitted_total{RATE}))", "submitted"),),
    unit="ops",
)
QUEUE_DEPTH = Chart(
    "Queue depth, by backend",
    (Query("sum by (backend) (qrt_scheduler_queue_depth)", "{{backend}}"),),
)
JOBS_BY_STATUS = Chart(
    "Jobs waiting and placed",
    (Query("sum by (status) (qrt_jobs)", "{{status}}"),),
)
EXECUTORS = Chart(
    "Live executors and their capacity",
    (
        Query("sum(qrt_executors_live)", "executors"),
        Query("sum(qrt_executors_capacity)", "capacity (jobs)"),
        Query("sum(qrt_executor_running_jobs)", "running jobs"),
    ),
)
FAILURE_RATIO = Chart(
    "Failed share of ended jobs",
    (
        Query(
            f'sum(rate(qrt_jobs_ended_total{{status="Failed"}}{RATE}))'
            f" / sum(rate(qrt_jobs_ended_total{RATE}))",
            "failed",
        ),
    ),
    unit="percentunit",
)

PROGRAM_PROBLEMS = Chart(
    "Programs that cannot be loaded",
    (Query("max(qrt_program_problems)", "programs and programs.ini files"),),
    description="Counted by each gateway on /readyz and GET /programs, which name each file "
    "and line; their submits are refused, the other programs run.",
)


def _quantile(q: float, metric: str, by: str = "") -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{RATE})))"


ASSIGNMENT_WAIT = Chart(
    "Submission to assignment (p50, p95)",
    (
        Query(_quantile(0.5, "qrt_job_assignment_wait_seconds"), "p50"),
        Query(_quantile(0.95, "qrt_job_assignment_wait_seconds"), "p95"),
    ),
    unit="s",
)
API_LATENCY = Chart(
    "API latency (p50, p95; websockets excluded)",
    (
        Query(
            "histogram_quantile(0.5, sum by (le) (rate("
            f'qrt_http_request_duration_seconds_bucket{{route!~"/stream/.*"}}{RATE})))',
            "p50",
        ),
        Query(
            "histogram_quantile(0.95, sum by (le) (rate("
            f'qrt_http_request_duration_seconds_bucket{{route!~"/stream/.*"}}{RATE})))',
            "p95",
        ),
    ),
    unit="s",
)
JOB_DURATION = Chart(
    "Job duration p95, by program",
    (Query(_quantile(0.95, "qrt_job_duration_seconds", "program"), "{{program}}"),),
    unit="s",
    description="Bundled programs by id; every uploaded program's jobs together as 'uploaded' "
    "(their ids are their owners', and /metrics is read without a key).",
)


def overview() -> Any:
    return dashboard(
        "qrt-overview",
        "qrt: platform overview",
        [
            ("Throughput", [JOBS_PER_SECOND, SUBMITTED]),
            ("Latency", [API_LATENCY, ASSIGNMENT_WAIT]),
            (
                "Health",
                [FAILURE_RATIO, QUEUE_DEPTH, EXECUTORS, JOBS_BY_STATUS, PROGRAM_PROBLEMS],
            ),
        ],
    )


REQUESTS = Chart(
    "Requests per second, by route and status",
    (
        Query(
            f"sum by (route, status) (rate(qrt_http_requests_total{RATE}))", "{{route}} {{status}}"
        ),
    ),
    unit="reqps",
    width=24,
)
ERRORS = Chart(
    "Error responses per second (4xx, 5xx)",
    (
        Query(
            f'sum by (status) (rate(qrt_http_requests_total{{status=~"[45].."}}{RATE}))',
            "{{status}}",
        ),
    ),
    unit="reqps",
)
WEBSOCKETS = Chart("Open websockets", (Query("sum(qrt_gateway_open_websockets)", "open"),))
REASSIGNMENTS = Chart(
    "Reassignments per second (executor lost or drained)",
    (Query(f"sum(rate(qrt_job_reassignments_total{RATE}))", "reassigned"),),
    unit="ops",
)
RUNNING_BY_EXECUTOR = Chart(
    "Running jobs, by executor",
    (Query("sum by (instance) (qrt_executor_running_jobs)", "{{instance}}"),),
)
WARM_POOL = Chart(
    "Warm job processes, by executor",
    (Query("sum by (instance) (qrt_executor_warm_pool_size)", "{{instance}}"),),
)
OUTCOMES = Chart(
    "Jobs run per second, by outcome",
    (Query(f"sum by (outcome) (rate(qrt_job_duration_seconds_count{RATE}))", "{{outcome}}"),),
    unit="ops",
)


CIRCUITS = Chart(
    "Circuits run per second, by backend",
    (Query(f"sum by (backend) (rate(qrt_circuits_executed_total{RATE}))", "{{backend}}"),),
    unit="ops",
)
SHOTS = Chart(
    "Shots run per second, by backend",
    (Query(f"sum by (backend) (rate(qrt_shots_executed_total{RATE}))", "{{backend}}"),),
    unit="ops",
)
DEVICE_STATE = Chart(
    "Device state (1: in that state)",
    (Query("max by (device, state) (qrt_device_state)", "{{device}} {{state}}"),),
    width=24,
)
DEVICE_EXECUTIONS = Chart(
    "Executions per second, by outcome",
    (
        Query(
            f"sum by (device, outcome) (rate(qrt_device_executions_total{RATE}))",
            "{{device}} {{outcome}}",
        ),
    ),
    unit="ops",
)
DEVICE_SHOTS = Chart(
    "Shots per second",
    (Query(f"sum by (device) (rate(qrt_device_shots_total{RATE}))", "{{device}}"),),
    unit="ops",
)
DEVICE_LATENCY = Chart(
    "Execute latency (p50, p95)",
    (
        Query(_quantile(0.5, "qrt_device_execute_duration_seconds", "device"), "{{device}} p50"),
        Query(_quantile(0.95, "qrt_device_execute_duration_seconds", "device"), "{{device}} p95"),
    ),
    unit="s",
)
DEVICE_LOCK = Chart(
    "Locked by a session / answering its executors",
    (
        Query("max by (device) (qrt_device_locked)", "{{device}} locked"),
        Query("min by (device) (qrt_device_reachable)", "{{device}} reachable"),
    ),
)


def _per_qubit(title: str, metric: str, unit: str) -> Chart:
    return Chart(title, (Query(f"max by (device, qubit) ({metric})", "{{device}} {{qubit}}"),),
                 unit=unit)  # fmt: skip


CALIBRATION = [
    _per_qubit("T1 per qubit", "qi_t1_in_us", "µs"),
    _per_qubit("T2 per qubit", "qi_t2_in_us", "µs"),
    _per_qubit(
        "Single-qubit gate fidelity per qubit", "qi_single_qubit_gate_fidelity", "percentunit"
    ),
    _per_qubit("Readout fidelity per qubit", "qi_readout_fidelity", "percentunit"),
    Chart(
        "Two-qubit gate fidelity per pair",
        (
            Query(
                "max by (device, qubit1, qubit2) (qi_two_qubit_gate_fidelity)",
                "{{device}} {{qubit1}}-{{qubit2}}",
            ),
        ),
        unit="percentunit",
    ),
    Chart(
        "Time since the last calibration",
        (Query("max by (device) (qi_seconds_since_calibration)", "{{device}}"),),
        unit="s",
    ),
]


def device() -> Any:
    return dashboard(
        "qrt-device",
        "qrt: quantum devices",
        [
            ("State", [DEVICE_STATE, DEVICE_LOCK]),
            ("Executions", [DEVICE_EXECUTIONS, DEVICE_SHOTS, DEVICE_LATENCY]),
            ("Calibration", CALIBRATION),
        ],
    )


def gateway() -> Any:
    return dashboard(
        "qrt-gateway",
        "qrt: api-gateway",
        [
            ("Requests", [REQUESTS, ERRORS, API_LATENCY]),
            ("Streams and programs", [WEBSOCKETS, PROGRAM_PROBLEMS]),
        ],
    )


def scheduler() -> Any:
    return dashboard(
        "qrt-scheduler",
        "qrt: scheduler",
        [
            ("Jobs", [SUBMITTED, JOBS_PER_SECOND, JOBS_BY_STATUS, QUEUE_DEPTH]),
            ("Placement", [ASSIGNMENT_WAIT, EXECUTORS, REASSIGNMENTS]),
        ],
    )


def executor() -> Any:
    return dashboard(
        "qrt-executor",
        "qrt: executors",
        [
            ("Load", [RUNNING_BY_EXECUTOR, WARM_POOL]),
            ("Jobs", [JOB_DURATION, OUTCOMES]),
            ("Backends", [CIRCUITS, SHOTS]),
        ],
    )


DASHBOARDS = {
    "overview": overview,
    "gateway": gateway,
    "scheduler": scheduler,
    "executor": executor,
    "device": device,
}


def render() -> dict[str, str]:
    """Each dashboard's file name and JSON text."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    return {f"qrt-{n}.json": encoder.encode(build()) + "\n" for n, build in DASHBOARDS.items()}


def queries(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query in a dashboard's JSON."""
    return [
        (panel["title"], target["expr"])
        for panel in document.get("panels", [])
        for target in panel.get("targets", [])
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check the files are current")
    args = parser.parse_args()
    rendered = render()
    if args.check:
        current = {n: (OUTPUT / n).read_text() for n in rendered if (OUTPUT / n).is_file()}
        stale = [n for n, text in rendered.items() if current.get(n) != text]
        for name in stale:
            print(f"{OUTPUT / name} is out of date: run python observability/dashboards.py")
        return 1 if stale else 0
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (OUTPUT / name).write_text(text)
        print(f"wrote {OUTPUT / name} ({len(queries(json.loads(text)))} queries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
