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


def encode_params(params: Mapping[str, Any] | None) -> list[str]:
    """`params` as the test server takes them: a list holding one RuntimeEncoder JSON text, so
    circuits, numpy arrays and complex numbers reach the program as they were."""
    # Imported on first use: importing qiskit_ibm_runtime takes seconds, which every `qrt`
    # command and every service's start would pay otherwise.
    from qiskit_ibm_runtime import RuntimeEncoder

    return [json.dumps(dict(params or {}), cls=RuntimeEncoder)]


def decode(text: str) -> Any:
    """A result or interim result (RuntimeEncoder JSON text) as the Python value it encodes."""
    from qiskit_ibm_runtime import RuntimeDecoder  # on first use, as in `encode_params`

    return json.loads(text, cls=RuntimeDecoder)


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
