"""A real file system that runs full: a small tmpfs mounted for a test (which needs root; the
test is skipped where it cannot mount one)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

CHUNK = 64 * 1024


class SmallDisk:
    """A tmpfs of `size` at `path`; `fill()` takes every byte left, `free()` gives them back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._filler = path / "filler"

    def fill(self) -> None:
        """Write a file until the file system has no space left."""
        with open(self._filler, "ab") as sink, contextlib.suppress(OSError):
            while True:
                sink.write(b"\0" * CHUNK)
                sink.flush()
        # What a 64 KiB write could not take, smaller ones may: leave no page free.
        with open(self._filler, "ab", buffering=0) as sink, contextlib.suppress(OSError):
            while True:
                sink.write(b"\0" * 512)

    def free(self) -> None:
        self._filler.unlink(missing_ok=True)


@contextlib.contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[SmallDisk]:
    """A tmpfs of `size` mounted at `path` for the block (the test is skipped if it cannot)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root is needed): {mounted.stderr.strip()}")
    try:
        yield SmallDisk(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
