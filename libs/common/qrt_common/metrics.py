"""The platform's Prometheus metrics, in one place, and the HTTP endpoints that expose them.

Every service process records into prometheus-client's default registry and serves it at
`/metrics`. Job processes record nothing: they are forked from the executor's zygote and die with
the job, so what they count (circuits, shots) travels back to the executor in their events and is
recorded there. State the services hold in memory (queue depth, live executors) is read at
scrape time by collectors, so it is never stale.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .connections import CappedRunner

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 7200.0)

# Gateway.
HTTP_REQUESTS = Counter(
    "qrt_http_requests_total",
    "HTTP requests the gateway answered, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "qrt_http_request_duration_seconds",
    "Time the gateway took to answer a request (for a websocket: the whole stream).",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
OPEN_WEBSOCKETS = Gauge("qrt_gateway_open_websockets", "Websocket streams open on the gateway.")
PROGRAM_PROBLEMS = Gauge(
    "qrt_program_problems",
    "Programs (programs.ini entries) and programs.ini files that cannot be loaded, as the "
    "gateway last found them on a /readyz or a program listing.",
)
"""Set where the gateway reads the registry's problems anyway, not at scrape time: reading it
may read files, and `/metrics` is answered on the event loop."""

# Scheduler.
JOBS_SUBMITTED = Counter("qrt_jobs_submitted_total", "Jobs the scheduler was told of.")
JOBS_ENDED = Counter(
    "qrt_jobs_ended_total", "Jobs that reached a final status, by that status.", ["status"]
)
ASSIGNMENT_WAIT = Histogram(
    "qrt_job_assignment_wait_seconds",
    "Time from a job's submission to its (first or later) assignment to an executor.",
    buckets=DURATION_BUCKETS,
)
REASSIGNMENTS = Counter(
    "qrt_job_reassignments_total",
    "Running jobs handed back to the queue (executor lost, drained or cut off).",
)

# Executor.
JOB_DURATION = Histogram(
    "qrt_job_duration_seconds",
    "Time a job process ran on this executor, by program (a bundled program's id, or "
    "'uploaded') and outcome.",
    ["program", "outcome"],
    buckets=DURATION_BUCKETS,
)
UPLOADED_PROGRAM = "uploaded"
"""The `program` label of every uploaded program's jobs."""


def program_label(program_id: str, program_digest: str | None) -> str:
    """The `program` label of a job's metrics: a bundled program's id (`program_digest` None;
    programs.ini's, the same on every qrt), else UPLOADED_PROGRAM. `/metrics` is read without a
    key (Prometheus scrapes it), and an uploaded program's id is its owner's to share: it may be
    private, or be made private later, when a series holding it could no longer be taken back.
    One value for all uploads also keeps the label's values few."""
    return program_id if program_digest is None else UPLOADED_PROGRAM


CIRCUITS = Counter("qrt_circuits_executed_total", "Circuits run on backends.", ["backend"])
SHOTS = Counter("qrt_shots_executed_total", "Shots run on backends.", ["backend"])

# Device (device-2300).
DEVICE_EXECUTIONS = Counter(
    "qrt_device_executions_total",
    "execute requests the device answered, by outcome (completed, rejected, failed).",
    ["device", "outcome"],
)
DEVICE_SHOTS = Counter("qrt_device_shots_total", "Shots the device ran.", ["device"])
DEVICE_EXECUTE_LATENCY = Histogram(
    "qrt_device_execute_duration_seconds",
    "Time from an execute request to its reply (parse, check, simulate).",
    ["device"],
    buckets=LATENCY_BUCKETS,
)


class GaugeCollector(Collector):
    """Gauges whose values a function reads from a service's state when Prometheus scrapes."""

    def __init__(self, read: Callable[[], Iterable[GaugeMetricFamily]]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._read()

    def describe(self) -> list[Any]:
        return []  # the families depend on state: nothing to check at registration


def gauge(name: str, documentation: str, values: dict[tuple[str, ...], float] | float,
          labels: tuple[str, ...] = ()) -> GaugeMetricFamily:  # fmt: skip
    """A gauge family with one sample, or one sample per label-value tuple."""
    family = GaugeMetricFamily(name, documentation, labels=list(labels) or None)
    if isinstance(values, dict):
        for label_values, value in values.items():
            family.add_metric(list(label_values), value)
    else:
        family.add_metric([], values)
    return family


def register(collector: Collector) -> Callable[[], None]:
    """Add `collector` to the default registry; returns the function that takes it out."""
    REGISTRY.register(collector)
    return lambda: REGISTRY.unregister(collector)


async def metrics_endpoint(request: web.Request) -> web.Response:
    """`/metrics` in the Prometheus text format."""
    response = web.Response(body=generate_latest(REGISTRY))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


ReadinessCheck = Callable[[], Awaitable[bool]]


async def healthz(request: web.Request) -> web.Response:
    """`/healthz`: the process answers."""
    return web.json_response({"status": "ok"})


async def readiness(
    checks: dict[str, ReadinessCheck], details: Mapping[str, Any] | None = None
) -> web.Response:
    """The `/readyz` answer: 200 when every check passes, else 503; each check's outcome, and
    `details` (what is worth knowing but does not decide readiness) beside them."""
    results = {name: await check() for name, check in checks.items()}
    ready = all(results.values())
    return web.json_response(
        {"status": "ready" if ready else "not ready", "checks": results, **(details or {})},
        status=200 if ready else 503,
    )


def health_routes(checks: dict[str, ReadinessCheck]) -> list[web.RouteDef]:
    """`/healthz`, `/readyz` (every check passes) and `/metrics`."""

    async def readyz(request: web.Request) -> web.Response:
        return await readiness(checks)

    return [
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", metrics_endpoint),
    ]


async def serve_operations(
    host: str, port: int, checks: dict[str, ReadinessCheck]
) -> web.AppRunner:
    """An HTTP server with only the health and metrics endpoints, for services without an API."""
    app = web.Application()
    app.add_routes(health_routes(checks))
    runner = CappedRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
