"""What goes over the wire besides plain JSON: params encoded with RuntimeEncoder, results
decoded with RuntimeDecoder, and program archives."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import ArchiveError, ResultUndecodable

ENVELOPE = '"__type__"'
"""What every value RuntimeEncoder encodes its own way carries in its JSON text."""


def to_json(value: Any, **options: Any) -> str:
    """`value` as JSON text, values JSON cannot carry (circuits, arrays, complex numbers)
    encoded with RuntimeEncoder; `options` are `json.dumps`'s. The same text RuntimeEncoder
    writes, without importing qiskit (seconds) for plain values."""
    try:
        return json.dumps(value, **options)
    except TypeError:
        from qiskit_ibm_runtime import RuntimeEncoder

        return json.dumps(value, cls=RuntimeEncoder, **options)


def decode(text: str) -> Any:
    """A result or interim result (RuntimeEncoder JSON text) as the Python value it encodes
    (RuntimeDecoder, imported only for text that holds an encoded value); raises
    ResultUndecodable for text it cannot decode."""
    try:
        if ENVELOPE not in text:
            return json.loads(text)
        from qiskit_ibm_runtime import RuntimeDecoder

        return json.loads(text, cls=RuntimeDecoder)
    except RecursionError:
        raise ResultUndecodable("the result is nested too deeply to decode") from None
    except ValueError as exc:
        raise ResultUndecodable(f"the result cannot be decoded: {exc}") from None
    except Exception as exc:  # RuntimeDecoder's hooks raise TypeError, zlib.error, QPY's own
        raise ResultUndecodable(
            f"the result cannot be decoded: {type(exc).__name__}: {exc}"
        ) from None


def encode_params(params: Mapping[str, Any] | None) -> list[str]:
    """`params` as the test server takes them: a list holding one RuntimeEncoder JSON text, so
    circuits, numpy arrays and complex numbers reach the program as they were."""
    return [to_json(dict(params or {}))]


MOST_ARCHIVE_BYTES = 8 * 1024 * 1024
"""The largest program archive any platform accepts (QRT_MAX_PROGRAM_BYTES is at most 8 MiB:
an archive travels in one bus message and one MongoDB document). Archiving a directory stops
here rather than reading all of a directory given by mistake (`/etc`); the platform's own
limit, which may be lower, answers 413."""
VCS_DIRECTORIES = frozenset({".git", ".hg", ".svn", ".bzr", "CVS", "_darcs", ".jj", ".pijul"})
"""Version control directories: never part of a directory's archive."""


def archive_of(
    source: str | os.PathLike[str] | bytes,
    *,
    include: Collection[str | os.PathLike[str]] = (),
    most_bytes: int = MOST_ARCHIVE_BYTES,
) -> bytes:
    """A program's zip archive: `source` is the zip itself (bytes or a `.zip` file), or a
    directory, whose contents become the archive's root (`program.py` or `planqk.json` at the
    top), less `__pycache__`, version control directories (`.git`, ...) and every other name
    starting with a dot (`.env`, `.venv`, ...) unless `include` names it (a path relative to
    the directory). A symbolic link in it is archived as what it leads to, which must be in
    the directory. Raises FileNotFoundError for a path that does not exist, ArchiveError for
    a link leading out of the directory, a file it cannot read or an archive over
    `most_bytes`."""
    if isinstance(source, bytes):
        return source
    path = Path(source)
    if not path.is_dir():
        return path.read_bytes()
    root = path.resolve()
    wanted = {Path(os.path.normpath(name)).as_posix() for name in include}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file, name in _files(root, wanted):
            try:
                archive.write(file, name)
            except OSError as exc:  # unreadable (permissions), or gone since it was listed
                raise ArchiveError(f"cannot read {name}: {exc.strerror or exc}") from None
            if buffer.tell() > most_bytes:
                raise ArchiveError(
                    f"{path}: the archive is over {most_bytes:,} bytes by {name} (no platform "
                    "takes more); is this the program's directory?"
                )
    if buffer.tell() > most_bytes:
        raise ArchiveError(f"{path}: the archive is {buffer.tell():,} bytes, over {most_bytes:,}")
    return buffer.getvalue()


def _files(root: Path, wanted: set[str]) -> Iterator[tuple[Path, str]]:
    """Every file to archive under `root` (resolved) and its name in the archive, in order."""
    for directory, subdirectories, files in os.walk(root, followlinks=True):
        here = Path(directory)
        relative = here.relative_to(root)
        real = _inside(root, here, relative.as_posix())
        kept = []
        for name in sorted(subdirectories):
            if _kept(name, (relative / name).as_posix(), wanted, True):
                target = _inside(root, here / name, (relative / name).as_posix())
                if target != real and target not in real.parents:  # else a link loop
                    kept.append(name)
        subdirectories[:] = kept
        for file in sorted(files):
            name = (relative / file).as_posix()
            if _kept(file, name, wanted, False):
                target = _inside(root, here / file, name)
                if target.is_file():
                    yield target, name


def _kept(part: str, name: str, wanted: set[str], directory: bool) -> bool:
    if part == "__pycache__" or part in VCS_DIRECTORIES:
        return False
    if not part.startswith("."):
        return True
    return name in wanted or (directory and any(w.startswith(name + "/") for w in wanted))


def _inside(root: Path, path: Path, name: str) -> Path:
    """`path`'s real path; raises ArchiveError when a link takes it out of `root`."""
    real = path.resolve()
    if real != root and root not in real.parents:
        raise ArchiveError(
            f"{name} is a symbolic link to {real}, outside the program's directory {root}; "
            "copy what it leads to into the directory"
        )
    return real
