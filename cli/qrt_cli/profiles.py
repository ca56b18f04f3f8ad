"""Where the client commands find the platform: named profiles (URL and API key) in a TOML
config file, written by `qrt login`, overridden by `QRT_URL` and `QRT_API_KEY`.

The file is `$XDG_CONFIG_HOME/qrt/config.toml` (default `~/.config/qrt/config.toml`)::

    default = "work"

    [profiles.work]
    url = "https://qrt.example.org"
    key = "qrt_<id>_<secret>"

It holds keys, so it is written readable by its owner only (mode 0600).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from qrt_client import InvalidKey
from qrt_client.transport import check_key

DEFAULT_URL = "http://127.0.0.1:8000"
"""Where `qrt dev` listens by default: the platform when nothing else is configured."""
DEFAULT_PROFILE = "default"


class ProfileError(Exception):
    """The config file cannot be read, or names no such profile."""


@dataclass(frozen=True)
class Target:
    """The platform a command talks to: its `url`, the `key` to send (None: none), and the
    profile they came from (None: the environment or the default)."""

    url: str
    key: str | None
    profile: str | None


def config_path() -> Path:
    """The config file's path (it need not exist)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "qrt" / "config.toml"


def load(path: Path | None = None) -> dict[str, Any]:
    """The config file as a dict (empty if there is none). Raises ProfileError for a file that
    is not valid TOML, naming the file and the problem."""
    path = path or config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ProfileError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path} is not valid TOML: {exc}") from None


def _toml_string(value: str) -> str:
    # A JSON string with only ASCII is a valid TOML basic string (same escapes, \uXXXX).
    return json.dumps(value, ensure_ascii=True)


def save(profile: str, url: str, key: str | None, path: Path | None = None) -> Path:
    """Keep `url` and `key` as `profile` and make it the default; returns the file's path."""
    path = path or config_path()
    config = load(path)
    profiles: dict[str, dict[str, str]] = {
        name: {k: v for k, v in values.items() if isinstance(v, str)}
        for name, values in (config.get("profiles") or {}).items()
        if isinstance(values, dict)
    }
    profiles[profile] = {"url": url, **({"key": key} if key else {})}
    lines = [f"default = {_toml_string(profile)}", ""]
    for name, values in profiles.items():
        lines.append(f"[profiles.{_toml_string(name)}]")
        lines += [f"{k} = {_toml_string(v)}" for k, v in values.items()]
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write("\n".join(lines))
    path.chmod(0o600)
    return path


def resolve(profile: str | None = None, path: Path | None = None) -> Target:
    """The platform to talk to: `QRT_URL` and `QRT_API_KEY` when set, else the named profile
    (`--profile`, else `QRT_PROFILE`, else the file's default), else `DEFAULT_URL` without a
    key. Raises ProfileError for a profile the file does not have, or a key `checked_key`
    refuses."""
    config = load(path)
    name = profile or os.environ.get("QRT_PROFILE") or config.get("default")
    profiles = config.get("profiles") or {}
    values: dict[str, Any] = {}
    if isinstance(name, str):
        if name in profiles and isinstance(profiles[name], dict):
            values = profiles[name]
        elif profile is not None or os.environ.get("QRT_PROFILE"):
            known = ", ".join(sorted(profiles)) or "none yet (qrt login makes one)"
            raise ProfileError(f"no profile {name!r} in {path or config_path()}; known: {known}")
    url = os.environ.get("QRT_URL") or values.get("url") or DEFAULT_URL
    key = os.environ.get("QRT_API_KEY") or values.get("key") or None
    check_url(str(url), "QRT_URL" if os.environ.get("QRT_URL") else f"profile {name}")
    given = "QRT_API_KEY" if os.environ.get("QRT_API_KEY") else f"profile {name}"
    return Target(str(url), checked_key(key, given), name if values else None)


def checked_key(key: object, given: str) -> str | None:
    """`key` (from `given`: QRT_API_KEY, a profile, `qrt login --key`) as `check_key` leaves it:
    surrounding whitespace stripped. Raises ProfileError naming `given` and the problem (never
    the key) for one that is not text or holds what no key holds."""
    if key is None:
        return None
    if not isinstance(key, str):
        raise ProfileError(f"{given}: the API key must be text")
    try:
        return check_key(key)
    except InvalidKey as exc:
        raise ProfileError(f"{given}: {exc}") from None


def check_url(url: str, given: str) -> None:
    """Raises ProfileError unless `url` (from `given`: QRT_URL, a profile, `qrt login`'s
    argument) starts with http:// or https://, so that `127.0.0.1:8000` is a usage error
    that says what to write rather than a platform that cannot be reached."""
    if not url.startswith(("http://", "https://")):
        raise ProfileError(f"{given}: {url!r} is no URL; write http://{url.split('://')[-1]}")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:  # a newline from a shell's $(...), a space, a bad port
        raise ProfileError(f"{given}: {url!r} is no URL: {exc}") from None
    if not parsed.host:
        raise ProfileError(f"{given}: {url!r} is no URL: it names no host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ProfileError(f"{given}: {url!r} is no URL: port {parsed.port} is not 1 to 65535")
