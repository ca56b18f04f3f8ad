"""What the client commands (`qrt login|jobs|programs|backends`) share: the options every one
takes, the client they talk through, and errors as one line with an exit code (`exits`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from rich.console import Console

from qrt_client import (
    ApiError,
    ArchiveError,
    AsyncClient,
    Forbidden,
    InvalidKey,
    QrtError,
    StreamError,
    TransportError,
    Unauthorized,
    WaitTimeout,
)

from . import exits, profiles, render


class UsageError(Exception):
    """Bad input on the command line (params that are not JSON, a missing file)."""


def instance_parts(text: str | None) -> tuple[str | None, str | None, str | None]:
    """An `--instance` option's `hub/group/project` as (hub, group, project), all None when the
    option was not given; raises UsageError for a text that is no such triple."""
    if text is None:
        return None, None, None
    parts = text.split("/")
    if len(parts) != 3 or not all(parts):
        raise UsageError(f"--instance must be hub/group/project, not {text!r}")
    return parts[0], parts[1], parts[2]


@contextlib.contextmanager
def default_instance_hint(instance: str | None) -> Iterator[None]:
    """Around a call that was given `--instance` (or not): a 403 without one says that the
    platform chose its default instance, and how to name another."""
    try:
        yield
    except Forbidden as exc:
        if instance is not None:
            raise
        hint = (
            "; without --instance the platform's default instance is used: name one you are a "
            "member of with --instance HUB/GROUP/PROJECT"
        )
        raise Forbidden(exc.status, exc.detail + hint, exc.field) from None


@dataclass
class Context:
    """What an action gets: the client, where it talks to, how to print."""

    client: AsyncClient
    target: profiles.Target
    out: Console
    json: bool

    def print_json(self, value: object) -> None:
        """`value` as JSON on stdout (for `--output json`)."""
        self.out.out(render.to_json(value), highlight=False)


Action = Callable[[Context, argparse.Namespace], Awaitable[int]]
"""A client command: returns the exit code."""


def common_options() -> argparse.ArgumentParser:
    """A parent parser with `--profile` and `--output`, for every client command."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--profile",
        help="the profile of the config file to use (QRT_PROFILE; default: the last logged in)",
    )
    common.add_argument(
        "-o",
        "--output",
        choices=("text", "json"),
        default="text",
        help="text for people (default), json for scripts",
    )
    return common


def run(args: argparse.Namespace) -> int:
    """Run the chosen client command; errors are one line on stderr (and, with `--output
    json`, `{"error": ...}` on stdout), and the exit code says what happened."""
    as_json = args.output == "json"
    try:
        target_of: Callable[[argparse.Namespace], profiles.Target] | None
        target_of = getattr(args, "target_of", None)
        target = profiles.resolve(args.profile) if target_of is None else target_of(args)
    except profiles.ProfileError as exc:
        return _fail(f"qrt: {exc}", exits.USAGE, as_json)
    try:
        return asyncio.run(_run(args, target, as_json))
    except KeyboardInterrupt:
        return _fail("qrt: interrupted (the job goes on)", exits.INTERRUPTED, as_json)
    except (UsageError, ArchiveError, InvalidKey) as exc:
        return _fail(f"qrt: {exc}", exits.USAGE, as_json)
    except Unauthorized as exc:
        how = "qrt login --key KEY" if target.key is None else "qrt login with a valid key"
        where = f"profile {target.profile}, " if target.profile else ""
        message = f"qrt: {_api(exc)} ({where}{target.url}; {how})"
        return _fail(message, exits.REFUSED, as_json, exc.status, exc.field)
    except ApiError as exc:
        return _fail(f"qrt: {_api(exc)}", exits.REFUSED, as_json, exc.status, exc.field)
    except TransportError as exc:
        why = exc.__cause__ or exc
        reason = str(why) or type(why).__name__
        return _fail(f"qrt: cannot reach {target.url}: {reason}", exits.UNREACHABLE, as_json)
    except StreamError as exc:
        return _fail(f"qrt: the job's stream broke: {exc}", exits.UNREACHABLE, as_json)
    except WaitTimeout as exc:
        return _fail(f"qrt: {exc}", exits.TIMED_OUT, as_json)
    except QrtError as exc:
        return _fail(f"qrt: {exc}", exits.REFUSED, as_json)


async def _run(args: argparse.Namespace, target: profiles.Target, as_json: bool) -> int:
    action: Action = args.client_action
    async with AsyncClient(target.url, target.key) as client:
        return await action(Context(client, target, render.console(), as_json), args)


def _api(exc: ApiError) -> str:
    field = f" (field {exc.field})" if exc.field else ""
    return f"{exc.status} {exc.detail}{field}"


def _fail(
    message: str, code: int, as_json: bool, status: int | None = None, field: str | None = None
) -> int:
    # The platform's words may quote a program's (a failure's reason): no terminal escapes.
    print(render.shown(message, multiline=False), file=sys.stderr)
    if as_json:
        error = {"error": message.removeprefix("qrt: "), "status": status, "field": field}
        print(render.to_json(error, indent=None))
    return code
