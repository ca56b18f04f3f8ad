"""A job's metrics and timeline: IBM's `GET /api/v1/jobs/{id}/metrics` (what the stock client's
`job.metrics()` and `job.usage()` read, plus qrt's per-stage timeline and, for device jobs, the
calibration in force when they executed), and qrt's own `GET /jobs/{id}/timeline`.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from qrt_common.errors import NotFound
from qrt_common.jobs import Job, utcnow
from qrt_common.timeline import (
    Stage,
    StageRecord,
    calibration_of,
    executing_seconds,
    timeline,
)

from .auth import principal
from .context import Gateway, gateway
from .ibm_api import CRN_PARAMETER, PREFIX, ibm_time, request_instance
from .openapi import Route
from .plumbing import json_response


async def _timeline(gw: Gateway, job: Job) -> list[StageRecord]:
    return timeline(job, await gw.store.job_stages(job.id))


def timeline_json(job: Job, entries: list[StageRecord]) -> dict[str, Any]:
    """The job's timeline and calibrations as JSON-ready dicts: each entry's stage, time (ISO
    8601 UTC with microseconds), attempt, executor, how long it lasted (ms; until now for the
    last entry of a job that has not ended) and the status of a `finished` one."""
    now = utcnow()
    stages: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        following = entries[index + 1].at if index + 1 < len(entries) else None
        if following is None and entry.stage is not Stage.FINISHED:
            following = now
        item: dict[str, Any] = {
            "stage": entry.stage.value,
            "at": ibm_time(entry.at),
            "attempt": entry.attempt,
            "executor_id": entry.executor_id,
            "duration_ms": None
            if following is None
            else round(max((following - entry.at).total_seconds(), 0.0) * 1000, 3),
        }
        if entry.stage is Stage.FINISHED:
            item["status"] = entry.detail
        stages.append(item)
    calibrations = []
    for entry in entries:
        found = calibration_of(entry)
        if found is not None:
            calibrations.append(
                {
                    "backend": found.get("backend"),
                    "attempt": entry.attempt,
                    "executing_at": ibm_time(entry.at),
                    "calibration": found.get("calibration"),
                }
            )
    return {"timeline": stages, "calibrations": calibrations}


def metrics(job: Job, entries: list[StageRecord]) -> dict[str, Any]:
    """IBM's job metrics for `job`: `timestamps` (created, running, finished), `usage` (the
    quantum resource's seconds: a device job's time in `executing`, a simulator job's running
    time; `status` `pending` until the job ends), with the older `usage.seconds`,
    `usage.quantum_seconds` and `bss.seconds` for older clients, and qrt's `timeline` and
    `calibrations`."""
    running = [e.at for e in entries if e.stage is Stage.RUNNING]
    executed = any(e.stage is Stage.EXECUTING for e in entries)
    if executed:
        quantum = executing_seconds(entries)
    elif job.started is not None:
        quantum = max(((job.ended or utcnow()) - job.started).total_seconds(), 0.0)
    else:
        quantum = 0.0
    seconds = round(quantum, 3)
    return {
        "timestamps": {
            "created": ibm_time(job.created),
            "running": ibm_time(running[0] if running else job.started),
            "finished": ibm_time(job.ended),
        },
        "usage": {
            "qpu_charge_time_seconds": seconds,
            "status": "complete" if job.status.is_final else "pending",
            "seconds": seconds,
            "quantum_seconds": seconds,
        },
        "bss": {"seconds": seconds},
        "circuits_execution_time_ns": round(quantum * 1e9) if executed else None,
        "attempts": job.attempt,
        **timeline_json(job, entries),
    }


async def ibm_job_metrics(request: web.Request) -> web.Response:
    gw = gateway(request)
    job = await gw.find_job(request.match_info["job_id"], principal(request))
    if job.instance != request_instance(request):
        raise NotFound(f"job '{job.id}' not found")
    return json_response(json.dumps(metrics(job, await _timeline(gw, job))))


async def job_timeline(request: web.Request) -> web.Response:
    gw = gateway(request)
    job = await gw.find_job(request.match_info["job_id"], principal(request))
    return json_response(json.dumps(timeline_json(job, await _timeline(gw, job))))


ROUTES: tuple[Route, ...] = (
    Route("GET", f"{PREFIX}/jobs/{{job_id}}/metrics", ibm_job_metrics,
          "A job's metrics, timeline and calibration (IBM API)", "ibm",
          errors=(400, 401, 404, 503), query=(CRN_PARAMETER,),
          response_schema={"type": "object"}),
    Route("GET", "/jobs/{job_id}/timeline", job_timeline,
          "A job's stages with their times, and the calibration its device had", "jobs",
          errors=(401, 404, 503), response_schema={"type": "object"},
          description="Stages: queued, assigned, running, waiting_for_device, "
          "executing, finished; each with its time (UTC, microseconds), attempt, executor and "
          "duration in ms. For device jobs, `calibrations` holds the device's get_dynamic "
          "answer read when the device was locked for the job."),
)  # fmt: skip
