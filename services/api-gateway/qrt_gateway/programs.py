"""`/programs` and `/backends`: what can be run, and where; programs users upload.

Bundled programs come from programs.ini and cannot be changed here. Uploaded programs live in
the store, owned by a hub/group/project; their code is a zip archive, checked when it arrives
with the same reader that runs it on the executor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from pathlib import Path

from aiohttp import web

from qrt_common.accounts import Principal, Role
from qrt_common.archives import ProgramArchive, decode_archive, unpack_archive
from qrt_common.errors import (
    ArchiveTooLarge,
    Conflict,
    Forbidden,
    InvalidArchive,
    InvalidInput,
    InvalidProgram,
    NotFound,
    ProgramNameTaken,
)
from qrt_common.jobs import DEFAULT_INSTANCE, JobStatus, utcnow
from qrt_common.metrics import PROGRAM_PROBLEMS
from qrt_common.program_limits import check_within
from qrt_common.programs import Program, archive_program, new_program_id, with_metadata
from qrt_common.store.base import JobQuery

from .auth import principal
from .context import Gateway, gateway, may_see
from .plumbing import json_response, parse_json, read_json, validated
from .schemas import (
    BackendList,
    BackendOut,
    ProgramCreated,
    ProgramData,
    ProgramList,
    ProgramOut,
    ProgramProblemOut,
    ProgramRequest,
    ProgramUpdate,
    dump,
)

RAW_ARCHIVE_TYPES = ("application/zip", "application/octet-stream")
"""Content types under which `PUT /programs/{id}/data` takes the zip itself, not JSON."""


def _owners(request: web.Request, who: Principal) -> list[str]:
    """The instances whose private programs to list: the `owner` query parameter; without it,
    the instances `who` belongs to (the default instance for a platform admin, or without
    keys)."""
    owner = request.query.get("owner")
    if owner is not None:
        if len(owner.split("/")) != 3 or not all(owner.split("/")):
            raise InvalidInput("query parameter 'owner' must be hub/group/project", field="owner")
        return [owner]
    if who.admin or not who.roles:
        return [DEFAULT_INSTANCE]
    return sorted(who.roles)


async def list_programs(request: web.Request) -> web.Response:
    gw = gateway(request)
    who = principal(request)
    found: dict[str, Program] = {}
    for owner in _owners(request, who):
        for program in await gw.store.list_programs(owner):
            if may_see(program, who):  # another instance's private programs stay unseen
                found[program.id] = program
    uploaded = sorted(found.values(), key=lambda p: (p.name, p.id))
    programs = [*gw.registry.all(), *uploaded]
    problems = gw.registry.problems()
    PROGRAM_PROBLEMS.set(len(problems))
    errors = [
        ProgramProblemOut(file=p.path, line=p.line, message=p.message, program_id=p.program_id)
        for p in problems
    ]
    listing = ProgramList(programs=[ProgramOut.of(p) for p in programs], errors=errors)
    return json_response(dump(listing))


async def get_program(request: web.Request) -> web.Response:
    program_id = request.match_info["program_id"]
    gw = gateway(request)
    who = principal(request)
    program = await gw.visible_program(program_id, who)
    if program is None:
        raise await gw.program_not_found(program_id, who)
    return json_response(dump(ProgramOut.of(program)))


def _read_code(data: bytes, program_id: str, limit: int) -> tuple[ProgramArchive, Program]:
    """The archive `data` and the program it holds, or a 4xx naming `data` (blocking)."""
    with tempfile.TemporaryDirectory(prefix="qrt-upload-") as scratch:
        try:
            unpack_archive(data, Path(scratch, "program"), limit=limit)
            program = archive_program(program_id, Path(scratch, "program"))
        except (InvalidArchive, InvalidProgram) as exc:
            raise InvalidInput(f"data: {exc}", field="data") from None
    return ProgramArchive.of(data), program


def _decoded(text: str, limit: int) -> bytes:
    try:
        return decode_archive(text, limit)
    except ArchiveTooLarge as exc:
        raise ArchiveTooLarge(f"data: {exc}", field="data") from None
    except InvalidArchive as exc:
        raise InvalidArchive(f"data: {exc}", field="data") from None


def _with_metadata(program: Program, changes: dict[str, object]) -> Program:
    try:
        return with_metadata(program, changes)
    except InvalidProgram as exc:
        raise InvalidProgram(f"spec: {exc}", field="spec") from None


def _name_taken(program: Program) -> ProgramNameTaken:
    return ProgramNameTaken(
        f"{program.owner} already has a program named '{program.name}'", field="name"
    )


async def _check_room(gw: Gateway, owner: str) -> None:
    """Raise Conflict when instance `owner` keeps QRT_INSTANCE_MAX_PROGRAMS uploads already: a
    member uploading without end would fill the store's disk (uploads arriving at the very same
    moment may all pass one count)."""
    most = gw.settings.instance_max_programs
    if not most:
        return
    kept = sum(1 for program in await gw.store.list_programs(owner) if program.owner == owner)
    if kept >= most:
        raise Conflict(
            f"instance {owner} keeps {kept} uploaded programs, the most QRT_INSTANCE_MAX_PROGRAMS"
            " allows; delete one before uploading another",
            field="hub",
        )


async def upload_program(request: web.Request) -> web.Response:
    gw = gateway(request)
    who = principal(request)
    body = validated(ProgramRequest, await read_json(request))
    owner = f"{body.hub}/{body.group}/{body.project}"
    if not body.model_fields_set & {"hub", "group", "project"}:
        # Named none: the default instance, else the caller's one instance (as PlanQK's API).
        owner = who.submit_instance(owner) or owner
    gw.require(who, owner, Role.MEMBER, "uploading a program")
    await _check_room(gw, owner)
    program_id = new_program_id(body.name)
    while gw.registry.get(program_id) is not None:  # a bundled id wins every lookup
        program_id = new_program_id(body.name)
    limit = gw.settings.max_program_bytes
    data = await asyncio.to_thread(_decoded, body.data, limit)
    archive, code = await asyncio.to_thread(_read_code, data, program_id, limit)
    try:  # the sandbox limits its metadata declares, within what this platform allows
        check_within(code.limits, gw.settings)
    except InvalidProgram as exc:
        raise InvalidInput(f"data: {exc}", field="data") from None
    now = utcnow()
    program = dataclasses.replace(
        _with_metadata(code, {"is_public": False, **body.changes()}),
        owner=owner,
        created=now,
        updated=now,
        uploader=who.user if who.key_id is not None else None,
    )
    try:
        await gw.store.add_program(program, archive)
    except ProgramNameTaken:
        raise _name_taken(program) from None
    return json_response(dump(ProgramCreated(id=program.id)), 201)


async def _uploaded(gw: Gateway, request: web.Request) -> Program:
    """The uploaded program the path names, if the caller may change it (its uploader, an
    admin of its instance, a platform admin); 403 for a bundled one or another caller's, 404
    for none (or one the caller may not see)."""
    program_id = request.match_info["program_id"]
    if gw.registry.get(program_id) is not None:
        raise Forbidden(
            f"program '{program_id}' is bundled (programs.ini): the API cannot change or delete it",
            field="programId",
        )
    who = principal(request)
    program = await gw.store.get_program(program_id)
    if program is None or not may_see(program, who):
        raise NotFound(f"program '{program_id}' not found")
    owner = program.owner or DEFAULT_INSTANCE
    is_uploader = who.key_id is not None and program.uploader == who.user
    # Its uploader only while a member there: one made reader since only reads.
    if not (is_uploader and who.may(owner, Role.MEMBER)) and not who.may(owner, Role.ADMIN):
        raise Forbidden(
            f"changing or deleting program '{program_id}' needs its uploader or an admin of"
            f" {owner}; {who.user} is neither",
            field="programId",
        )
    return program


async def _replace(gw: Gateway, program: Program, archive: ProgramArchive | None = None) -> None:
    try:
        replaced = await gw.store.update_program(program, archive)
    except ProgramNameTaken:
        raise _name_taken(program) from None
    if not replaced:
        raise NotFound(f"program '{program.id}' not found")


async def update_program(request: web.Request) -> web.Response:
    gw = gateway(request)
    program = await _uploaded(gw, request)
    body = validated(ProgramUpdate, await read_json(request))
    changed = dataclasses.replace(_with_metadata(program, body.changes()), updated=utcnow())
    await _replace(gw, changed)
    return json_response(dump(ProgramOut.of(changed)))


async def _archive_bytes(request: web.Request, limit: int) -> bytes:
    if request.content_type in RAW_ARCHIVE_TYPES:
        data = await request.read()
        if len(data) > limit:
            raise ArchiveTooLarge(
                f"data: the archive is larger than the limit of {limit} bytes", field="data"
            )
        return data
    body = validated(ProgramData, parse_json(await request.read()))
    return await asyncio.to_thread(_decoded, body.data, limit)


async def replace_program_data(request: web.Request) -> web.Response:
    gw = gateway(request)
    program = await _uploaded(gw, request)
    limit = gw.settings.max_program_bytes
    data = await _archive_bytes(request, limit)
    archive, code = await asyncio.to_thread(_read_code, data, program.id, limit)
    # New code, same metadata: what the files decide (the kind, a command) comes with the code.
    changed = dataclasses.replace(
        program,
        module=code.module,
        kind=code.kind,
        command=code.command,
        digest=archive.digest,
        updated=utcnow(),
    )
    await _replace(gw, changed, archive)
    return json_response(dump(ProgramOut.of(changed)))


async def delete_program(request: web.Request) -> web.Response:
    gw = gateway(request)
    program = await _uploaded(gw, request)
    pending = (JobStatus.QUEUED, JobStatus.RUNNING)
    _, count = await gw.store.list_jobs(
        JobQuery(limit=1, program_id=program.id, statuses=pending, with_params=False)
    )
    if count:
        raise Conflict(
            f"program '{program.id}' has {count} queued or running job(s); "
            "cancel them or wait for them to end before deleting it"
        )
    await gw.store.delete_program(program.id)
    return web.Response(status=204)


async def list_backends(request: web.Request) -> web.Response:
    gw = gateway(request)
    devices = set(gw.devices())
    backends = [BackendOut(name=name, simulator=name not in devices) for name in gw.backends()]
    return json_response(dump(BackendList(backends=backends)))
