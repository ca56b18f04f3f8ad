"""Importing a program's entry point inside its job process."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def import_from(directory: str) -> None:
    """Put `directory` first on the import path, seeing the files it holds now."""
    sys.path.insert(0, directory)
    # A finder the zygote cached for it may predate files added since. Only that one is
    # dropped: importlib.invalidate_caches() would free caches all over the zygote's heap,
    # and copying the pages they sit on costs a job process about 6 ms.
    sys.path_importer_cache.pop(directory, None)


def entry_point(directory: str, module: str, function: str, where: str) -> Callable[..., Any]:
    """Function `function` of `module`, imported from `directory`; raises AttributeError
    (naming `where`, the module as users know it) if it has no such function."""
    import_from(directory)
    found: Callable[..., Any] | None = getattr(importlib.import_module(module), function, None)
    if not callable(found):
        raise AttributeError(f"{where} has no {function}() function")
    return found
