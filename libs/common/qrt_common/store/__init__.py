"""The job store: its interface (`base`), in one SQLite file (`sqlite`), in MongoDB (`mongo`)."""

from __future__ import annotations

from ..errors import StoreSetupError
from .base import JobStore


def open_store(url: str) -> JobStore:
    """The store a URL names: `sqlite:///path` or `mongodb://...` / `mongodb+srv://...`;
    raises StoreSetupError for any other."""
    if url.startswith("sqlite:///"):
        from pathlib import Path

        from .sqlite import SQLiteStore

        return SQLiteStore(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("mongodb://", "mongodb+srv://")):
        from .mongo import MongoStore

        return MongoStore(url)
    raise StoreSetupError(
        f"unsupported store URL {url!r}: use sqlite:///path or mongodb://host/database"
    )
