"""Program archives: the zip files users upload, checked before a byte of them is written.

An archive is refused, with the reason, when it is not base64 or not a zip, is larger than the
limit, would unpack to more than `UNPACKED_RATIO` times that limit or `MAX_ENTRIES` entries (a
zip bomb), or holds an absolute path, a `..` component, a symlink, a special file or an
encrypted entry. When every entry sits in one top-level directory (`zip -r prog.zip prog/`),
that directory is the program's root.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import ArchiveTooLarge, InvalidArchive

UNPACKED_RATIO = 16
"""An archive may unpack to at most this many times the largest archive accepted."""
MAX_ENTRIES = 10_000
IGNORED_PREFIX = "__MACOSX/"
"""Resource forks macOS's Archive Utility adds; never part of a program."""

_CHUNK = 1024 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True, slots=True)
class ProgramArchive:
    """An uploaded program's code: the zip's bytes and their digest."""

    digest: str
    data: bytes

    @classmethod
    def of(cls, data: bytes) -> ProgramArchive:
        return cls(archive_digest(data), data)


def archive_digest(data: bytes) -> str:
    """The identity of an archive's bytes: `sha256:<hex>`."""
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def decode_archive(text: str, limit: int) -> bytes:
    """The bytes of a base64-encoded archive of at most `limit` bytes."""
    if len(text) > (limit + 2) // 3 * 4 + 4:  # spare decoding what is too large anyway
        raise ArchiveTooLarge(f"the archive is larger than the limit of {limit} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArchive(f"the archive is not valid base64: {exc}") from None
    if len(data) > limit:
        raise ArchiveTooLarge(f"the archive is larger than the limit of {limit} bytes")
    return data


def _entry_path(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """Where an entry unpacks, relative to the root; None for entries that are skipped."""
    name = info.filename
    if name.startswith(IGNORED_PREFIX):
        return None
    if "\\" in name or "\0" in name:
        raise InvalidArchive(f"{name!r}: backslashes and NUL are not allowed in archive paths")
    if name.startswith("/") or _DRIVE.match(name):
        raise InvalidArchive(f"{name!r} is an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidArchive(f"{name!r} points outside the archive (..)")
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise InvalidArchive(f"{name!r} is a symbolic link; archive only regular files")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise InvalidArchive(f"{name!r} is a special file; archive only regular files")
    if info.flag_bits & 0x1:
        raise InvalidArchive(f"{name!r} is encrypted")
    return PurePosixPath(*parts) if parts else None


def unpack_archive(data: bytes, target: Path, *, limit: int) -> None:
    """Check the zip `data` (an archive of at most `limit` bytes) and unpack it into `target`,
    a directory that must not exist yet; raises InvalidArchive saying why it cannot.

    Whatever Python's zipfile (and the decompressors under it) raise on a damaged or unusual
    archive is InvalidArchive: not only BadZipFile, but NotImplementedError ("zip file version
    9.9", an unknown compression method), LZMAError, UnicodeDecodeError (a name flagged UTF-8
    that is not), EOFError, zlib.error and the rest; the archive is the user's, never qrt's.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:
        raise InvalidArchive(f"the archive is not a zip file we can read: {_reason(exc)}") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise InvalidArchive(f"the archive holds more than {MAX_ENTRIES} entries")
        entries = [(info, path) for info in infos if (path := _entry_path(info)) is not None]
        if not entries:
            raise InvalidArchive("the archive is empty")
        budget = UNPACKED_RATIO * limit
        if sum(info.file_size for info, _ in entries) > budget:
            raise InvalidArchive(f"the archive unpacks to more than {budget} bytes")
        entries = _rooted(entries)
        if len({path for _, path in entries}) != len(entries):
            raise InvalidArchive("the archive holds the same path twice")
        target.mkdir(parents=True)
        written = 0
        for info, path in entries:
            destination = target.joinpath(*path.parts)
            try:
                if info.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                executable = (info.external_attr >> 16) & 0o111
                fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o755 if executable else 0o644)  # fmt: skip
                with os.fdopen(fd, "wb") as sink, archive.open(info) as source:
                    while chunk := source.read(_CHUNK):
                        written += len(chunk)
                        if written > budget:  # the sizes the entries declare were lies
                            raise InvalidArchive(f"the archive unpacks to more than {budget} bytes")
                        sink.write(chunk)
            except InvalidArchive:
                raise
            except MemoryError:
                raise
            except Exception as exc:
                raise InvalidArchive(
                    f"{info.filename!r} cannot be unpacked: {_reason(exc)}"
                ) from None


def _reason(error: Exception) -> str:
    """What a reader of a damaged archive said, with its kind when it said nothing useful."""
    kind = type(error).__name__
    if kind == "error":  # zlib.error, binascii.error: the module says which
        kind = f"{type(error).__module__}.{kind}"
    text = str(error)
    return f"{kind}: {text}" if text else kind


def _rooted(
    entries: list[tuple[zipfile.ZipInfo, PurePosixPath]],
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """The entries relative to the program's root: one top-level directory holding everything
    is dropped from every path."""
    tops = {path.parts[0] for _, path in entries}
    nested = all(len(path.parts) > 1 or info.is_dir() for info, path in entries)
    if len(tops) != 1 or not nested:
        return entries
    return [(info, PurePosixPath(*path.parts[1:])) for info, path in entries if len(path.parts) > 1]
