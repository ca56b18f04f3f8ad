"""`qrt services start|list|show|result|interim-results|log|cancel`: PlanQK's Service API,
where every program is a service and an execution is a job under PlanQK's names."""

from __future__ import annotations

import argparse
import sys

from rich.table import Table

from qrt_client import Execution

from . import exits, render
from .job_commands import params_of
from .remote import Context

BY_STATUS = {"SUCCEEDED": exits.OK, "FAILED": exits.FAILED, "CANCELLED": exits.CANCELLED}
"""The exit code of an execution that ended with each status."""


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    """Add `services` and its subcommands to the `qrt` parser."""
    services = commands.add_parser(
        "services", help="PlanQK's Service API: start, follow and read executions"
    )
    actions = services.add_subparsers(dest="action", required=True, metavar="ACTION")

    def service_command(name: str, summary: str, execution: bool = True) -> argparse.ArgumentParser:
        command = actions.add_parser(name, help=summary, description=summary, parents=[common])
        command.add_argument("service", metavar="SERVICE", help="the program's id")
        if execution:
            command.add_argument("execution_id", metavar="ID", help="the execution's id")
        return command

    start = service_command("start", "start an execution with input by value", execution=False)
    start.add_argument("--data", metavar="JSON|@FILE", help="the input data, a JSON object")
    start.add_argument("--params", metavar="JSON|@FILE", help="the parameters, a JSON object")
    start.add_argument("--instance", metavar="HUB/GROUP/PROJECT", help="where it belongs")
    start.add_argument("--wait", action="store_true", help="wait for the end, print the result")
    start.add_argument("--timeout", type=float, metavar="SECONDS", help="with --wait: at most")
    start.set_defaults(client_action=_start)

    listing = service_command("list", "list the service's executions, newest first", False)
    listing.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    listing.set_defaults(client_action=_list)

    service_command("show", "show an execution").set_defaults(client_action=_show)
    result = service_command("result", "print an execution's result (waits for its end)")
    result.add_argument("--timeout", type=float, metavar="SECONDS", help="wait at most this long")
    result.set_defaults(client_action=_result)
    interim = service_command("interim-results", "print an execution's interim results")
    interim.add_argument("--last", action="store_true", help="only the latest")
    interim.set_defaults(client_action=_interim_results)
    service_command("log", "print an execution's log").set_defaults(client_action=_log)
    cancel = service_command("cancel", "cancel a pending or running execution")
    cancel.set_defaults(client_action=_cancel)


def _row(execution: Execution) -> dict[str, object]:
    return render.plain(execution)  # type: ignore[no-any-return]


def _show_execution(ctx: Context, execution: Execution) -> None:
    if ctx.json:
        ctx.print_json(execution)
    else:
        ctx.out.print(render.key_values(list(_row(execution).items())))


async def _start(ctx: Context, args: argparse.Namespace) -> int:
    data = params_of(args.data, "--data") if args.data is not None else None
    params = params_of(args.params) if args.params is not None else None
    services = ctx.client.services
    execution = await services.start(args.service, data, params, instance=args.instance)
    if not args.wait:
        if ctx.json:
            ctx.print_json(execution)
        else:
            ctx.out.out(execution.id, highlight=False)
        return exits.OK
    if not ctx.json:
        ctx.out.print(f"started {execution.id}")
    return await _finish(ctx, args.service, execution.id, args.timeout)


async def _finish(ctx: Context, service: str, execution_id: str, limit: float | None) -> int:
    """Wait for the execution's end, then print its result (or why it has none)."""
    execution = await ctx.client.services.wait(service, execution_id, limit)
    value = None
    if execution.status != "CANCELLED":
        value = await ctx.client.services.result(service, execution_id)
    if ctx.json:
        ctx.print_json({"id": execution.id, "status": execution.status, "result": value})
    elif execution.status == "SUCCEEDED":
        render.show_value(ctx.out, "result", value)
    elif execution.status == "FAILED":
        print(f"qrt: execution {execution.id} FAILED: {render.to_json(value, None)}",
              file=sys.stderr)  # fmt: skip
    else:
        print(f"qrt: execution {execution.id} was CANCELLED; it has no result", file=sys.stderr)
    return BY_STATUS.get(execution.status, exits.OK)


async def _list(ctx: Context, args: argparse.Namespace) -> int:
    executions = await ctx.client.services.executions(args.service, limit=args.limit)
    if ctx.json:
        ctx.print_json(executions)
        return exits.OK
    table = Table(box=None, pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=36)
    for column in ("status", "created", "ended"):
        table.add_column(column)
    for execution in executions:
        created = execution.created.strftime("%m-%d %H:%M:%S") if execution.created else "-"
        ended = execution.ended.strftime("%m-%d %H:%M:%S") if execution.ended else "-"
        table.add_row(execution.id, execution.status, created, ended)
    ctx.out.print(table)
    return exits.OK


async def _show(ctx: Context, args: argparse.Namespace) -> int:
    _show_execution(ctx, await ctx.client.services.get(args.service, args.execution_id))
    return exits.OK


async def _result(ctx: Context, args: argparse.Namespace) -> int:
    return await _finish(ctx, args.service, args.execution_id, args.timeout)


async def _interim_results(ctx: Context, args: argparse.Namespace) -> int:
    services = ctx.client.services
    value = await services.interim_results(args.service, args.execution_id, last=args.last)
    if ctx.json:
        ctx.print_json(value)
    elif args.last:
        render.show_value(ctx.out, "interim result", value)
    else:
        for number, interim in enumerate(value, 1):
            render.show_value(ctx.out, f"interim result {number}", interim)
    return exits.OK


async def _log(ctx: Context, args: argparse.Namespace) -> int:
    lines = await ctx.client.services.log(args.service, args.execution_id)
    if ctx.json:
        ctx.print_json({"id": args.execution_id, "log": lines})
    else:
        for line in lines:
            ctx.out.out(line, highlight=False)
    return exits.OK


async def _cancel(ctx: Context, args: argparse.Namespace) -> int:
    execution = await ctx.client.services.cancel(args.service, args.execution_id)
    if ctx.json:
        ctx.print_json(execution)
    else:  # not the execution's fields: a running one still says RUNNING as it is stopped
        ctx.out.print(f"cancelled {execution.id}", markup=False)
    return exits.OK
