"""`qrt dev` in a subprocess of its own, for tests that talk to it as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from .mesh import exited, free_port, listening
from .programs import merge_programs
from .waiting import eventually_sync


class DevServer:
    """`qrt dev` in a subprocess of its own."""

    def __init__(
        self,
        data_dir: Path,
        programs_dir: Path,
        options: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`options`: more of `qrt dev`'s options (e.g. `--auth`); `env`: more variables."""
        self.data_dir, self.programs_dir = data_dir, programs_dir
        self.options, self.env = list(options), dict(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.parent / "qrt-dev.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "qrt_cli", "dev", "--port", str(self.port),
                   "--data-dir", str(self.data_dir), "--programs-dir", str(self.programs_dir), *self.options]  # fmt: skip
        env = {**os.environ, "QRT_HEARTBEAT_INTERVAL": "0.2", **self.env}
        # Its output goes to a file: a pipe nobody reads would block the server once full.
        with open(self.log, "ab") as log:
            process = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        self.process = process
        exited_with = exited(process)

        def gone() -> str | None:
            reason = exited_with()
            return None if reason is None else f"{reason}: {self.log.read_text(errors='replace')}"

        what = f"qrt dev listens on {self.port}"
        # A busy machine can take minutes to import what qrt dev serves; a crash ends the wait at once.
        eventually_sync(lambda: listening(self.port), what, timeout=180, give_up=gone)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(30)

    def kill(self) -> None:
        """Stop it at once if it still runs."""
        if self.process is not None and self.process.poll() is None:
            self.stop(signal.SIGKILL)


@contextmanager
def serving(root: Path) -> Iterator[DevServer]:
    """A `qrt dev` with its data and the test programs under `root`, for the block."""
    server = DevServer(root / "data", merge_programs(root / "programs"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


@contextmanager
def serving_with_keys(root: Path) -> Iterator[tuple[DevServer, str]]:
    """A `qrt dev --auth` with its data and the test programs under `root`, and the key of a
    platform admin `alice` made beforehand with `qrt admin`, for the block."""
    data = root / "data"
    admin = [sys.executable, "-m", "qrt_cli", "admin", "--data-dir", str(data)]
    subprocess.run([*admin, "users", "add", "alice", "--admin"], check=True, capture_output=True)
    made = subprocess.run(
        [*admin, "keys", "create", "alice"], check=True, capture_output=True, text=True
    )
    server = DevServer(data, merge_programs(root / "programs"), options=["--auth"])
    server.start()
    try:
        yield server, made.stdout.strip()
    finally:
        server.kill()
