"""`qrt jobs watch` and `submit --watch`: a job live over its websockets, with a status line
(status and elapsed time), its log as it comes, interim results, and the result at the end."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from qrt_client import AsyncClient, Attempt, Event, Interim, JobInfo, Log, Result

from . import exits, render

POLL_SECONDS = 1.0
"""How often the status line asks the platform for the job's status."""


class _Tick:
    """No event came before the next status poll was due."""


_TICK = _Tick()


async def follow(client: AsyncClient, job_id: str, out: Console, as_json: bool) -> int:
    """Follow the job until it ends; returns the exit code for how it ended. Raises what the
    client raises (StreamError if a stream breaks, TransportError, ApiError)."""
    job = client.job(job_id)
    info = await job.info()
    queue: asyncio.Queue[Event | BaseException | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in job.stream():
                await queue.put(event)
        except Exception as exc:  # raised below, in the command
            await queue.put(exc)
        finally:
            await queue.put(None)

    def emit(kind: str, **fields: Any) -> None:
        out.out(render.to_json({"event": kind, **fields}, indent=None), highlight=False)

    def announce(now: JobInfo) -> None:
        if as_json:
            emit("status", job=now)
        else:
            out.print(render.status_line(now))

    live = not as_json and out.is_terminal
    announce(info)
    task = asyncio.create_task(pump())
    status: Status | contextlib.nullcontext[None]
    status = out.status(render.status_line(info)) if live else contextlib.nullcontext()
    update: Callable[[str], None] = (lambda _: None) if not isinstance(status, Status) else (
        lambda line: status.update(line))  # fmt: skip
    try:
        with status:
            next_poll = time.monotonic() + POLL_SECONDS
            while True:
                item: Event | BaseException | _Tick | None
                try:
                    wait = max(0.0, next_poll - time.monotonic())
                    item = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    item = _TICK
                # Polled on time even while events pour in, so the line never goes stale.
                if time.monotonic() >= next_poll:
                    now = await job.info()
                    if now.status != info.status and not live:
                        announce(now)
                    info = now
                    next_poll = time.monotonic() + POLL_SECONDS
                update(render.status_line(info))
                if isinstance(item, _Tick):
                    continue
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                _show(item, out, as_json, emit)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    info = await job.info()
    if as_json:
        emit("end", job=info)
    else:
        out.print(render.status_line(info))
    return exits.of_status(info.status)


def _show(event: Event, out: Console, as_json: bool, emit: Callable[..., None]) -> None:
    if isinstance(event, Log):
        if as_json:
            emit("log", text=event.text)
        else:
            out.out(event.text, end="" if event.text.endswith("\n") else "\n", highlight=False)
    elif isinstance(event, Interim):
        if as_json:
            emit("interim", value=event.value)
        else:
            render.show_value(out, "interim", event.value)
    elif isinstance(event, Result):
        if as_json:
            emit("result", value=event.value)
        else:
            render.show_value(out, "result", event.value)
    elif isinstance(event, Attempt):
        if as_json:
            emit("attempt", attempt=event.attempt, reason=event.reason)
        else:
            reason = render.shown(event.reason or "the job runs again", multiline=False)
            out.print(f"attempt {event.attempt}: {escape(reason)}")
