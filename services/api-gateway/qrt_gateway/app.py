"""The API gateway: the aiohttp application serving the Qiskit Runtime API of qrt."""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from qrt_common.account_admin import AccountAdmin
from qrt_common.accounts import load_pepper
from qrt_common.jobs import JobStatus
from qrt_common.messages import HEARTBEAT_TOPIC, UPDATES_TOPIC
from qrt_common.metrics import PROGRAM_PROBLEMS, healthz, metrics_endpoint, readiness

from . import (
    accounts,
    devices,
    ibm_backends,
    ibm_jobs,
    ibm_metrics,
    ibm_sessions,
    jobs,
    programs,
    services,
    tokens,
    websockets,
)
from .auth import AUTHENTICATOR, Authenticator, authenticate
from .console import add_pages
from .context import GATEWAY, Gateway, gateway
from .ibm_api import ibm_errors
from .jobs import MAX_OFFSET, MAX_PAGE
from .openapi import Parameter, Route, openapi_document
from .plumbing import body_headers, json_errors, measured
from .schemas import (
    BackendList,
    ExecutionOut,
    InstanceLimits,
    InstanceList,
    InstanceOut,
    InstanceRequest,
    JobCreated,
    JobList,
    JobOut,
    JobRequest,
    KeyCreated,
    KeyList,
    KeyRequest,
    MemberList,
    MemberOut,
    MemberRequest,
    ProgramCreated,
    ProgramData,
    ProgramList,
    ProgramOut,
    ProgramRequest,
    ProgramUpdate,
    ServiceHealth,
    ServiceLog,
    ServiceRequest,
    UserList,
    UserOut,
    UserRequest,
    UserUpdate,
)

try:
    VERSION = version("qrt")
except PackageNotFoundError:  # running from a source tree that was not installed
    VERSION = "0.0.0"

_TIME = {"format": "date-time"}
_JOB_FILTERS = (
    Parameter("limit", "Page size, 1 to 1000 (default 200).", "integer",
              constraints={"minimum": 1, "maximum": MAX_PAGE}),
    Parameter("offset", "How many matching jobs to skip.", "integer",
              constraints={"minimum": 0, "maximum": MAX_OFFSET}),
    Parameter("pending", "true: only Queued and Running jobs; false: only ended ones.", "boolean"),
    Parameter("status", "Only jobs with this status (repeatable).",
              constraints={"enum": [s.value for s in JobStatus]}),
    Parameter("program", "Only jobs of this program."),
    Parameter("backend", "Only jobs on this backend."),
    Parameter("hub", "Only jobs of this hub."),
    Parameter("group", "Only jobs of this group."),
    Parameter("project", "Only jobs of this project."),
    Parameter("tags", "Only jobs carrying all these tags (comma-separated or repeated)."),
    Parameter("session_id", "Only jobs of this session."),
    Parameter("created_after", "Only jobs created after this ISO 8601 time (UTC if no offset; "
              "in UTC within the years 1 to 9999).", constraints=_TIME),
    Parameter("created_before", "Only jobs created before this ISO 8601 time (UTC if no "
              "offset; in UTC within the years 1 to 9999).", constraints=_TIME),
)  # fmt: skip

_STRING = {"type": "string"}
_ATTEMPT = Parameter(
    "attempt",
    "Only what this attempt of the job wrote (1 to the job's `attempt`); by default all of "
    "them, in order.",
    "integer",
    constraints={"minimum": 1},
)
_IDEMPOTENT = (
    Parameter(
        "Idempotency-Key",
        "Makes the submit safe to retry: the same key from the same hub/group/project within "
        "QRT_IDEMPOTENCY_RETENTION gets the first job (header Idempotent-Replayed: true); the "
        "key used again for another request is a 409. 1 to 255 visible ASCII characters.",
        where="header",
        constraints={"pattern": "^[\\x21-\\x7e]{1,255}$"},
    ),
)
BOOTSTRAP_ADMIN = "admin"
"""The platform admin holding QRT_BOOTSTRAP_ADMIN_KEY."""
_EXECUTION_INSTANCE = Parameter(
    "instance",
    "The hub/group/project the execution belongs to; by default the uploaded program's owner "
    "(if the caller belongs to it), else the default instance (if the caller is a member), else "
    "the caller's one instance.",
)
_MEMBERS = "For platform admins and the instance's own admins (role admin there)."
_SERVICE = "/services/{program_id}"
_INSTANCE = "/admin/instances/{hub}/{group}/{project}"
_EXECUTION = f"{_SERVICE}/{{execution_id}}"
_PROMETHEUS_TEXT = {
    "200": {
        "description": "The Prometheus text exposition format",
        "content": {"text/plain": {"schema": _STRING}},
    }
}


def _token_exchange(
    fields: dict[str, Any], required: list[str], error: dict[str, Any], statuses: tuple[int, ...]
) -> dict[str, Any]:
    """The OpenAPI request body and responses of a token exchange: a form of `fields` in, a
    token or an error of the shape `error` (with `statuses`) out."""
    token = {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in"],
        "properties": {
            "access_token": _STRING,
            "token_type": _STRING,
            "expires_in": {"type": "integer"},
            "expiration": {"type": "integer"},
            "refresh_token": _STRING,
        },
    }
    failure = {"type": "object", "required": list(error), "properties": error}
    form = {"type": "object", "required": required, "properties": fields}
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": token}}}
    }
    for status in statuses:
        responses[str(status)] = {
            "description": "Refused",
            "content": {"application/json": {"schema": failure}},
        }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": form}},
        },
        "responses": responses,
    }


async def readyz(request: web.Request) -> web.Response:
    gw = gateway(request)
    problems = gw.registry.problems()
    PROGRAM_PROBLEMS.set(len(problems))
    # A program that cannot be loaded keeps out only itself (its submits are a 409): were it
    # to make the gateway unready, one typo in a programs directory every gateway pod mounts
    # would take the whole API out of its Service, every other program with it.
    return await readiness(
        {"store": gw.store.is_ready, "bus": gw.bus.is_ready},
        {"problems": [str(problem) for problem in problems]},
    )


ROUTES: tuple[Route, ...] = (
    Route("GET", "/programs", programs.list_programs,
          "List programs: the bundled ones, the owner's uploads and public uploads", "programs",
          response=ProgramList, errors=(400, 503), query=(Parameter(
              "owner", "hub/group/project whose private programs to list too (default: the "
              "default instance)."),)),
    Route("POST", "/programs", programs.upload_program, "Upload a program", "programs",
          response=ProgramCreated, body=ProgramRequest, status=201,
          errors=(400, 403, 409, 413, 503),
          description="A zip archive of the program's directory, base64-encoded: program.py "
          "with main(backend, user_messenger, **kwargs) at its root (metadata optionally in "
          "program.json), or a PlanQK project (planqk.json at its root). 409 if the owner "
          "has a program of that name."),
    Route("GET", "/programs/{program_id}", programs.get_program, "A program's metadata",
          "programs", response=ProgramOut, errors=(404, 503)),
    Route("PATCH", "/programs/{program_id}", programs.update_program,
          "Change an uploaded program's metadata", "programs", response=ProgramOut,
          body=ProgramUpdate, errors=(400, 403, 404, 409, 413, 503)),
    Route("PUT", "/programs/{program_id}/data", programs.replace_program_data,
          "Replace an uploaded program's code", "programs", response=ProgramOut,
          body=ProgramData, errors=(400, 403, 404, 413, 503),
          description="New jobs run the new code; jobs already assigned keep the code they "
          "were assigned. The body may also be the zip itself (Content-Type: application/zip)."),
    Route("DELETE", "/programs/{program_id}", programs.delete_program,
          "Delete an uploaded program", "programs", status=204, errors=(403, 404, 409, 503),
          description="409 while jobs of the program are queued or running."),
    Route("GET", "/backends", programs.list_backends, "List backends", "programs",
          response=BackendList),
    Route("POST", "/jobs", jobs.create_job, "Run a program", "jobs", response=JobCreated,
          body=JobRequest, errors=(400, 403, 404, 409, 413, 429, 503), query=_IDEMPOTENT,
          description="403: the program is private to another hub/group/project. 429: a "
          "submit limit is reached (see Retry-After). 503: the store cannot take the job "
          "(unreachable, or out of space) or the bus cannot announce it; no job is kept."),
    Route("GET", "/jobs", jobs.list_jobs, "List jobs, newest first", "jobs", response=JobList,
          errors=(400, 503), query=_JOB_FILTERS),
    Route("GET", "/jobs/{job_id}", jobs.get_job, "A job", "jobs", response=JobOut,
          errors=(404, 503)),
    Route("GET", "/jobs/{job_id}/logs", jobs.get_logs, "A job's log (stdout, stderr, publishes)",
          "jobs", response_schema=_STRING, errors=(400, 404, 503), query=(_ATTEMPT,)),
    Route("GET", "/jobs/{job_id}/results", jobs.get_results,
          "A job's final result (RuntimeEncoder JSON text in a JSON string)", "jobs",
          response_schema=_STRING, errors=(204, 404, 409, 503),
          description="204 while the job is queued or running (and for a completed job whose "
          "program returned nothing); 409 for a failed or cancelled job without a result: "
          "`{detail, field, status, reason}` say why none will come."),
    Route("POST", "/jobs/{job_id}/cancel", jobs.cancel_job, "Cancel a queued or running job",
          "jobs", status=204, errors=(403, 404, 409, 503)),
    Route("DELETE", "/jobs/{job_id}", jobs.delete_job, "Delete an ended job", "jobs",
          status=204, errors=(403, 404, 409, 503)),
    Route("GET", "/stream/jobs/{job_id}", websockets.stream_results,
          "Websocket: interim results then the final result", "streams",
          errors=(400, 404, 503), status=101,
          description="400: the request is no websocket handshake."),
    Route("GET", "/stream/jobs/{job_id}/logs", websockets.stream_logs,
          "Websocket: the job's log as it is written", "streams", errors=(400, 404, 503),
          status=101, description="400: the request is no websocket handshake."),
    Route("GET", f"{_SERVICE}/", services.health, "The service is up (PlanQK Service API)",
          "services", response=ServiceHealth, errors=(404, 503),
          description="Generation 1's health check. Generation 2 lists executions here; "
          "list them with GET /jobs?program={program_id}."),
    Route("POST", f"{_SERVICE}/", services.start_execution, "Start a service execution",
          "services", response=ExecutionOut, body=ServiceRequest, status=201,
          errors=(400, 403, 404, 409, 413, 429, 503),
          query=(*_IDEMPOTENT, _EXECUTION_INSTANCE),
          description="The Location header names the new execution. Input over "
          "QRT_MAX_SERVICE_INPUT_BYTES (1 MB) is refused with 413; a submit over a limit with "
          "429 (see Retry-After)."),
    Route("GET", f"{_EXECUTION}", services.get_execution, "A service execution", "services",
          response=ExecutionOut, errors=(404, 503)),
    Route("GET", f"{_EXECUTION}/result", services.get_result,
          "An ended execution's result, or its error {code, detail}", "services",
          response_schema={}, errors=(404, 409, 503),
          description="SUCCEEDED: the program's result (a ResultResponse gives "
          "{result, metadata}); FAILED: {code, detail}; 409 before the execution ended."),
    Route("GET", f"{_EXECUTION}/interim-results", services.get_interim_results,
          "An execution's interim results", "services", response_schema={},
          errors=(400, 404, 503), query=(Parameter("last", "true: only the latest (null if "
                                                   "none).", "boolean"), _ATTEMPT)),
    Route("GET", f"{_EXECUTION}/log", services.get_log, "An execution's log, line by line",
          "services", response=ServiceLog, errors=(400, 404, 503), query=(_ATTEMPT,)),
    Route("PUT", f"{_EXECUTION}/cancel", services.cancel_execution,
          "Cancel a pending or running execution", "services", response=ExecutionOut,
          errors=(403, 404, 409, 503)),
    Route("POST", "/token", tokens.client_credentials,
          "An access token for an API key (OAuth2 client credentials, as PlanQK's)", "tokens",
          extra=_token_exchange(
              {"grant_type": {"type": "string", "enum": ["client_credentials"]},
               "client_id": _STRING, "client_secret": _STRING}, ["grant_type"],
              {"error": _STRING, "error_description": _STRING}, (400, 401)),
          description="Client id: the key's id; client secret: the API key (HTTP Basic, or "
          "client_id/client_secret in the form). Errors as RFC 6749 §5.2."),
    Route("POST", "/identity/token", tokens.iam_token,
          "An access token for an API key (IBM Cloud IAM's API-key grant)", "tokens",
          extra=_token_exchange(
              {"grant_type": {"type": "string",
                              "enum": ["urn:ibm:params:oauth:grant-type:apikey"]},
               "apikey": _STRING, "response_type": _STRING}, ["grant_type", "apikey"],
              {"errorCode": _STRING, "errorMessage": _STRING}, (400,)),
          description="What qiskit-ibm-runtime asks $IAM_URL/identity/token for."),
    Route("GET", "/admin/users", accounts.list_users, "List users", "admin",
          response=UserList, errors=(403, 409, 503)),
    Route("POST", "/admin/users", accounts.add_user, "Add a user", "admin", response=UserOut,
          body=UserRequest, status=201, errors=(400, 403, 409, 503)),
    Route("PATCH", "/admin/users/{name}", accounts.update_user,
          "Make a user a platform admin or not", "admin", response=UserOut, body=UserUpdate,
          errors=(400, 403, 404, 409, 503)),
    Route("DELETE", "/admin/users/{name}", accounts.remove_user,
          "Remove a user with their keys and memberships", "admin", status=204,
          errors=(403, 404, 409, 503)),
    Route("POST", "/admin/users/{name}/keys", accounts.create_key,
          "Make an API key for a user (shown only in this answer)", "admin",
          response=KeyCreated, body=KeyRequest, status=201, errors=(400, 403, 404, 409, 503)),
    Route("GET", "/admin/keys", accounts.list_keys, "List API keys (never the keys)", "admin",
          response=KeyList, errors=(403, 409, 503),
          query=(Parameter("user", "Only this user's keys."),)),
    Route("DELETE", "/admin/keys/{key_id}", accounts.revoke_key,
          "Revoke an API key at once (its record stays, revoked)", "admin", status=204,
          errors=(403, 404, 409, 503)),
    Route("GET", "/admin/instances", accounts.list_instances, "List instances", "admin",
          response=InstanceList, errors=(403, 409, 503)),
    Route("POST", "/admin/instances", accounts.add_instance,
          "Add an instance hub/group/project", "admin", response=InstanceOut,
          body=InstanceRequest, status=201, errors=(400, 403, 409, 503)),
    Route("DELETE", _INSTANCE, accounts.remove_instance,
          "Remove an instance and its memberships (not its jobs)", "admin", status=204,
          errors=(403, 404, 409, 503)),
    Route("PATCH", _INSTANCE, accounts.set_instance_limits,
          "Set an instance's own caps on submits and queued plus running jobs", "admin",
          response=InstanceOut, body=InstanceLimits, errors=(400, 403, 404, 409, 503),
          description="The caps hold for all the instance's members together, besides each "
          "user's own (QRT_USER_*); null removes one, a field left out stays as it is."),
    Route("GET", f"{_INSTANCE}/members", accounts.list_members, "List an instance's members",
          "admin", response=MemberList, errors=(403, 404, 409, 503), description=_MEMBERS),
    Route("PUT", f"{_INSTANCE}/members/{{user}}", accounts.set_member,
          "Make a user a member of an instance with a role", "admin", response=MemberOut,
          body=MemberRequest, errors=(400, 403, 404, 409, 503), description=_MEMBERS),
    Route("DELETE", f"{_INSTANCE}/members/{{user}}", accounts.remove_member,
          "Take a user out of an instance", "admin", status=204, errors=(403, 404, 409, 503),
          description=_MEMBERS),
    Route("GET", "/healthz", healthz, "The gateway is alive", "health"),
    Route("GET", "/readyz", readyz, "The gateway's store and bus answer", "health",
          errors=(503,), description="503 while the store cannot be reached or cannot write "
          "(say, its disk is full), or the bus cannot be reached. `problems` names each "
          "programs.ini or program that cannot be loaded (file, line and why); they keep out "
          "only themselves, so they do not make the gateway unready."),
    Route("GET", "/metrics", metrics_endpoint, "Prometheus metrics", "health",
          extra={"responses": _PROMETHEUS_TEXT}),
    Route("GET", "/backends/{name}", devices.get_backend,
          "A backend: its queue; for a device, its qubits, coupling map, gates, calibration "
          "and the last hour's history", "programs", response=devices.BackendDetail,
          errors=(404, 503)),
    *ibm_sessions.ROUTES,
    *ibm_metrics.ROUTES,
)  # fmt: skip
ROUTES += ibm_backends.ROUTES + ibm_jobs.ROUTES


def create_app(context: Gateway) -> web.Application:
    """The gateway application for `context`; its startup subscribes to job updates and to
    executor heartbeats (which name the devices a job may use). With QRT_AUTH every route but
    health, metrics and the API's description needs credentials; raises ConfigurationError when
    no pepper can be had (MongoDB without QRT_KEY_PEPPER)."""
    settings = context.settings
    checker = None
    if settings.auth:
        pepper = load_pepper(settings.key_pepper, settings.effective_store_url)
        checker = Authenticator(context.store, pepper, settings.access_token_seconds)
    app = web.Application(
        client_max_size=settings.max_request_bytes,
        middlewares=[
            measured,
            json_errors(settings.max_request_bytes),
            ibm_errors(),
            body_headers(settings.max_request_bytes),
            authenticate(checker),
        ],
    )
    app[GATEWAY] = context
    if checker is not None:
        app[AUTHENTICATOR] = checker
        if settings.bootstrap_admin_key:
            admin = AccountAdmin(context.store, checker.pepper)
            bootstrap = settings.bootstrap_admin_key

            async def ensure_admin_key(app: web.Application) -> None:
                await admin.ensure_key(BOOTSTRAP_ADMIN, bootstrap)

            app.on_startup.append(ensure_admin_key)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
        if route.path.endswith("/") and len(route.path) > 1:
            # PlanQK clients use the service's base URL with and without the slash.
            app.router.add_route(route.method, route.path.rstrip("/"), route.handler)
    document = json.dumps(openapi_document(ROUTES, title="qrt", version=VERSION), allow_nan=False)

    async def openapi(request: web.Request) -> web.Response:
        return web.Response(text=document, content_type="application/json")

    app.router.add_get("/openapi.json", openapi)
    add_pages(app)

    async def follow_updates(app: web.Application) -> None:
        await context.bus.subscribe(UPDATES_TOPIC, context.streams.on_update)
        await context.bus.subscribe(HEARTBEAT_TOPIC, context.on_heartbeat)

    app.on_startup.append(follow_updates)
    return app
