"""What goes over the wire besides plain JSON: params encoded with RuntimeEncoder, results
decoded with RuntimeDecoder, and program archives."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    (RuntimeDecoder, imported only for text that holds an encoded value)."""
    if ENVELOPE not in text:
        return json.loads(text)
    from qiskit_ibm_runtime import RuntimeDecoder

    return json.loads(text, cls=RuntimeDecoder)


def encode_params(params: Mapping[str, Any] | None) -> list[str]:
    """`params` as the test server takes them: a list holding one RuntimeEncoder JSON text, so
    circuits, numpy arrays and complex numbers reach the program as they were."""
    return [to_json(dict(params or {}))]


def archive_of(source: str | os.PathLike[str] | bytes) -> bytes:
    """A program's zip archive: `source` is the zip itself (bytes or a `.zip` file), or a
    directory, whose contents become the archive's root (`program.py` or `planqk.json` at the
    top). Raises FileNotFoundError for a path that does not exist."""
    if isinstance(source, bytes):
        return source
    path = Path(source)
    if not path.is_dir():
        return path.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(path.rglob("*")):
            if file.is_file() and "__pycache__" not in file.parts:
                archive.write(file, file.relative_to(path).as_posix())
    return buffer.getvalue()
