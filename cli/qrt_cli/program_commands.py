"""`qrt programs list|show|upload|update|delete`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from qrt_client import Program

from . import exits, render
from .remote import Context, UsageError, default_instance_hint, instance_parts


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add `programs` and its subcommands to the `qrt` parser."""
    programs = commands.add_parser("programs", help="list, show, upload and delete programs")
    actions = programs.add_subparsers(dest="action", required=True, metavar="ACTION")

    def program_command(name: str, summary: str, more: str = "") -> argparse.ArgumentParser:
        about = f"{summary}. {more}" if more else summary
        return actions.add_parser(name, help=summary, description=about, parents=[common])

    listing = program_command("list", "list the programs you may run")
    listing.add_argument("--owner", metavar="HUB/GROUP/PROJECT", help="whose uploads to list")
    listing.set_defaults(client_action=_list)
    show = program_command("show", "show a program and its parameters")
    show.add_argument("program_id", metavar="ID")
    show.set_defaults(client_action=_show)

    upload = program_command(
        "upload",
        "upload a program from a directory or a .zip file",
        "A directory is zipped without __pycache__, version control directories (.git, ...) "
        "and other names starting with a dot (.env, .venv, ...): --include adds one. A symbolic "
        "link is zipped as what it leads to, which must be inside the directory.",
    )
    upload.add_argument("source", metavar="DIR|ZIP", help="program.py or planqk.json at its top")
    upload.add_argument("--instance", metavar="HUB/GROUP/PROJECT",
                        help="the instance that owns it (default: ibm-q/open/main)")  # fmt: skip
    update = program_command(
        "update", "change an uploaded program's code or metadata", "A directory is zipped as by "
        "upload.",
    )  # fmt: skip
    update.add_argument("program_id", metavar="ID")
    update.add_argument("source", metavar="DIR|ZIP", nargs="?", help="new code")
    for command in (upload, update):
        command.add_argument("--name", help="default: the directory's name" if command is upload
                             else None)  # fmt: skip
        command.add_argument("--description")
        command.add_argument("--max-execution-time", type=int, metavar="SECONDS")
        command.add_argument("--private", dest="is_public", action="store_false", default=None,
                             help="only its instance sees and runs it")  # fmt: skip
        command.add_argument("--public", dest="is_public", action="store_true",
                             help="everyone may see and run it")  # fmt: skip
        command.add_argument(
            "--include", action="append", default=[], metavar="PATH",
            help="a file or directory starting with a dot to zip too, relative to DIR "
            "(repeatable; version control directories never are)",
        )  # fmt: skip
    upload.set_defaults(client_action=_upload)
    update.set_defaults(client_action=_update)

    delete = program_command("delete", "delete an uploaded program")
    delete.add_argument("program_id", metavar="ID")
    delete.set_defaults(client_action=_delete)


def _metadata(args: argparse.Namespace) -> dict[str, Any]:
    names = ("name", "description", "max_execution_time", "is_public")
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _source(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise UsageError(f"no such directory or file: {text}")
    return path


async def _list(ctx: Context, args: argparse.Namespace) -> int:
    programs = await ctx.client.programs.list(args.owner)
    if ctx.json:
        ctx.print_json([render.snake_keys(p.raw) for p in programs])
        return exits.OK
    table = Table(box=None, pad_edge=False)
    for column in ("id", "kind", "version", "public", "description"):
        table.add_column(column)
    for program in programs:
        table.add_row(program.id, program.kind, escape(render.shown(program.version or "-")),
                      "yes" if program.is_public else "no",
                      escape(render.shown(program.description)))  # fmt: skip
    ctx.out.print(table)
    return exits.OK


def _print(ctx: Context, program: Program) -> None:
    if ctx.json:
        ctx.print_json(render.snake_keys(program.raw))
        return
    pairs: list[tuple[str, Any]] = [
        ("id", program.id), ("name", program.name), ("kind", program.kind),
        ("version", program.version), ("description", program.description),
        ("max execution time", f"{program.max_execution_time} s"),
        ("public", "yes" if program.is_public else "no"),
        ("bundled", "yes" if program.bundled else "no"), ("owner", program.owner),
    ]  # fmt: skip
    ctx.out.print(render.key_values(pairs))
    for parameter in program.parameters or []:
        name = render.shown(str(parameter.get("name", "?")), multiline=False)
        required = " (required)" if parameter.get("required") else ""
        about = render.shown(str(parameter.get("description", "")))
        ctx.out.print(f"  {name}{required}: {about}", markup=False)


async def _show(ctx: Context, args: argparse.Namespace) -> int:
    _print(ctx, await ctx.client.programs.show(args.program_id))
    return exits.OK


async def _upload(ctx: Context, args: argparse.Namespace) -> int:
    hub, group, project = instance_parts(args.instance)
    with default_instance_hint(args.instance):
        program = await ctx.client.programs.upload(
            _source(args.source), hub=hub, group=group, project=project, include=args.include,
            **_metadata(args),
        )  # fmt: skip
    _print(ctx, program)
    return exits.OK


async def _update(ctx: Context, args: argparse.Namespace) -> int:
    source = None if args.source is None else _source(args.source)
    program = await ctx.client.programs.update(
        args.program_id, source, include=args.include, **_metadata(args)
    )
    _print(ctx, program)
    return exits.OK


async def _delete(ctx: Context, args: argparse.Namespace) -> int:
    await ctx.client.programs.delete(args.program_id)
    if ctx.json:
        ctx.print_json({"id": args.program_id, "deleted": True})
    else:
        ctx.out.print(f"deleted {args.program_id}", markup=False)
    return exits.OK
