"""The one settings object: every knob is a `QRT_`-prefixed environment variable."""

from __future__ import annotations

import os
import re
import secrets
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .results import (
    DEFAULT_MAX_INTERIM_BYTES,
    DEFAULT_MAX_INTERIMS_BYTES,
    DEFAULT_MAX_RESULT_BYTES,
    LARGEST_MAX_INTERIM_BYTES,
    LARGEST_MAX_RESULT_BYTES,
    ResultLimits,
)

_DEVICE_ADDRESS = re.compile(r"tcp://[^\s:/]+:\d{1,5}|tcp://\[[0-9a-fA-F:.]+\]:\d{1,5}|ipc://\S+")
"""A ZeroMQ address a device's request socket can be reached at."""
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
"""The values QRT_LOG_LEVEL takes (in any case)."""


class Settings(BaseSettings):
    """Configuration of every qrt service, read from `QRT_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="QRT_", frozen=True)

    host: str = "127.0.0.1"
    """Address the API gateway listens on."""
    port: int = Field(8000, ge=0, le=65535)
    """Port the API gateway listens on (0 picks a free one)."""
    ops_port: int = Field(9100, ge=0, le=65535)
    """Port of `/healthz`, `/readyz` and `/metrics` of a scheduler, executor or device (on
    `QRT_HOST`); the gateway serves them on its API port."""
    data_dir: Path = Path(".qrt")
    """Where the embedded store keeps its database."""
    store_url: str = ""
    """`sqlite:///path` for the embedded store, `mongodb://host/database` for MongoDB; empty
    means `<data_dir>/qrt.db`."""
    job_retention: float = Field(0.0, ge=0)
    """Seconds a finished job (with its logs and results) is kept after it ended; 0 keeps it."""
    log_retention: float = Field(0.0, ge=0)
    """Seconds a piece of a job's log is kept after it was written; 0 keeps it."""
    idempotency_retention: float = Field(86400.0, gt=0)
    """Seconds an `Idempotency-Key` is remembered after its submit: a retry within them gets
    the first try's job, one after them makes a new job."""
    purge_interval: float = Field(60.0, gt=0)
    """Seconds between the scheduler's sweeps for jobs and logs past their retention."""
    instance_max_running_jobs: int = Field(0, ge=0)
    """The most jobs of one instance (hub/group/project) that run, or are placed to run, at
    once across all executors; 0: no cap. The queue lets instances take turns only when a place
    frees: set this below the executors' capacity in all when several teams share them, so one
    instance's long jobs cannot hold every place while another's wait."""
    sweep_interval: float = Field(5.0, gt=0)
    """Seconds between the scheduler's sweeps of the store for queued jobs it does not hold (a
    gateway that stored a job and died before announcing it); such a job waits at most about
    twice this long."""
    bus_url: str = "memory://"
    """`memory://` for the in-process bus, `amqp://user:password@host:5672/` for RabbitMQ."""
    programs_dir: Path = Path("programs")
    """Directory holding `programs.ini` and the program packages it names."""
    executor_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
    )
    """This executor's identity; new for every start, so a restarted executor is a new one."""
    bus_namespace: str = "qrt"
    """Prefix of every queue and exchange name on the broker."""
    drain_seconds: float = Field(60.0, ge=0)
    """On SIGTERM, how long an executor lets running jobs finish before handing them back."""
    executor_capacity: int = Field(4, ge=1)
    """How many jobs one executor runs at the same time."""
    warm_pool_size: int = Field(2, ge=0)
    """Job processes kept forked and waiting, so a job starts without a fork on its path."""
    max_request_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    """Largest request body the gateway accepts (413 beyond it)."""
    max_service_input_bytes: int = Field(1024 * 1024, ge=1)
    """Largest PlanQK Service API request body (413 beyond), PlanQK's cap on input by value."""
    max_program_bytes: int = Field(4 * 1024 * 1024, ge=1024, le=8 * 1024 * 1024)
    """Largest program archive (the zip, before base64) the API accepts (413 beyond); unpacked it
    may hold 16 times as much. At most 8 MiB: an archive travels in one bus message (base64) and
    is kept in one MongoDB document."""
    max_result_bytes: int = Field(DEFAULT_MAX_RESULT_BYTES, ge=1024, le=LARGEST_MAX_RESULT_BYTES)
    """Largest final result of a job, any program kind (its JSON text, UTF-8); a larger one fails
    the job naming this limit. At most 48 MiB: a result travels in one bus message."""
    max_interim_bytes: int = Field(DEFAULT_MAX_INTERIM_BYTES, ge=1024, le=LARGEST_MAX_INTERIM_BYTES)
    """Largest interim result, any program kind; a larger one is refused (a Qiskit Runtime
    program's publish raises, a PlanQK marker line stays log). At most 8 MiB: an interim result
    is one MongoDB document."""
    max_interims_bytes: int = Field(DEFAULT_MAX_INTERIMS_BYTES, ge=1024)
    """Largest total of a job attempt's interim results; later ones are dropped with a note in
    the log, so one job cannot fill the store's disk."""
    max_log_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    """Largest log kept per job attempt; the rest is dropped with a note in the log."""
    heartbeat_interval: float = Field(2.0, gt=0)
    """Seconds between executor heartbeats."""
    heartbeat_timeout: float = Field(10.0, gt=0)
    """Seconds without a heartbeat after which an executor counts as gone."""
    max_attempts: int = Field(3, ge=1)
    """How often a job is started before an executor loss makes it Failed."""
    oneshot_runner: Literal["bubblewrap", "kubernetes"] = "bubblewrap"
    """Where executors run one-shot programs: a local bubblewrap sandbox, or Kubernetes Jobs."""
    program_image: str = ""
    """Image of one-shot program pods (Kubernetes); the chart sets the executor's own."""
    program_namespace: str = ""
    """Namespace of one-shot program pods; empty: the executor's own."""
    program_pod_labels: str = ""
    """Extra labels of program pods, `key=value,...` (the chart adds its release's)."""
    program_cpu: str = "1"
    """CPU request and limit of a program pod (Kubernetes quantity)."""
    program_memory: str = "1Gi"
    """Memory request and limit of a program pod (Kubernetes quantity)."""
    lease_name: str = ""
    """The coordination.k8s.io Lease scheduler replicas elect their leader with (in Kubernetes);
    empty: no election, this scheduler leads alone."""
    lease_namespace: str = ""
    """The Lease's namespace; empty: the pod's own."""
    lease_duration: float = Field(15.0, ge=1)
    """Seconds an unrenewed Lease stays with its holder before another scheduler takes over."""
    log_level: str = "INFO"
    """Level of the services' structured logs: DEBUG, INFO, WARNING, ERROR or CRITICAL."""
    devices: str = ""
    """Comma-separated request addresses of 2300 devices (`tcp://host:4203,...`) this executor
    offers as backends, each under the name the device gives in `get_static`."""
    device_timeout: float = Field(10.0, gt=0)
    """Seconds a device may take to answer initialize, terminate, get_static or get_dynamic."""
    device_execute_timeout: float = Field(300.0, gt=0)
    """Seconds a device may take to answer an execute."""
    device_metrics_interval: float = Field(15.0, gt=0)
    """Seconds between an executor's readings of its devices' calibration (`get_dynamic`),
    which it exports as the `qi_*` metrics."""
    device_config: Path | None = None
    """TOML file configuring the simulated device (`qrt device`, and the one `qrt dev` starts)."""
    device_rep_address: str = "tcp://*:4203"
    """Where `qrt device` answers requests; `qrt dev` picks a free port unless this is set."""
    device_pub_address: str = "tcp://*:4204"
    """Where `qrt device` publishes its state; `qrt dev` picks a free port unless this is set."""
    dev_device: bool = True
    """Whether `qrt dev` starts a simulated device (when QRT_DEVICES names none)."""
    auth: bool = False
    """Whether every API request needs `Authorization: Bearer <API key or access token>`
    (`qrt dev --auth`; the chart always sets it). Off: one user without keys, who sees and may do
    everything."""
    key_pepper: str = Field("", repr=False)
    """The server secret API keys are hashed with (HMAC-SHA256) and access tokens signed with;
    shared by every gateway and `qrt admin`. Empty with the embedded store: a random one kept in
    `key-pepper` beside the database. Required with MongoDB."""
    bootstrap_admin_key: str = Field("", repr=False)
    """An API key (`qrt_<16 hex>_<43 characters>`) the gateway makes sure exists when it starts
    with keys on, held by the platform admin `admin` (made if missing): how the chart's first admin
    key, from a Kubernetes Secret, comes to be. A key revoked later stays revoked."""
    access_token_seconds: int = Field(3600, ge=300, le=86400)
    """Lifetime of the access tokens `POST /token` and `POST /identity/token` hand out."""
    # The job sandbox (qrt_executor.sandbox); 0 turns a limit off.
    job_sandbox: Literal["namespaces", "off"] = "namespaces"
    """`namespaces`: each job process walls itself in (own user, mount, network and IPC
    namespaces, read-only file system, hidden data directories, a tmpfs of its own); a job whose
    sandbox cannot be built fails. `off`: limits, a clean environment, the seccomp filter and a
    job process that is not dumpable only."""
    job_max_memory_bytes: int = Field(4 << 30, ge=0)
    """Memory a job process may map beyond what it starts with (RLIMIT_AS)."""
    job_max_cpu_seconds: int = Field(3600, ge=0)
    """CPU seconds of a job process (RLIMIT_CPU)."""
    job_max_processes: int = Field(256, ge=0)
    """Processes and threads of a job (RLIMIT_NPROC; ignored by the kernel for root)."""
    job_max_open_files: int = Field(1024, ge=0)
    """Open files per process of a job (RLIMIT_NOFILE)."""
    job_temp_bytes: int = Field(256 << 20, ge=0)
    """Size of a job's temporary directory (`/tmp`, HOME and TMPDIR; a tmpfs, so memory)."""
    job_writable_paths: str = ""
    """Comma-separated directories jobs may write besides their own `/tmp` and working
    directory (a shared scratch volume); every job of every user can write and read them."""
    job_hidden_paths: str = ""
    """Comma-separated directories jobs see empty, besides the data directory, the SQLite
    store's directory, `/run`, `/var/tmp`, `/dev/shm` and `/tmp` (each job gets its own)."""
    job_preload: str = ""
    """Comma-separated modules the executor's zygote imports before it forks job processes,
    besides qiskit, Aer and qiskit-ibm-runtime's codec: packages most programs import (each
    job then starts with them loaded) at the cost of the zygote's memory.
    `qiskit_ibm_runtime` here loads the whole package (its client, 88 MiB, 0.6-0.8 s to
    import in a job that uses it)."""
    simulator_qubits: int = Field(30, ge=1, le=64)
    """Qubits the Aer simulators offer to clients that read a backend's Target (the IBM API's
    backend configuration): the stock qiskit-ibm-runtime client refuses wider circuits."""
    session_max_ttl: int = Field(28800, ge=1)
    """Longest a session or batch may last, in seconds from its first job's start (IBM's
    `max_ttl`; a session asking for more gets this)."""
    session_interactive_ttl: int = Field(60, ge=1)
    """Seconds without a job after which a started session is `inactive` (IBM's
    `interactive_ttl`), for a session that asks for none."""
    session_max_interactive_ttl: int = Field(300, ge=1)
    """Most seconds a dedicated session keeps its device between its jobs: an
    `interactive_ttl` asked for, or set above, is cut to this (IBM fixes it at 5 minutes and
    lets no user change it), so no session holds a device idle for longer."""

    device_max_execution_time: int = Field(3600, ge=1)
    """Most seconds a job on a device (not a simulator) may run: a longer time limit, the
    program's or the one asked for, is cut to this when the job is submitted. A device runs one
    job at a time, so this bounds how long one job keeps every other user's waiting."""

    log_format: Literal["json", "text"] = "json"
    """How services write their logs: one JSON object a line, or `text`, a readable line each
    (`qrt dev --log-format text`)."""

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"use one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("bus_url")
    @classmethod
    def _known_bus(cls, value: str) -> str:
        if not value.startswith(("memory://", "amqp://", "amqps://")):
            raise ValueError("use memory:// or amqp://user:password@host:5672/")
        return value

    @field_validator("store_url")
    @classmethod
    def _known_store(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:///", "mongodb://", "mongodb+srv://")):
            raise ValueError("use sqlite:///path/to/file.db or mongodb://host/database")
        return value

    @field_validator("job_preload")
    @classmethod
    def _module_names(cls, value: str) -> str:
        for name in (n.strip() for n in value.split(",") if n.strip()):
            if not all(part.isidentifier() for part in name.split(".")):
                raise ValueError(f"{name!r} is no module name; write package.module,...")
        return value

    @field_validator("devices")
    @classmethod
    def _device_addresses(cls, value: str) -> str:
        for address in (a.strip() for a in value.split(",") if a.strip()):
            if not _DEVICE_ADDRESS.fullmatch(address):
                raise ValueError(f"{address!r} is no device address; write tcp://host:port,...")
        return value

    # Per-user limits on submits (qrt_gateway.quotas); 0 turns a limit off.
    user_submits_per_minute: int = Field(6000, ge=0)
    """Jobs one user may submit a minute, on every submit route (a token bucket per gateway
    replica; with keys off, `qrt dev`'s single user); beyond it HTTP 429 with Retry-After."""
    user_submit_burst: int = Field(1000, ge=1)
    """Submits one user may make at once before QRT_USER_SUBMITS_PER_MINUTE paces them."""
    user_max_active_jobs: int = Field(1000, ge=0)
    """Queued and running jobs one user may have at once, counted in the store (so across
    every gateway replica); a submit beyond it is HTTP 429."""
    # The most a program's metadata may declare of each sandbox limit (qrt_common.program_limits).
    program_max_memory_bytes: int = Field(16 << 30, ge=1)
    """The most `limits.memory_bytes` a program may declare (QRT_JOB_MAX_MEMORY_BYTES is the
    default)."""
    program_max_cpu_seconds: int = Field(86400, ge=1)
    """The most `limits.cpu_seconds` a program may declare."""
    program_max_processes: int = Field(1024, ge=1)
    """The most `limits.processes` a program may declare."""
    program_max_open_files: int = Field(8192, ge=1)
    """The most `limits.open_files` a program may declare."""
    program_max_temp_bytes: int = Field(2 << 30, ge=1)
    """The most `limits.temp_bytes` a program may declare (a tmpfs: memory)."""
    program_max_log_bytes: int = Field(100 << 20, ge=1)
    """The most `limits.log_bytes` a program may declare (QRT_MAX_LOG_BYTES is the default)."""
    instance_max_programs: int = Field(1000, ge=0)
    """Uploaded programs one instance may keep (each up to QRT_MAX_PROGRAM_BYTES in the store);
    an upload beyond it is HTTP 409; 0: no limit."""

    @property
    def result_limits(self) -> ResultLimits:
        """`max_result_bytes` and `max_interim_bytes`, as executors hand them to job processes."""
        return ResultLimits(self.max_result_bytes, self.max_interim_bytes)

    @property
    def device_addresses(self) -> list[str]:
        """The addresses in `devices`."""
        return [address.strip() for address in self.devices.split(",") if address.strip()]

    @property
    def program_pod_label_map(self) -> dict[str, str]:
        """The `name=value` pairs in `program_pod_labels`."""
        pairs = (pair.split("=", 1) for pair in self.program_pod_labels.split(",") if "=" in pair)
        return dict(pairs)

    @property
    def job_preload_modules(self) -> list[str]:
        """The module names in `job_preload`."""
        return [name.strip() for name in self.job_preload.split(",") if name.strip()]

    @property
    def job_writable_dirs(self) -> list[str]:
        """The directories in `job_writable_paths`."""
        return [path.strip() for path in self.job_writable_paths.split(",") if path.strip()]

    @property
    def job_hidden_dirs(self) -> list[str]:
        """What jobs see empty: the store's files and QRT_JOB_HIDDEN_PATHS."""
        hidden = [os.fspath(self.data_dir.resolve())]
        url = self.effective_store_url
        if url.startswith("sqlite:///"):
            hidden.append(os.path.dirname(url.removeprefix("sqlite:///")))
        hidden += [path.strip() for path in self.job_hidden_paths.split(",") if path.strip()]
        return hidden

    @property
    def effective_store_url(self) -> str:
        """The store URL in force: QRT_STORE_URL, or the SQLite file under the data directory."""
        return self.store_url or f"sqlite:///{(self.data_dir / 'qrt.db').resolve()}"
