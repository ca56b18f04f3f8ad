"""A package whose `__init__` runs on the first use of a name it defines, while its submodules
import at once: what lets the zygote load qiskit-ibm-runtime's codec (`qiskit_ibm_runtime.json`)
without the rest of that package.

`import qiskit_ibm_runtime` runs the package's `__init__`, which imports its client for IBM's
cloud and all that needs (requests, cryptography, IBM's cloud SDKs, samplomatic): about 1200
modules, 88 MiB and 0.6-0.8 s (qiskit-ibm-runtime 0.51). A job process needs none of it to
decode its params and encode its results, and every module the zygote holds is memory each
executor keeps and mappings each fork and exit of a job process walk. A program that uses the
package (`from qiskit_ibm_runtime import QiskitRuntimeService`, `qiskit_ibm_runtime.SamplerV2`)
still gets all of it: its first such use runs the `__init__`, in that job's process.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any


class DeferredPackageError(ImportError):
    """The package cannot be deferred: it is not an installed package, or is imported already."""


_MODULE_ATTRIBUTES = frozenset(
    ("__name__", "__doc__", "__package__", "__loader__", "__spec__", "__path__", "__file__",
     "__cached__", "__builtins__", "__getattr__", "__dir__")
)  # fmt: skip
"""What the import system sets on a module (and the deferral's hooks): not a program's."""


class _Completion:
    """The deferred package's module `__getattr__` and `__dir__` (PEP 562): run its
    `__init__` once, then answer from it."""

    def __init__(self, package: ModuleType) -> None:
        self.package = package
        self.lock = threading.RLock()
        self.running = False

    def __call__(self, attribute: str) -> Any:
        if not self._complete():
            raise AttributeError(f"module {self.package.__name__!r} has no attribute {attribute!r}")
        return getattr(self.package, attribute)

    def names(self) -> list[str]:
        """What `dir(package)` lists: the names its `__init__` defines too."""
        self._complete()
        return sorted(self.package.__dict__)

    def _complete(self) -> bool:
        """Run the package's `__init__` unless it ran; False while it runs in this thread."""
        package = self.package
        with self.lock:
            # While `__init__` runs, the import system asks for names it has not defined yet
            # (`from . import sub` checks the attribute before importing): not there, as in
            # any import in progress.
            if self.running:
                return False
            # Another thread may have run it while this one waited for the lock.
            if package.__dict__.get("__getattr__") is self:
                # What a program set on the package before (a monkeypatch) stays: in a process
                # that imported it whole, `__init__` would have run before the program did.
                kept = {
                    name: value
                    for name, value in package.__dict__.items()
                    if name not in _MODULE_ATTRIBUTES and not isinstance(value, ModuleType)
                }
                self.running = True
                try:
                    package.__spec__.loader.exec_module(package)  # type: ignore[union-attr]
                finally:
                    self.running = False
                    package.__dict__.update(kept)
                for name, ours in (("__getattr__", self), ("__dir__", self.names)):
                    if package.__dict__.get(name) == ours:
                        del package.__dict__[name]
        return True


def defer_package(name: str) -> ModuleType:
    """Put package `name` in `sys.modules` with its `__init__` not run yet, and return it.

    Its submodules import as usual (`import name.sub`, `from name.sub import x`); the first
    name asked of the package itself that it does not hold yet (`name.Thing`, `from name
    import Thing`, `hasattr(name, "Thing")`, and `dir(name)`) runs its `__init__` in the same
    module object, once, and is answered from it. An `__init__` that raises leaves the package
    deferred (the next such use tries again), as a failed import would. Raises
    DeferredPackageError when `name` is not an installed package or is imported already.
    """
    if name in sys.modules:
        raise DeferredPackageError(f"{name} is imported already")
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise DeferredPackageError(f"{name} is not an installed package")
    package = importlib.util.module_from_spec(spec)
    completion = _Completion(package)
    package.__getattr__ = completion  # type: ignore[method-assign]
    package.__dir__ = completion.names  # type: ignore[method-assign]
    sys.modules[name] = package
    return package


def is_deferred(package: ModuleType) -> bool:
    """Whether `package` came from `defer_package` and has not run its `__init__` yet."""
    return isinstance(package.__dict__.get("__getattr__"), _Completion)
