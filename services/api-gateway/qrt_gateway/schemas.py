"""The shapes of the API's request and response bodies; they also feed the OpenAPI document."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, RootModel, WithJsonSchema

from qrt_common.accounts import MOST_INSTANCE_LIMIT, ApiKey, Instance, Role, User
from qrt_common.jobs import DEFAULT_GROUP, DEFAULT_HUB, DEFAULT_PROJECT, Job, JobStatus
from qrt_common.programs import DEFAULT_MAX_EXECUTION_TIME, LONGEST_EXECUTION_TIME, Program

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
MAX_ID_CHARS = 200
"""The longest program id, backend name, session id, hub, group or project a request names."""
INSTANCE_PART = "^[^/]+$"
"""A hub, group or project: a `/` would make hub/group/project ambiguous."""
MAX_TAGS = 100
MAX_TAG_CHARS = 200

UNSHOWN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Zl", "Zp"})
"""Unicode categories a name may not hold: control and format characters (among them the
bidirectional overrides, U+202E, that make `evil\u202etxt.py` show as `evilyp.txt`), private-use
and surrogate code points, and line breaks; a name shown in the console, the CLI or a log line
then reads as what it is."""


def _shown_as_is(text: Any) -> Any:
    if not isinstance(text, str):  # not text at all: the type check words that
        return text
    for at, char in enumerate(text):
        if unicodedata.category(char) in UNSHOWN_CATEGORIES:
            raise ValueError(
                f"must not contain control or formatting characters "
                f"(U+{ord(char):04X} at position {at})"
            )
    return text


SHOWN_AS_IS = BeforeValidator(_shown_as_is)
"""Refuses text that would not show as it is (below), before the type's own checks."""

ShownText = Annotated[str, SHOWN_AS_IS]
"""Text people read as a name (programs, tags, key labels, hubs, groups, projects): no control,
formatting, private-use or line-break characters."""

_PARAMS_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "array", "items": {"type": "string"}, "maxItems": 1},
        {"type": "object"},
        {"type": "null"},
    ]
}


def _time(value: datetime | None) -> str | None:
    return value.strftime(TIME_FORMAT) if value is not None else None


class _Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


STRICT = ConfigDict(strict=True)
"""A request body's config: each field must have its JSON type (no "yes" or 1 for true, no true
or "30" for 30), so a mistyped field is refused rather than read as something the caller did not
write; an enum (a role) is given as its JSON string value all the same."""


class _Request(_Body):
    model_config = STRICT


class JobRequest(_Request):
    """What `POST /jobs` takes: the test server's body, plus optional tags and a time limit."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    program_id: str = Field(
        alias="programId", min_length=1, max_length=MAX_ID_CHARS, description="Program to run."
    )
    hub: ShownText = Field(
        DEFAULT_HUB, min_length=1, max_length=MAX_ID_CHARS, pattern=INSTANCE_PART
    )
    group: ShownText = Field(
        DEFAULT_GROUP, min_length=1, max_length=MAX_ID_CHARS, pattern=INSTANCE_PART
    )
    project: ShownText = Field(
        DEFAULT_PROJECT, min_length=1, max_length=MAX_ID_CHARS, pattern=INSTANCE_PART
    )
    backend: str | None = Field(
        None, max_length=MAX_ID_CHARS, description="Backend name; aer_simulator when omitted."
    )
    # Checked by the gateway itself, which gives clearer errors than a union's would.
    params: Annotated[Any, WithJsonSchema(_PARAMS_SCHEMA)] = Field(
        None,
        description="Keyword arguments of the program: a list holding one RuntimeEncoder "
        "JSON string (as the Qiskit Runtime test server takes it), or a JSON object.",
    )
    tags: list[Annotated[str, Field(min_length=1, max_length=MAX_TAG_CHARS), SHOWN_AS_IS]] = Field(
        default_factory=list, max_length=MAX_TAGS, description=f"At most {MAX_TAGS} tags."
    )
    session_id: str | None = Field(
        None,
        alias="sessionId",
        min_length=1,
        max_length=MAX_ID_CHARS,
        description="A session to group the job with.",
    )
    priority: int = Field(
        0, ge=0, le=9, description="0 to 9; higher runs sooner. Instances take turns."
    )
    max_execution_time: int | None = Field(
        None,
        alias="maxExecutionTime",
        gt=0,
        le=LONGEST_EXECUTION_TIME,
        description="Seconds the job may run; at most the program's own limit.",
    )


class JobCreated(_Body):
    id: str


class ProgramRef(_Body):
    id: str


class JobSummary(_Body):
    """A job as `GET /jobs` lists it: all `GET /jobs/{id}` shows but its params, which may be
    megabytes each and would make a page of them as large as all of them together."""

    id: str
    program: ProgramRef
    hub: str
    group: str
    project: str
    backend: str
    status: str
    reason: str | None = None
    tags: list[str]
    session_id: str | None = Field(None, alias="sessionId")
    priority: int
    created: str
    started: str | None = None
    ended: str | None = None
    max_execution_time: int = Field(alias="maxExecutionTime")
    attempt: int

    @classmethod
    def fields_of(cls, job: Job) -> dict[str, Any]:
        """The fields of `job` as this shape names them."""
        return {
            "id": job.id,
            "program": ProgramRef(id=job.program_id),
            "hub": job.hub,
            "group": job.group,
            "project": job.project,
            "backend": job.backend,
            "status": job.status.value,
            "reason": job.reason,
            "tags": list(job.tags),
            "session_id": job.session_id,
            "priority": job.priority,
            "created": _time(job.created),
            "started": _time(job.started),
            "ended": _time(job.ended),
            "max_execution_time": job.max_execution_time,
            "attempt": job.attempt,
        }

    @classmethod
    def of(cls, job: Job) -> JobSummary:
        return cls(**cls.fields_of(job))


class JobOut(JobSummary):
    """A job as `GET /jobs/{id}` shows it: `params` holds the params' JSON text."""

    params: list[str]

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(**cls.fields_of(job), params=[job.params])


class JobList(_Body):
    jobs: list[JobSummary] = Field(
        description="Each job without its params (GET /jobs/{id} has them)."
    )
    count: int = Field(description="How many jobs match in all, across pages.")


class ProgramOut(_Body):
    """A program's metadata as the Qiskit Runtime API names it."""

    id: str
    name: str
    cost: int = Field(description="The program's maximum execution time in seconds.")
    description: str
    version: str
    max_execution_time: int = Field(alias="maxExecutionTime")
    backend_requirements: dict[str, Any] | None = Field(alias="backendRequirements")
    parameters: list[dict[str, Any]] | None
    return_values: list[dict[str, Any]] | None = Field(alias="returnValues")
    interim_results: list[dict[str, Any]] | None = Field(alias="interimResults")
    is_public: bool = Field(alias="isPublic")
    kind: str = Field(
        description="qiskit-runtime, python-template or one-shot; every kind runs through "
        "both /jobs and /services/{programId}/."
    )
    bundled: bool = Field(
        description="true for a program from programs.ini, which the API cannot change."
    )
    owner: str | None = Field(
        description="The hub/group/project that uploaded the program; null when bundled."
    )
    digest: str | None = Field(
        description="sha256:<hex> of the uploaded archive (the code new jobs run); null when "
        "bundled."
    )
    created_at: str | None = Field(alias="createdAt")
    updated_at: str | None = Field(alias="updatedAt")

    @classmethod
    def of(cls, program: Program) -> ProgramOut:
        return cls(
            bundled=program.bundled,
            owner=program.owner,
            digest=program.digest,
            created_at=_time(program.created),
            updated_at=_time(program.updated),
            id=program.id,
            name=program.name,
            cost=program.max_execution_time,
            description=program.description,
            version=program.version,
            max_execution_time=program.max_execution_time,
            backend_requirements=program.backend_requirements,
            parameters=program.parameters,
            return_values=program.return_values,
            interim_results=program.interim_results,
            is_public=program.is_public,
            kind=program.kind.value,
        )


class ProgramProblemOut(_Body):
    """A programs.ini or bundled program that cannot be loaded, and why."""

    file: str = Field(description="The file at fault: a programs.ini or a program's metadata.")
    line: int | None = Field(description="Its line (1-based), when the fault is on one line.")
    message: str
    program_id: str | None = Field(
        alias="programId", description="The program it keeps out; null: the whole programs.ini."
    )


class ProgramList(_Body):
    programs: list[ProgramOut]
    errors: list[ProgramProblemOut] = Field(
        default_factory=list,
        description="Bundled programs (programs.ini) that cannot be loaded, and why; empty "
        "when every one loads.",
    )


class ProgramSpec(_Request):
    """A program's interface, as Qiskit Runtime's metadata `spec` describes it."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    parameters: list[dict[str, Any]] | None = Field(
        None, description='[{"name", "type"?, "required"?, "description"?}, ...]'
    )
    return_values: list[dict[str, Any]] | None = Field(None, alias="returnValues")
    interim_results: list[dict[str, Any]] | None = Field(None, alias="interimResults")
    backend_requirements: dict[str, Any] | None = Field(None, alias="backendRequirements")


class _ProgramMetadata(_Request):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    description: str = Field("", max_length=10_000)
    max_execution_time: int = Field(
        DEFAULT_MAX_EXECUTION_TIME,
        alias="maxExecutionTime",
        gt=0,
        le=LONGEST_EXECUTION_TIME,
        description="Seconds a job of the program may run (at most a year).",
    )
    is_public: bool = Field(
        False, alias="isPublic", description="Listed for and runnable by every instance."
    )
    spec: ProgramSpec | None = None

    def changes(self) -> dict[str, Any]:
        """The metadata the request gives, as `with_metadata` takes it (snake_case)."""
        given = self.model_dump(exclude_unset=True, by_alias=False, exclude={"data", "hub",
                                "group", "project"})  # fmt: skip
        spec = given.pop("spec", None) or {}
        return {**{k: v for k, v in given.items() if v is not None}, **spec}


class ProgramRequest(_ProgramMetadata):
    """What `POST /programs` takes: the program's code and metadata, and the instance that owns
    it. Metadata the archive holds (planqk.json, program.json) is used where the request gives
    none."""

    name: ShownText = Field(min_length=1, max_length=100)
    data: str = Field(
        description="The program's directory as a zip archive, base64-encoded (at most "
        "QRT_MAX_PROGRAM_BYTES before encoding): program.py with main() at its root, or a "
        "PlanQK project (planqk.json at its root)."
    )
    hub: ShownText = Field(
        DEFAULT_HUB, min_length=1, max_length=MAX_ID_CHARS, pattern=INSTANCE_PART
    )
    group: ShownText = Field(
        DEFAULT_GROUP, min_length=1, max_length=MAX_ID_CHARS, pattern=INSTANCE_PART
    )
    project: ShownText = Field(
        DEFAULT_PROJECT, min_length=1, max_length=MAX_ID_CHARS, pattern=INSTANCE_PART
    )


class ProgramUpdate(_ProgramMetadata):
    """What `PATCH /programs/{id}` takes: the metadata to change; what is left out stays."""

    name: ShownText | None = Field(None, min_length=1, max_length=100)


class ProgramData(_Request):
    """What `PUT /programs/{id}/data` takes as JSON (a raw application/zip body works too)."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(description="The new zip archive, base64-encoded.")


class ProgramCreated(_Body):
    id: str


class BackendOut(_Body):
    name: str
    simulator: bool


class BackendList(_Body):
    backends: list[BackendOut]


_EXECUTION_STATUS = {
    JobStatus.QUEUED: "PENDING",
    JobStatus.RUNNING: "RUNNING",
    JobStatus.COMPLETED: "SUCCEEDED",
    JobStatus.FAILED: "FAILED",
    JobStatus.CANCELLED: "CANCELLED",
    # The platform stopped it, nobody cancelled it: the execution failed.
    JobStatus.CANCELLED_RAN_TOO_LONG: "FAILED",
}


def execution_status(status: JobStatus) -> str:
    """A job status in the words of PlanQK's Service API."""
    return _EXECUTION_STATUS[status]


class ServiceRequest(_Request):
    """What `POST /services/{programId}/` takes: PlanQK's input by value."""

    model_config = ConfigDict(extra="forbid")

    data: dict[str, Any] | None = Field(None, description="The program's input data.")
    params: dict[str, Any] | None = Field(None, description="The program's parameters.")


class ExecutionOut(_Body):
    """A service execution: a job as PlanQK's Service API shows it."""

    id: str
    status: str = Field(description="PENDING, RUNNING, SUCCEEDED, FAILED or CANCELLED.")
    created_at: str = Field(alias="createdAt")
    started_at: str | None = Field(None, alias="startedAt")
    ended_at: str | None = Field(None, alias="endedAt")

    @classmethod
    def of(cls, job: Job) -> ExecutionOut:
        return cls(
            id=job.id,
            status=execution_status(job.status),
            created_at=_time(job.created) or "",
            started_at=_time(job.started),
            ended_at=_time(job.ended),
        )


class ServiceHealth(_Body):
    status: str


class LogEntryOut(_Body):
    """One line of an execution's log."""

    message: str
    severity: str = Field(description="Always INFO: the log does not tell stdout from stderr.")
    timestamp: str | None = Field(None, description="Not recorded per line: always null.")


class ServiceLog(RootModel[list[LogEntryOut]]):
    """An execution's log, line by line."""


class UserRequest(_Request):
    """What `POST /admin/users` takes."""

    name: str = Field(min_length=1, max_length=64, description="1 to 64 letters, digits, . _ @ -")
    admin: bool = Field(False, description="A platform admin: sees and manages everything.")


class UserUpdate(_Request):
    """What `PATCH /admin/users/{name}` takes."""

    admin: bool


class UserOut(_Body):
    """A user."""

    name: str
    admin: bool
    created: str

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(name=user.name, admin=user.admin, created=_time(user.created) or "")


class UserList(_Body):
    users: list[UserOut]


class KeyRequest(_Request):
    """What `POST /admin/users/{name}/keys` takes."""

    label: ShownText = Field("", max_length=200, description="What the key is for.")
    expires_in_days: float | None = Field(
        None, alias="expiresInDays", gt=0, le=36500, description="Lifetime; none: no expiry."
    )


class KeyOut(_Body):
    """An API key's record (never the key itself, nor its digest)."""

    id: str
    user: str
    label: str
    created: str
    expires: str | None = None
    revoked: str | None = None
    last_used: str | None = Field(None, alias="lastUsed")

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(
            id=key.id,
            user=key.user,
            label=key.label,
            created=_time(key.created) or "",
            expires=_time(key.expires),
            revoked=_time(key.revoked),
            last_used=_time(key.last_used),
        )


class KeyCreated(KeyOut):
    """A new API key: `key` is shown only in this answer."""

    key: str = Field(description="The API key: qrt_<id>_<secret>. Shown only now.")


class KeyList(_Body):
    keys: list[KeyOut]


class InstanceRequest(_Request):
    """What `POST /admin/instances` takes."""

    name: ShownText = Field(min_length=5, max_length=194, description="hub/group/project")


class InstanceOut(_Body):
    name: str
    created: str
    max_active_jobs: int | None = Field(
        None,
        alias="maxActiveJobs",
        description="Queued and running jobs the instance may have at once (null: no cap of "
        "its own).",
    )
    submits_per_minute: int | None = Field(
        None,
        alias="submitsPerMinute",
        description="Jobs its members may submit a minute, all together (null: no rate of its "
        "own).",
    )

    @classmethod
    def of(cls, instance: Instance) -> InstanceOut:
        return cls(
            name=instance.name,
            created=_time(instance.created) or "",
            max_active_jobs=instance.max_active_jobs,
            submits_per_minute=instance.submits_per_minute,
        )


class InstanceLimits(_Request):
    """What `PATCH /admin/instances/{hub}/{group}/{project}` takes: the instance's own caps,
    which hold for all its members' jobs together; null: none of its own, left out: unchanged."""

    max_active_jobs: int | None = Field(None, alias="maxActiveJobs", ge=1, le=MOST_INSTANCE_LIMIT)
    submits_per_minute: int | None = Field(
        None, alias="submitsPerMinute", ge=1, le=MOST_INSTANCE_LIMIT
    )


class InstanceList(_Body):
    instances: list[InstanceOut]


class MemberRequest(_Request):
    """What `PUT /admin/instances/{hub}/{group}/{project}/members/{user}` takes."""

    # JSON has no enums: the role comes as its string value, which strict mode would refuse.
    role: Annotated[Role, Field(strict=False)]


class MemberOut(_Body):
    instance: str
    user: str
    role: Role


class MemberList(_Body):
    members: list[MemberOut]


class ErrorOut(_Body):
    """Every error the API returns."""

    detail: str = Field(description="What went wrong, for people.")
    field: str | None = Field(None, description="The request field at fault, if one is.")


class LimitErrorOut(ErrorOut):
    """A submit over one of the caller's limits (HTTP 429): the error, which limit, and when to
    try again (also in the `Retry-After` header)."""

    limit: Literal[
        "user_submit_rate", "user_active_jobs", "instance_submit_rate", "instance_active_jobs"
    ] = Field(description="The limit reached: a user's or an instance's submit rate or cap on "
              "queued and running jobs.")  # fmt: skip
    retry_after: int = Field(
        alias="retryAfter", description="Seconds to wait before submitting again."
    )


def dump(model: BaseModel) -> str:
    """A response model as strict JSON text, with the API's field names (a non-finite number,
    say in metadata a program file gave, is written as null)."""
    return model.model_dump_json(by_alias=True)
