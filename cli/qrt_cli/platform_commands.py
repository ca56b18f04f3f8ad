"""`qrt login` (keep a platform's URL and key as a profile), `qrt backends list` and `qrt backends
show NAME` (a device's state, coupling map and calibration)."""

from __future__ import annotations

import argparse
import getpass
import sys

from rich.table import Table

from . import exits, profiles, render
from .remote import Context


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add `login` and `backends` to the `qrt` parser."""
    summary = "keep a platform's URL and API key as a profile (checked against the platform)"
    login = commands.add_parser("login", help=summary, description=summary, parents=[common])
    login.add_argument("url", metavar="URL", nargs="?", default=profiles.DEFAULT_URL,
                       help=f"the platform (default {profiles.DEFAULT_URL})")  # fmt: skip
    login.add_argument(
        "--key", help="the API key (qrt admin keys create); asked for on a terminal if left out"
    )
    login.add_argument("--no-check", action="store_true", help="keep it without asking the URL")
    login.set_defaults(client_action=_login, target_of=login_target)

    backends = commands.add_parser("backends", help="the backends jobs can run on")
    actions = backends.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list backends", parents=[common])
    listing.set_defaults(client_action=_backends)
    show = actions.add_parser(
        "show", help="a backend's state, queue, topology and calibration", parents=[common]
    )
    show.add_argument("name", metavar="NAME", help="the backend (qrt backends list)")
    show.set_defaults(client_action=_backend)


def login_target(args: argparse.Namespace) -> profiles.Target:
    """What `qrt login` keeps: the URL given and the key given (or typed in), without
    surrounding whitespace; raises ProfileError for a URL without http:// or https://, or a
    key that holds what no key holds."""
    profiles.check_url(args.url, "qrt login")
    key, given = args.key, "qrt login --key"
    if key is None and sys.stdin.isatty():
        key, given = getpass.getpass("API key (empty: none): "), "qrt login"
    key = profiles.checked_key(key, given)
    return profiles.Target(args.url.rstrip("/"), key, args.profile or profiles.DEFAULT_PROFILE)


async def _login(ctx: Context, args: argparse.Namespace) -> int:
    target = ctx.target  # login_target's: the URL and key given, not a profile's
    if not args.no_check:
        await ctx.client.jobs(limit=1)  # a route that needs the key when keys are required
    assert target.profile is not None
    path = profiles.save(target.profile, target.url, target.key)
    if ctx.json:
        ctx.print_json({"profile": target.profile, "url": target.url, "config": str(path)})
    else:
        ctx.out.print(f"logged in to {target.url} as profile {target.profile} ({path})",
                      markup=False)  # fmt: skip
    return exits.OK


async def _backends(ctx: Context, args: argparse.Namespace) -> int:
    backends = await ctx.client.backends()
    if ctx.json:
        ctx.print_json([{"name": b.name, "simulator": b.simulator} for b in backends])
        return exits.OK
    table = Table(box=None, pad_edge=False)
    table.add_column("name")
    table.add_column("kind")
    for backend in backends:
        table.add_row(backend.name, "simulator" if backend.simulator else "device")
    ctx.out.print(table)
    return exits.OK


async def _backend(ctx: Context, args: argparse.Namespace) -> int:
    backend = await ctx.client.backend(args.name)
    if ctx.json:
        ctx.print_json(backend)
        return exits.OK
    for part in render.backend_detail(backend):
        ctx.out.print(part)
    return exits.OK
