"""The simulated device of `qrt dev`, in a process of its own: `qrt device`, configured by its
`QRT_*` environment, that ends with the process that started it.

    python -m qrt_device PARENT_PID

So that no circuit, and nothing native that runs it, can take `qrt dev` down with it; `qrt dev`
starts it again if it ends. Exits 2 for a configuration it cannot use, 1 if it cannot bind its
sockets (saying why on stderr), 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from qrt_common.errors import DeviceConfigError
from qrt_common.logs import configure_logging
from qrt_common.processes import end_with_parent
from qrt_common.settings import Settings

from .main import serve


def main(argv: list[str]) -> int:
    """Serve as the device of the process whose id is `argv[1]`; returns the exit code."""
    # SIGTERM rather than SIGKILL: it still says OFFLINE and stops its worker.
    end_with_parent(int(argv[1]), signal.SIGTERM)
    settings = Settings()
    configure_logging(settings.log_level, service="qrt-device", form=settings.log_format)
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(serve(settings))
        except DeviceConfigError as exc:
            print(f"qrt device: invalid device configuration: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"qrt device: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
