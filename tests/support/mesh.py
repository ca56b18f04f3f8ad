"""A platform made of real processes (`qrt gateway`, `qrt scheduler`, `qrt executor`) on a real
RabbitMQ, each test in a namespace of its own on the broker."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

import aio_pika

from .waiting import eventually_sync

RABBITMQ_URL = os.environ.get("QRT_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
QUEUES = ("jobs.submitted", "jobs.events", "jobs.cancel", "dead-letters")
EXCHANGES = ("jobs.updates", "executors.control", "executors.heartbeat", "dead-letters")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    """Whether something accepts connections on loopback port `port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def exited(process: subprocess.Popen[bytes]) -> Callable[[], str | None]:
    """A `give_up` for waits on `process`: the reason, once it exited."""
    return lambda: None if process.poll() is None else f"it exited with {process.returncode}"


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Wait until `process` listens on `port` (fails at once if it exits)."""
    eventually_sync(
        lambda: listening(port), f"port {port} listens", timeout=timeout, give_up=exited(process)
    )


def stopped(pid: int) -> bool:
    """Whether every thread of process `pid` stands still (stopped by a signal)."""
    states = [
        (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        for task in Path(f"/proc/{pid}/task").iterdir()
    ]
    return all(state in ("T", "t") for state in states)


def write_lock_free(path: Path) -> bool:
    """Whether a write transaction on the SQLite file `path` could begin right now."""
    # mode=rw: a file that is not there yet is an error, not a new empty store.
    db = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=0, isolation_level=None
    )
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise
        return False
    finally:
        db.close()


class Mesh:
    """Processes of one qrt platform sharing a broker namespace and a store."""

    def __init__(self, root: Path, programs_dir: Path, broker_url: str = RABBITMQ_URL) -> None:
        self.root = root
        self.namespace = f"qrt-test-{uuid.uuid4().hex[:8]}"
        self.broker_url = broker_url
        self.store = root / "qrt.db"
        self.shared = root / "shared"
        """A directory jobs may write (QRT_JOB_WRITABLE_PATHS): where `record` writes."""
        self.shared.mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "QRT_BUS_URL": broker_url,
            "QRT_BUS_NAMESPACE": self.namespace,
            "QRT_STORE_URL": f"sqlite:///{self.store}",
            "QRT_PROGRAMS_DIR": str(programs_dir),
            "QRT_JOB_WRITABLE_PATHS": str(self.shared),
            "QRT_HEARTBEAT_INTERVAL": "0.3",
            "QRT_HEARTBEAT_TIMEOUT": "3",
            "QRT_LOG_LEVEL": "INFO",
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.executors: list[str] = []
        self.gateways: list[str] = []
        self.ops_ports: dict[str, int] = {}
        """The port of each service's /healthz, /readyz and /metrics (gateways: their API port)."""
        self.commands: dict[str, tuple[str, dict[str, str]]] = {}
        """How each service was started (its command and own environment), to restart it."""

    def start(self, name: str, command: str, **env: str) -> subprocess.Popen[bytes]:
        if "QRT_OPS_PORT" not in env:
            env["QRT_OPS_PORT"] = env["QRT_PORT"] if command == "gateway" else str(free_port())
        self.ops_ports[name] = int(env["QRT_PORT" if command == "gateway" else "QRT_OPS_PORT"])
        self.commands[name] = (command, env)
        log = open(self.root / f"{name}.log", "ab")  # noqa: SIM115 - lives with the process
        process = subprocess.Popen(
            [sys.executable, "-m", "qrt_cli", command],
            env={**self.env, **env},
            stdout=log,
            stderr=log,
        )
        log.close()
        self.processes[name] = process
        return process

    def gateway(self) -> str:
        """Start a gateway; returns its URL once it listens."""
        port = free_port()
        name = f"gateway-{len(self.gateways)}"
        process = self.start(name, "gateway", QRT_PORT=str(port))
        wait_for_port(port, process)
        self.gateways.append(name)
        return f"http://127.0.0.1:{port}"

    def scheduler(self) -> None:
        self.start("scheduler", "scheduler")

    def executor(self, capacity: int = 4, **env: str) -> str:
        """Start an executor; returns its id."""
        executor_id = f"{self.namespace}-ex{len(self.executors)}"
        self.start(
            executor_id,
            "executor",
            QRT_EXECUTOR_ID=executor_id,
            QRT_EXECUTOR_CAPACITY=str(capacity),
            **env,
        )
        self.executors.append(executor_id)
        return executor_id

    def signal(self, name: str, sig: int) -> None:
        self.processes[name].send_signal(sig)

    def kill(self, name: str) -> None:
        """SIGKILL `name` and reap it."""
        self.processes[name].send_signal(signal.SIGKILL)
        self.processes[name].wait(30)

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        """Start `name` again as it was started: same command, environment and ports (an
        executor keeps its id: start a new one with `executor` for a pod that replaces it).
        Its log goes on in the same file."""
        command, env = self.commands[name]
        return self.start(name, command, **env)

    def wait_until_up(self, name: str, timeout: float = 90) -> None:
        """Wait until `name` serves its ops port (a service opens it once its store and bus
        answer), failing at once if it exits."""
        wait_for_port(self.ops_ports[name], self.processes[name], timeout)

    def freeze_between_writes(self, name: str) -> None:
        """SIGSTOP `name` at a moment it holds no write lock on the store: frozen inside a
        write transaction, it would lock every other process out of the store."""
        process = self.processes[name]

        def frozen_without_the_lock() -> bool:
            process.send_signal(signal.SIGSTOP)
            # The signal only asks: a thread on another core runs on for a moment.
            eventually_sync(
                lambda: stopped(process.pid),
                f"every thread of {name} stopped",
                timeout=10,
                not_yet=(OSError,),  # a thread ended while being listed
                give_up=exited(process),
            )
            if write_lock_free(self.store):
                return True
            process.send_signal(signal.SIGCONT)
            return False

        eventually_sync(
            frozen_without_the_lock, f"{name} frozen holding no write lock on the store"
        )

    def wait(self, name: str, timeout: float = 60) -> int:
        return self.processes[name].wait(timeout)

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
        for process in self.processes.values():
            process.wait(30)

    async def delete_namespace(self) -> None:
        """Remove this platform's queues and exchanges from the broker."""
        queues = [*QUEUES, *(f"executor.{e}" for e in self.executors)]
        await delete_namespace(self.broker_url, self.namespace, queues, EXCHANGES)


async def delete_namespace(
    broker_url: str, namespace: str, queues: Iterable[str], exchanges: Iterable[str]
) -> None:
    """Remove `namespace`'s `queues` and `exchanges` (names without the namespace) from the
    broker, those that exist; nothing if the broker cannot be reached."""
    try:
        connection = await aio_pika.connect(broker_url, timeout=5)
    except Exception:
        return
    async with connection:
        for name in queues:
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(f"{namespace}.{name}")
        for name in exchanges:
            channel = await connection.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(f"{namespace}.{name}")


def overlapping_attempts(record: Path) -> list[str]:
    """Jobs of which two processes were alive at the same time, from a `record` program's file."""
    spans: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for line in record.read_text().splitlines():
        job, pid, _, at = line.split()
        span = spans[job].setdefault(pid, [float(at), float(at)])
        span[0], span[1] = min(span[0], float(at)), max(span[1], float(at))
    overlaps = []
    for job, by_pid in spans.items():
        ordered = sorted(by_pid.values())
        if any(later[0] < earlier[1] for earlier, later in itertools.pairwise(ordered)):
            overlaps.append(job)
    return overlaps


class PrivateBroker:
    """A RabbitMQ node of the test's own (own node name, ports and data), to restart at will."""

    def __init__(self) -> None:
        import pwd
        import shutil
        import tempfile

        if shutil.which("rabbitmq-server") is None:
            raise RuntimeError("rabbitmq-server is not installed")
        owner = pwd.getpwnam("rabbitmq")
        self.root = Path(tempfile.mkdtemp(prefix="qrt-rabbit-", dir="/tmp"))
        self.port, dist_port = free_port(), free_port()
        self.node = f"qrt-{self.port}@localhost"
        (self.root / "mnesia").mkdir()
        (self.root / "log").mkdir()
        (self.root / "plugins").write_text("[].\n")
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        # The server script runs the node as the rabbitmq user.
        for path in [self.root, *self.root.rglob("*")]:
            os.chown(path, owner.pw_uid, owner.pw_gid)
        self.root.chmod(0o755)
        self.env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq.conf"),
        }
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self, timeout: float = 60) -> None:
        subprocess.run(["rabbitmq-server", "-detached"], env=self.env, check=True,
                       capture_output=True)  # fmt: skip
        what = f"the private RabbitMQ listens (its log: {self.root / 'log'})"
        eventually_sync(lambda: listening(self.port), what, timeout=timeout)

    def stop(self) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.node, "stop"], env=self.env,
                       capture_output=True, timeout=60)  # fmt: skip
        eventually_sync(lambda: not listening(self.port), "the private RabbitMQ stopped")

    def remove(self) -> None:
        import shutil

        with contextlib.suppress(AssertionError):  # gone already
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
