"""`/programs` and `/backends`: what can be run, and where."""

from __future__ import annotations

from aiohttp import web

from .context import gateway
from .errors import ApiError
from .jobs import json_response
from .schemas import BackendList, BackendOut, ProgramList, ProgramOut, dump


async def list_programs(request: web.Request) -> web.Response:
    programs = gateway(request).registry.all()
    return json_response(dump(ProgramList(programs=[ProgramOut.of(p) for p in programs])))


async def get_program(request: web.Request) -> web.Response:
    program_id = request.match_info["program_id"]
    program = gateway(request).registry.get(program_id)
    if program is None:
        raise ApiError(404, f"program '{program_id}' not found")
    return json_response(dump(ProgramOut.of(program)))


async def list_backends(request: web.Request) -> web.Response:
    gw = gateway(request)
    devices = set(gw.devices())
    backends = [BackendOut(name=name, simulator=name not in devices) for name in gw.backends()]
    return json_response(dump(BackendList(backends=backends)))
