"""The installed qrt's version (`qrt --version`)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("qrt")
except PackageNotFoundError:  # a source tree that was not installed
    VERSION = "0.0.0"
