"""A Kubernetes service-account token planted where Kubernetes mounts one, for sandbox tests."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

TOKEN_PATH = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
PLANTED_SECRET = "s3cret-only-the-platform-knows"


@contextlib.contextmanager
def planted_token() -> Iterator[Path]:
    """A token file holding PLANTED_SECRET at TOKEN_PATH, removed afterwards with every
    directory made for it (skips the test where one exists or none can be made)."""
    if TOKEN_PATH.exists():
        pytest.skip(f"{TOKEN_PATH} exists here: not planting over a real token")
    created = [path for path in [*reversed(TOKEN_PATH.parents), TOKEN_PATH] if not path.exists()]
    try:
        TOKEN_PATH.parent.mkdir(parents=True, exist_ok=True)
        TOKEN_PATH.write_text(PLANTED_SECRET)
    except OSError as exc:
        pytest.skip(f"cannot plant a token at {TOKEN_PATH}: {exc}")
    try:
        yield TOKEN_PATH
    finally:
        for path in reversed(created):
            with contextlib.suppress(OSError):
                path.rmdir() if path.is_dir() else path.unlink()
        assert not any(os.path.exists(path) for path in created)
