"""A programs.ini or program metadata broken while the gateway runs: `/readyz` names it but stays
ready (the other programs are served), `qrt_program_problems` counts it, `GET /programs` carries
the error (file and line), and a submit of the program is a 409 naming the cause, not "not
found"."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from qrt_common.registry import ProgramRegistry
from tests.support.programs import write_program

from .conftest import Harness, MakeGateway


def later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


async def program_problems(gw: Harness) -> float:
    """`qrt_program_problems` as Prometheus scrapes it from the gateway's `/metrics`."""
    async with gw.client.get("/metrics") as response:
        assert response.status == 200
        text = await response.text()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    [sample] = families["qrt_program_problems"].samples
    return sample.value


async def gateway_on(make_gateway: MakeGateway, programs: Path) -> Harness:
    gw = await make_gateway()
    gw.gateway.registry = ProgramRegistry(programs)
    return gw


async def test_a_program_whose_metadata_breaks_is_named_by_readyz_programs_and_submits(
    make_gateway: MakeGateway, tmp_path: Path
):
    programs = tmp_path / "programs"
    write_program(programs, "good", {"name": "good"})
    write_program(programs, "bad", {"name": "bad"})
    (programs / "programs.ini").write_text("[programs]\ngood=good.good\nbad=bad.bad\n")
    gw = await gateway_on(make_gateway, programs)
    assert (await gw.call("GET", "/readyz")) == {
        "status": "ready", "checks": {"store": True, "bus": True}, "problems": []
    }  # fmt: skip
    assert (await gw.call("GET", "/programs"))["errors"] == []
    assert await program_problems(gw) == 0

    meta = programs / "bad" / "bad.json"
    meta.write_text('{\n  "name": "bad",\n  "version": 1.0,,\n}\n')
    later(meta)
    ready = await gw.call("GET", "/readyz")  # the gateway still serves every other program
    assert ready["status"] == "ready"
    assert ready["checks"] == {"store": True, "bus": True}
    assert ready["problems"] == [
        f"program 'bad' cannot be loaded: {meta}, line 3: Expecting property name enclosed in "
        "double quotes"
    ]
    assert await program_problems(gw) == 1
    listing = await gw.call("GET", "/programs")
    assert "bad" not in {p["id"] for p in listing["programs"]}
    assert listing["errors"] == [
        {"file": str(meta), "line": 3, "programId": "bad",
         "message": "Expecting property name enclosed in double quotes"}
    ]  # fmt: skip
    refused = await gw.submit("bad", 409)
    assert refused["field"] == "programId"
    assert refused["detail"] == ready["problems"][0]
    assert (await gw.call("GET", "/programs/bad", 409))["detail"] == refused["detail"]
    assert (await gw.call("POST", "/services/bad/", 409, json={}))["detail"] == refused["detail"]
    await gw.submit("good")  # the others run on
    assert (await gw.submit("unknown", 404))["detail"] == "program 'unknown' not found"

    meta.write_text('{"name": "bad"}\n')
    later(meta)
    assert (await gw.call("GET", "/programs"))["errors"] == []  # a listing counts anew too
    assert await program_problems(gw) == 0
    assert (await gw.call("GET", "/readyz"))["problems"] == []
    await gw.submit("bad")


async def test_a_programs_ini_that_breaks_is_named_with_its_line(
    make_gateway: MakeGateway, tmp_path: Path
):
    programs = tmp_path / "programs"
    write_program(programs, "good", {"name": "good"})
    ini = programs / "programs.ini"
    ini.write_text("[programs]\ngood=good.good\n")
    gw = await gateway_on(make_gateway, programs)
    await gw.submit("good")
    ini.write_text("[programs]\ngood=good.good\noops\n")
    later(ini)
    ready = await gw.call("GET", "/readyz")
    assert ready["status"] == "ready"
    assert ready["problems"] == [f"{ini}, line 3: cannot parse 'oops' (write program-id=location)"]
    assert await program_problems(gw) == 1
    errors = (await gw.call("GET", "/programs"))["errors"]
    assert errors == [{"file": str(ini), "line": 3, "programId": None,
                       "message": "cannot parse 'oops' (write program-id=location)"}]  # fmt: skip
    await gw.submit("good")  # what it listed when it could be read is served on
    refused = await gw.submit("new", 404)
    assert (
        refused["detail"]
        == f"program 'new' not found; {ready['problems'][0]} (it may list the program)"
    )
    ini.write_text("[programs]\ngood=good.good\n")
    later(ini)
    assert (await gw.call("GET", "/readyz"))["problems"] == []
    assert await program_problems(gw) == 0
    await gw.submit("good")
