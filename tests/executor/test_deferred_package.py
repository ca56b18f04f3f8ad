"""A deferred package: its submodules import without its `__init__`, which runs once, on the
first use of a name it defines."""

from __future__ import annotations

import builtins
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from qrt_executor.deferred_package import DeferredPackageError, defer_package, is_deferred

INIT = """
import time
from . import codec
from .codec import encode
from .heavy import Client

RUNS.append(time.monotonic())
"""


@pytest.fixture
def package(tmp_path: Path) -> Iterator[tuple[str, list[float]]]:
    """A package `deferme_<n>` whose `__init__` imports two submodules and records each run in
    the list it returns (the `RUNS` builtin its modules see)."""
    name = f"deferme_{uuid.uuid4().hex}"
    root = tmp_path / name
    root.mkdir()
    (root / "__init__.py").write_text(INIT)
    (root / "codec.py").write_text("def encode(value):\n    return repr(value)\n")
    (root / "heavy.py").write_text("HEAVY_LOADED.append(1)\nclass Client:\n    pass\n")
    runs: list[float] = []
    heavy: list[int] = []
    builtins.RUNS = runs  # type: ignore[attr-defined]
    builtins.HEAVY_LOADED = heavy  # type: ignore[attr-defined]
    sys.path.insert(0, str(tmp_path))
    try:
        yield name, runs
    finally:
        sys.path.remove(str(tmp_path))
        for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
            del sys.modules[module]
        del builtins.RUNS, builtins.HEAVY_LOADED  # type: ignore[attr-defined]


def test_submodules_import_without_the_package_s_init(package):
    name, runs = package
    deferred = defer_package(name)
    codec = __import__(f"{name}.codec", fromlist=["encode"])
    assert codec.encode(1) == "1"
    assert runs == [] and is_deferred(deferred)
    assert f"{name}.heavy" not in sys.modules


def test_the_first_name_asked_of_the_package_runs_its_init_once(package):
    name, runs = package
    deferred = defer_package(name)
    codec = __import__(f"{name}.codec", fromlist=["encode"])
    client = deferred.Client  # the heavy submodule's class, defined by __init__
    assert client is sys.modules[f"{name}.heavy"].Client
    assert len(runs) == 1 and not is_deferred(deferred)
    # The submodule imported before is the one __init__ took, not a second copy.
    assert deferred.encode is codec.encode and deferred.codec is codec
    exec(f"from {name} import Client as again", {})
    assert len(runs) == 1
    with pytest.raises(AttributeError, match="no attribute 'Missing'"):
        _ = deferred.Missing
    assert sys.modules[name] is deferred


def test_what_a_program_set_on_the_package_before_its_init_ran_stays(package):
    """A monkeypatch made before the first use is what a process that imported the package
    whole would keep: its `__init__` ran before the program did."""
    name, runs = package
    deferred = defer_package(name)
    patched = type("Patched", (), {})
    setattr(deferred, "Client", patched)  # noqa: B010 - a monkeypatch, as a program makes it
    setattr(deferred, "__version__", "patched")  # noqa: B010
    exec(f"from {name} import encode", {})  # runs __init__, which binds Client
    assert len(runs) == 1
    assert deferred.Client is patched and deferred.__version__ == "patched"
    assert deferred.codec is sys.modules[f"{name}.codec"]


def test_dir_lists_what_init_defines(package):
    name, runs = package
    deferred = defer_package(name)
    assert {"Client", "encode", "codec"} <= set(dir(deferred))
    assert len(runs) == 1 and "__dir__" not in vars(deferred)


def test_a_name_the_package_does_not_define_is_still_an_attribute_error(package):
    name, runs = package
    deferred = defer_package(name)
    assert not hasattr(deferred, "Missing")  # hasattr runs __init__, then answers
    assert len(runs) == 1


def test_an_init_that_fails_raises_and_runs_again_on_the_next_use(package, tmp_path):
    name, runs = package
    heavy = tmp_path / name / "heavy.py"
    heavy.write_text("raise RuntimeError('no network here')\n")
    deferred = defer_package(name)
    with pytest.raises(RuntimeError, match="no network here"):
        _ = deferred.Client
    assert is_deferred(deferred) and runs == []
    heavy.write_text("class Client:\n    pass\n")
    sys.modules.pop(f"{name}.heavy", None)
    assert deferred.Client.__name__ == "Client"
    assert len(runs) == 1


def test_threads_asking_at_once_run_init_once(package):
    name, runs = package
    deferred = defer_package(name)
    start = threading.Barrier(8)
    seen: list[object] = []

    def ask() -> None:
        start.wait()
        seen.append(deferred.Client)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(runs) == 1 and len(set(map(id, seen))) == 1 and len(seen) == 8


def test_only_an_installed_package_not_yet_imported_can_be_deferred(package, tmp_path):
    plain = f"plain_{uuid.uuid4().hex}"
    (tmp_path / f"{plain}.py").write_text("")
    with pytest.raises(DeferredPackageError, match="imported already"):
        defer_package("json")
    with pytest.raises(DeferredPackageError, match="not an installed package"):
        defer_package("no_such_package_qrt")
    with pytest.raises(DeferredPackageError, match="not an installed package"):
        defer_package(plain)  # a module, not a package
