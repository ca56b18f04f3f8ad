"""The console and `/docs` in chromium, keys off: every endpoint rendered and tried, a job run
from its program's form to its histogram, a running job's live log then cancel and delete, the
jobs list's filters, and a device's calibration."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.support.dev import DevServer

from .conftest import Watched

HOSTILE = '<img src=x onerror="alert(1)"> hi & <b>bye</b>'
"""A greeting written to be run if the console ever parsed user text as HTML."""


def api(server: DevServer, method: str, path: str, **options: Any) -> httpx.Response:
    return httpx.request(method, server.url + path, timeout=60, **options)


def test_docs_render_every_endpoint_and_try_it_out_works_for_a_get_and_a_post(
    page: Page, watched: Watched, server: DevServer
):
    document = api(server, "GET", "/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    operations = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    page.goto(f"{server.url}/docs")
    expect(page.locator(".opblock")).to_have_count(len(operations))
    shown = page.eval_on_selector_all(
        ".opblock",
        "blocks => blocks.map(b => [b.querySelector('.opblock-summary-method').textContent,"
        " b.querySelector('.opblock-summary-path').dataset.path])",
    )
    assert {(method, path) for method, path in shown} == operations
    expect(page.locator("button.authorize")).to_be_visible()  # the bearer scheme declared
    watched.shot("docs")

    listing = page.locator("#operations-programs-list_backends")
    listing.locator(".opblock-summary").click()
    listing.locator("button.try-out__btn").click()
    listing.locator("button.execute").click()
    expect(listing.locator(".live-responses-table tbody .response-col_status")).to_have_text("200")
    expect(listing.locator(".live-responses-table .microlight").first).to_contain_text(
        "aer_simulator"
    )

    submit = page.locator("#operations-jobs-create_job")
    submit.locator(".opblock-summary").click()
    submit.locator("button.try-out__btn").click()
    submit.locator("textarea.body-param__text").fill(
        '{"programId": "hello-quantum", "params": {"greeting": "from the docs"}}'
    )
    submit.locator("button.execute").click()
    expect(submit.locator(".live-responses-table tbody .response-col_status")).to_have_text("200")
    answer = submit.locator(".live-responses-table .microlight").first
    expect(answer).to_contain_text('"id"')
    watched.shot("docs-try-it-out")


def test_a_job_run_from_its_programs_form_completes_with_its_histogram_drawn(
    page: Page, watched: Watched, server: DevServer
):
    page.goto(f"{server.url}/ui/#/programs")
    expect(page.locator("#programs tr[data-program='hello-quantum']")).to_contain_text(
        "A simple test program."
    )
    page.locator("#programs a", has_text="hello-quantum").click()
    page.fill("[name='param:greeting']", HOSTILE)
    page.fill("#submit-job [name=tags]", "histogram, console")
    watched.shot("program-form")
    page.click("#submit-job button[type=submit]")
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    job_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#job-header [data-status]")).to_have_text("Completed")
    bars = page.locator("#result svg.histogram rect.bar")
    expect(bars.first).to_be_visible()
    counts = {bar.get_attribute("data-outcome"): int(bar.get_attribute("data-count") or 0)
              for bar in bars.all()}  # fmt: skip
    stored = api(server, "GET", f"/jobs/{job_id}/results").json()
    assert counts == json.loads(stored) and sum(counts.values()) == 1024
    # The greeting, published as an interim result, shows as the text it is; the final result,
    # which ends the results stream, shows only as the result.
    expect(page.locator("#interims[data-stream=ended]")).to_have_count(1)
    expect(page.locator("#interims .interim")).to_have_count(1)
    expect(page.locator("#interims pre.json")).to_have_text(json.dumps(HOSTILE))
    # Replayed after the end: the time shown is when the page got it, and says so.
    expect(page.locator("#interims .interim > .muted")).to_have_text(re.compile(r"^#1, received "))
    assert page.locator("#interims img, #interims b, #log img").count() == 0
    expect(page.locator("#log")).to_contain_text("q_0")
    expect(page.locator("#timeline li")).to_have_count(3)
    watched.shot("job-completed")

    page.goto(f"{server.url}/ui/#/jobs?status=Completed&program=hello-quantum&tags=histogram")
    row = page.locator(f"#jobs tr[data-job='{job_id}']")
    expect(row.locator("[data-status]")).to_have_text("Completed")
    expect(row).to_contain_text("histogram, console")
    expect(page.locator("#job-count")).to_have_text("1 job")
    page.select_option("#job-filters select[name=status]", "Failed")
    page.click("#job-filters button[type=submit]")
    expect(page.locator("#job-count")).to_have_text("0 jobs")
    watched.shot("jobs-filtered")


def test_a_running_job_streams_its_log_and_interims_live_then_is_cancelled_and_deleted(
    page: Page, watched: Watched, server: DevServer
):
    created = api(server, "POST", "/jobs", json={
        "programId": "sleeper", "params": {"seconds": 240, "ticks": 40}, "tags": ["console"]})  # fmt: skip
    job_id = created.json()["id"]
    page.goto(f"{server.url}/ui/#/jobs/{job_id}")
    expect(page.locator("#log")).to_contain_text("tick 0")
    expect(page.locator("#interims .interim").first).to_contain_text('"tick": 0')
    expect(page.locator("#job-header [data-status]")).to_have_text("Running")
    watched.shot("job-running")

    page.click("#cancel")
    expect(page.locator("#job-header [data-status]")).to_have_text("Cancelled")
    assert api(server, "GET", f"/jobs/{job_id}").json()["status"] == "Cancelled"
    expect(page.locator("#cancel")).to_be_disabled()
    watched.shot("job-cancelled")

    page.click("#delete")
    expect(page.locator("#delete")).to_have_text("Delete for good?")
    page.click("#delete")
    page.wait_for_url(re.compile(r"#/jobs$"))
    assert api(server, "GET", f"/jobs/{job_id}").status_code == 404
    expect(page.locator(f"#jobs tr[data-job='{job_id}']")).to_have_count(0)


def test_the_device_page_shows_its_coupling_map_and_calibration(
    page: Page, watched: Watched, server: DevServer
):
    [device] = [b["name"] for b in api(server, "GET", "/backends").json()["backends"]
                if not b["simulator"]]  # fmt: skip
    page.goto(f"{server.url}/ui/#/backends")
    expect(page.locator(f"#backends tr[data-backend='{device}'] .status")).to_have_text("online")
    page.locator("#backends a", has_text=device).click()
    detail = api(server, "GET", f"/backends/{device}").json()
    rows = page.locator("#calibration tbody tr")
    expect(rows).to_have_count(detail["nqubits"])
    t1 = detail["calibration"]["qubits"][0]["t1Us"]
    expect(rows.first.locator("td").nth(1)).to_have_text(re.compile(r"^\d+\.\d\d$"))
    assert abs(float(rows.first.locator("td").nth(1).inner_text()) - t1) < t1 * 0.2
    expect(page.locator("svg.topology circle.node")).to_have_count(detail["nqubits"])
    expect(page.locator("svg.topology line.edge")).to_have_count(len(detail["topology"]))
    expect(page.locator("svg.heatmap rect")).to_have_count(4 * detail["nqubits"])
    watched.shot("device")


def test_expectation_values_are_plotted_and_other_output_shown_as_json(
    page: Page, watched: Watched, server: DevServer
):
    # echo declares no parameters: its form takes a JSON object, and it returns what it got.
    page.goto(f"{server.url}/ui/#/programs/echo")
    note = "</pre><script>alert(1)</script>"
    page.fill("textarea[name=params-json]", json.dumps({"evs": [0.25, -0.5, 0.75], "note": note}))
    page.click("#submit-job button[type=submit]")
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    expect(page.locator("#job-header [data-status]")).to_have_text("Completed")
    expect(page.locator("#result svg.plot circle.dot")).to_have_count(3)
    expect(page.locator("#result figcaption")).to_have_text("result.evs: 3 values")
    expect(page.locator("#result pre.json")).to_contain_text(note)
    assert page.locator("#result script").count() == 0
    watched.shot("job-expectation-values")


def test_a_planqk_programs_form_puts_each_parameter_in_its_object(
    page: Page, watched: Watched, server: DevServer
):
    # planqk-ghz declares data.n_qubits, params.shots and params.seed: the form sends
    # {"data": {"n_qubits": 2}, "params": {"shots": 64, "seed": 5}}.
    page.goto(f"{server.url}/ui/#/programs/planqk-ghz")
    page.fill("[name='param:data.n_qubits']", "2")
    page.fill("[name='param:params.shots']", "64")
    page.fill("[name='param:params.seed']", "5")
    page.click("#submit-job button[type=submit]")
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    expect(page.locator("#job-header [data-status]")).to_have_text("Completed")
    job_id = page.url.rsplit("/", 1)[1]
    job = api(server, "GET", f"/jobs/{job_id}").json()
    assert json.loads(job["params"][0]) == {
        "data": {"n_qubits": 2},
        "params": {"shots": 64, "seed": 5},
    }
    result = json.loads(api(server, "GET", f"/jobs/{job_id}/results").json())
    assert result["shots"] == 64 and set(result["counts"]) <= {"00", "11"}


FLOOD = """
def main(backend, user_messenger, **kwargs):
    print("[proto]", kwargs.get("__proto__"), "\\x1b[31mred\\x1b[0m")
    for i in range(150):
        user_messenger.publish({"i": i, "counts": {"00": i, "11": 150 - i}})
    deep = "[" * 20000 + "]" * 20000
    user_messenger.publish(deep, final=True)
"""


def test_a_flood_of_interims_and_a_deeply_nested_result_leave_the_page_working(
    page: Page, watched: Watched, server: DevServer
):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as files:
        files.writestr("program.py", FLOOD)
    spec = {"parameters": [{"name": "__proto__", "type": "str"}]}
    body = {"name": "flood", "data": base64.b64encode(archive.getvalue()).decode(), "spec": spec}
    program = api(server, "POST", "/programs", json=body).json()["id"]
    page.goto(f"{server.url}/ui/#/programs/{program}")
    page.fill("[name='param:__proto__']", "kept")
    page.click("#submit-job button[type=submit]")
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    expect(page.locator("#job-header [data-status]")).to_have_text("Completed")
    expect(page.locator("#log")).to_contain_text("[proto] kept red")  # no colour codes
    expect(page.locator("#interims")).to_have_attribute("data-stream", "ended")
    # The 151 frames: the page keeps the latest 100 (the last is the result, shown below).
    expect(page.locator("#interims-hidden")).to_contain_text("51 earlier interim results")
    expect(page.locator("#interims .interim")).to_have_count(99)
    expect(page.locator("#interims .interim").last).to_contain_text('"i": 149')
    expect(page.locator("#result pre.json")).to_contain_text("[[[[[[[[")
    watched.shot("job-flood-deep")


def test_the_jobs_list_is_not_redrawn_while_nothing_changes(page: Page, server: DevServer):
    # Only this job is listed, so no other test's job can change the list meanwhile.
    body = {"programId": "hello-quantum", "params": {"greeting": "still"}, "tags": ["still"]}
    job = api(server, "POST", "/jobs", json=body).json()["id"]
    page.goto(f"{server.url}/ui/#/jobs?tags=still")
    row = page.locator(f"#jobs tr[data-job='{job}']")
    expect(row.locator("[data-status]")).to_have_text("Completed")
    row.evaluate("tr => { tr.dataset.marked = 'yes'; getSelection().selectAllChildren(tr); }")
    for _ in range(2):  # two polls of the list (every 2 s) that found it unchanged
        with page.expect_request(lambda request: "/jobs?limit=50" in request.url):
            pass
    expect(row).to_have_attribute("data-marked", "yes")
    assert job[:8] in page.evaluate("() => String(getSelection())")
