"""Which limit an exception raised in a job ran into (qrt_executor.sandbox.limit_reason)."""

from __future__ import annotations

import errno
from collections.abc import Callable

from qrt_executor.job_protocol import JobLimits
from qrt_executor.sandbox import limit_reason


def test_limit_reasons_come_from_the_limit_that_was_hit():
    limits = JobLimits(memory_bytes=1 << 20, cpu_seconds=1, processes=8, open_files=16)

    def raised(code: Callable[[], object]) -> BaseException:
        try:
            code()
        except BaseException as exc:
            return exc
        raise AssertionError("nothing raised")

    def fork() -> None:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    def read_nonblocking() -> None:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    def wrapped() -> None:
        try:
            raise MemoryError
        except MemoryError as exc:
            raise RuntimeError("the simulator failed") from exc

    assert "process limit" in str(limit_reason(raised(fork), limits))
    assert limit_reason(raised(read_nonblocking), limits) is None
    assert "memory limit" in str(limit_reason(raised(wrapped), limits))
    assert "open files" in str(limit_reason(OSError(errno.EMFILE, "Too many open files"), limits))
    assert limit_reason(MemoryError(), JobLimits()) is None  # no limit set: not the limit's
    assert limit_reason(ValueError("bad"), limits) is None


def test_a_full_disk_is_the_temporary_directorys_limit_only_there():
    limits = JobLimits(temp_bytes=1 << 20, set_by={"temp_bytes": "the program's limits.temp_bytes"})
    full = OSError(errno.ENOSPC, "No space left on device", "/tmp/out.bin")
    assert limit_reason(full, limits) == (
        "temporary directory full: 1048576 bytes in /tmp (the program's limits.temp_bytes)"
    )
    elsewhere = OSError(errno.ENOSPC, "No space left on device", "/scratch/out.bin")
    assert limit_reason(elsewhere, limits) is None  # a shared volume's disk, not the job's /tmp
    default = JobLimits(temp_bytes=1 << 20)
    assert "(QRT_JOB_TEMP_BYTES)" in str(limit_reason(full, default))
