"""`qrt jobs submit|list|show|logs|result|cancel|delete|watch`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from qrt_client import JobEnded
from qrt_client.codec import decode

from . import exits, follow, render
from .remote import Context, UsageError, default_instance_hint, instance_parts


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add `jobs` and its subcommands to the `qrt` parser."""
    jobs = commands.add_parser("jobs", help="submit, follow, read and cancel jobs")
    actions = jobs.add_subparsers(dest="action", required=True, metavar="ACTION")

    def job_command(name: str, summary: str) -> argparse.ArgumentParser:
        command = actions.add_parser(name, help=summary, description=summary, parents=[common])
        if name not in ("submit", "list"):
            command.add_argument("job_id", metavar="ID", help="the job's id")
        return command

    submit = job_command("submit", "submit a job of a program")
    submit.add_argument("program", metavar="PROGRAM", help="the program's id")
    submit.add_argument(
        "--params", metavar="JSON|@FILE", help="the params as a JSON object, or @file (@- stdin)"
    )
    submit.add_argument("--backend", help="e.g. aer_simulator or a device (qrt backends list)")
    submit.add_argument("--tag", action="append", dest="tags", help="a tag (repeatable)")
    submit.add_argument("--instance", metavar="HUB/GROUP/PROJECT", help="where the job belongs")
    submit.add_argument("--max-execution-time", type=int, metavar="SECONDS")
    submit.add_argument("--watch", action="store_true", help="follow the job until it ends")
    submit.set_defaults(client_action=_submit)

    listing = job_command("list", "list jobs, newest first")
    listing.add_argument("--status", action="append", help="Queued, Running, Completed, ...")
    listing.add_argument("--program")
    listing.add_argument("--backend")
    listing.add_argument("--tag", action="append", dest="tags", help="jobs with all these tags")
    state = listing.add_mutually_exclusive_group()
    state.add_argument("--pending", action="store_true", default=None, help="queued or running")
    state.add_argument("--ended", dest="pending", action="store_false", help="ended jobs only")
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    listing.add_argument("--offset", type=int)
    listing.set_defaults(client_action=_list)

    job_command("show", "show a job").set_defaults(client_action=_show)
    logs = job_command("logs", "print a job's log")
    logs.add_argument("--attempt", type=int, metavar="N", help="only attempt N's log")
    logs.set_defaults(client_action=_logs)
    result = job_command("result", "print a job's result (waits for the job to end)")
    result.add_argument("--timeout", type=float, metavar="SECONDS", help="wait at most this long")
    result.set_defaults(client_action=_result)
    job_command("cancel", "cancel a queued or running job").set_defaults(client_action=_cancel)
    job_command("delete", "delete an ended job").set_defaults(client_action=_delete)
    watch = job_command("watch", "follow a job live until it ends")
    watch.set_defaults(client_action=_watch)


def params_of(text: str | None, option: str = "--params") -> dict[str, Any]:
    """`--params` (or another `option`): a JSON object (RuntimeEncoder's encodings of circuits,
    arrays ... decode to what they encode), `@file` or `@-` (stdin). Raises UsageError naming
    the problem."""
    if text is None:
        return {}
    source = option
    if text.startswith("@"):
        source = text[1:]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read params from {source}: {exc.strerror}") from None
    try:
        params = decode(text)
    except ValueError as exc:
        raise UsageError(f"{source} is not JSON: {exc}") from None
    if not isinstance(params, dict):
        raise UsageError(f"{source} must be a JSON object of parameters, not {text.strip()[:40]}")
    return params


async def _submit(ctx: Context, args: argparse.Namespace) -> int:
    params = params_of(args.params)
    hub, group, project = instance_parts(args.instance)
    with default_instance_hint(args.instance):
        job = await ctx.client.run(
            args.program, params, backend=args.backend, tags=args.tags, hub=hub, group=group,
            project=project, max_execution_time=args.max_execution_time,
        )  # fmt: skip
    if args.watch:
        if not ctx.json:
            ctx.out.print(f"submitted {job.id}")
        return await follow.follow(ctx.client, job.id, ctx.out, ctx.json)
    if ctx.json:
        ctx.print_json({"id": job.id})
    else:
        ctx.out.out(job.id, highlight=False)
    return exits.OK


async def _list(ctx: Context, args: argparse.Namespace) -> int:
    page = await ctx.client.jobs(
        limit=args.limit, offset=args.offset, pending=args.pending, status=args.status,
        program=args.program, backend=args.backend, tags=args.tags,
    )  # fmt: skip
    if ctx.json:
        ctx.print_json(page)
    else:
        ctx.out.print(render.jobs_table(page.jobs, page.count))
    return exits.OK


async def _show(ctx: Context, args: argparse.Namespace) -> int:
    info = await ctx.client.job(args.job_id).info()
    if ctx.json:
        ctx.print_json(info)
    else:
        pairs = [(k, v) for k, v in render.plain(info).items()]
        pairs.append(("elapsed", f"{render.elapsed(info):.1f} s"))
        ctx.out.print(render.key_values(pairs))
    return exits.OK


async def _logs(ctx: Context, args: argparse.Namespace) -> int:
    text = await ctx.client.job(args.job_id).logs(args.attempt)
    if ctx.json:
        ctx.print_json({"id": args.job_id, "log": text})
    else:
        ctx.out.out(text, end="" if text.endswith("\n") or not text else "\n", highlight=False)
    return exits.OK


async def _result(ctx: Context, args: argparse.Namespace) -> int:
    job = ctx.client.job(args.job_id)
    try:
        value = await job.result(args.timeout)
    except JobEnded as ended:
        if ctx.json:
            ctx.print_json({"id": job.id, "status": ended.status, "reason": ended.reason,
                            "result": ended.result})  # fmt: skip
        else:
            print(render.shown(f"qrt: {ended}", multiline=False), file=sys.stderr)
        return exits.of_status(ended.status)
    if ctx.json:
        ctx.print_json({"id": job.id, "status": "Completed", "result": value})
    else:
        render.show_value(ctx.out, "result", value)
    return exits.OK


def _done(ctx: Context, job_id: str, what: str) -> int:
    """Say that `what` ("cancelled", "deleted") happened to the job."""
    if ctx.json:
        ctx.print_json({"id": job_id, what: True})
    else:
        ctx.out.print(f"{what} {job_id}")
    return exits.OK


async def _cancel(ctx: Context, args: argparse.Namespace) -> int:
    await ctx.client.job(args.job_id).cancel()
    return _done(ctx, args.job_id, "cancelled")


async def _delete(ctx: Context, args: argparse.Namespace) -> int:
    await ctx.client.job(args.job_id).delete()
    return _done(ctx, args.job_id, "deleted")


async def _watch(ctx: Context, args: argparse.Namespace) -> int:
    return await follow.follow(ctx.client, args.job_id, ctx.out, ctx.json)
