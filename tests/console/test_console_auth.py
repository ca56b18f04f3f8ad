"""The console and `/docs` with keys on (`qrt dev --auth`): the console asks for a key before
anything else, a user signed in sees only their instances' jobs, the job streams reach the
browser with the key as a websocket subprotocol, and /docs' Authorize button takes the key."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.dev import DevServer

from .conftest import Watched, start_dev

ALICE, BOB = "acme/research/qubits", "other/group/project"


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, browser: Browser
) -> Iterator[tuple[DevServer, dict[str, str]]]:
    """A `qrt dev --auth` where alice is a member of ALICE and bob of BOB; their keys (made
    through the admin API with the bootstrap admin's key)."""
    root = tmp_path_factory.mktemp("console-auth")
    admin_key = f"qrt_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"
    server = start_dev(root, ["--auth"], {"QRT_BOOTSTRAP_ADMIN_KEY": admin_key})
    try:
        with httpx.Client(base_url=server.url, timeout=60,
                          headers={"Authorization": f"Bearer {admin_key}"}) as http:  # fmt: skip
            keys = {}
            for user, instance in (("alice", ALICE), ("bob", BOB)):
                assert http.post("/admin/users", json={"name": user}).status_code == 201
                assert http.post("/admin/instances", json={"name": instance}).status_code == 201
                member = http.put(
                    f"/admin/instances/{instance}/members/{user}", json={"role": "member"}
                )
                assert member.status_code == 200, member.text
                made = http.post(f"/admin/users/{user}/keys", json={"label": "console test"})
                assert made.status_code == 201, made.text
                keys[user] = made.json()["key"]
        yield server, keys
    finally:
        server.kill()


def submit(server: DevServer, key: str, instance: str, greeting: str) -> str:
    hub, group, project = instance.split("/")
    answer = httpx.post(f"{server.url}/jobs", timeout=60, headers={"Authorization": f"Bearer {key}"},
                        json={"programId": "hello-quantum", "params": {"greeting": greeting},
                              "hub": hub, "group": group, "project": project})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def test_signing_in_with_a_key_shows_only_that_users_jobs_and_streams_them(
    page: Page, watched: Watched, secured: tuple[DevServer, dict[str, str]]
):
    server, keys = secured
    bobs = submit(server, keys["bob"], BOB, "bob was here")
    alices = submit(server, keys["alice"], ALICE, "alice was here")
    page.goto(f"{server.url}/ui/#/jobs")
    page.wait_for_url(re.compile(r"#/login\?"))
    watched.shot("login")
    page.fill("#api-key", keys["alice"])
    page.click("#login button[type=submit]")
    page.wait_for_url(re.compile(r"#/jobs$"))
    expect(page.locator(f"#jobs tr[data-job='{alices}']")).to_have_count(1)
    expect(page.locator("#job-count")).to_have_text("1 job")
    assert page.locator(f"#jobs tr[data-job='{bobs}']").count() == 0
    watched.shot("jobs-signed-in")

    # The job's page: its log and interim results come over websockets carrying the key.
    page.locator(f"#jobs tr[data-job='{alices}'] a").click()
    expect(page.locator("#job-header [data-status]")).to_have_text("Completed")
    expect(page.locator("#log")).to_contain_text("q_0")
    expect(page.locator("#result svg.histogram rect.bar").first).to_be_visible()
    expect(page.locator("#interims[data-stream=ended]")).to_have_count(1)
    expect(page.locator("#interims .interim pre.json")).to_have_text('"alice was here"')

    # Another instance's job is not found, as the API answers.
    page.goto(f"{server.url}/ui/#/jobs/{bobs}")
    expect(page.locator("h1")).to_have_text("Job not found")
    watched.errors[:] = [e for e in watched.errors if "404 (Not Found)" not in e]

    page.click("#sign-out")
    page.wait_for_url(re.compile(r"#/login$"))
    page.goto(f"{server.url}/ui/#/programs")
    page.wait_for_url(re.compile(r"#/login\?"))


def test_a_wrong_key_is_refused_on_the_login_page(
    page: Page, watched: Watched, secured: tuple[DevServer, dict[str, str]]
):
    server, keys = secured
    # A link cannot put words on the login page (only the API's own refusal shows there).
    page.goto(f"{server.url}/ui/#/login?why=Your+key+expired.+Mail+it+to+help%40evil.example")
    expect(page.locator("#api-key")).to_be_visible()
    expect(page.locator("#login-error")).to_have_text("")
    page.goto(f"{server.url}/ui/#/login")
    page.fill("#api-key", keys["alice"][:-4] + "AAAA")
    page.click("#login button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("Not accepted")
    expect(page.locator("#login-error")).to_contain_text("wrong")
    assert page.url.endswith("#/login")
    # The browser itself reports the refused request; nothing else may be logged.
    assert all("401 (Unauthorized)" in error for error in watched.errors), watched.errors
    watched.errors.clear()


def test_the_docs_authorize_button_takes_a_key_for_try_it_out(
    page: Page, watched: Watched, secured: tuple[DevServer, dict[str, str]]
):
    server, keys = secured
    page.goto(f"{server.url}/docs")
    page.click("button.authorize")
    page.locator(".auth-container input").fill(keys["alice"])
    page.locator(".auth-container button.authorize").click()
    page.locator(".auth-btn-wrapper button.btn-done").click()
    listing = page.locator("#operations-jobs-list_jobs")
    listing.locator(".opblock-summary").click()
    listing.locator("button.try-out__btn").click()
    listing.locator("button.execute").click()
    expect(listing.locator(".live-responses-table tbody .response-col_status")).to_have_text("200")
    expect(listing.locator(".live-responses-table .microlight").first).to_contain_text('"count"')
    watched.shot("docs-authorized")
    # The key lives in the page only: nothing keeps it past the tab (no localStorage).
    kept = page.evaluate(
        "() => JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage})"
    )
    assert keys["alice"] not in kept
