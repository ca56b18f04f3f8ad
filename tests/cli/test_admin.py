"""`qrt admin`: accounts managed against the store directly, errors as one line and an exit
code (never a traceback)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from qrt_cli.main import main
from qrt_common.accounts import key_id_of, key_matches, load_pepper
from qrt_common.store.sqlite import SQLiteStore


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("QRT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("QRT_DATA_DIR", str(tmp_path / "data"))
    yield


def admin(capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> tuple[str, str]:
    """Run `qrt admin argv`, which must exit with `code`; its stdout and stderr."""
    assert main(["admin", *argv]) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return out, err


def test_bootstrapping_the_first_admin_and_their_key(capsys, tmp_path: Path):
    out, _ = admin(capsys, "users", "add", "alice", "--admin")
    assert out == "added user alice (platform admin)\n"
    out, err = admin(capsys, "keys", "create", "alice", "--label", "laptop")
    key = out.strip()
    key_id = key_id_of(key)
    assert key_id is not None and key_id in err and "shown only now" in err
    out, _ = admin(capsys, "keys", "list")
    assert key_id in out and "alice" in out and "active" in out and "laptop" in out
    assert key not in out
    db = tmp_path / "data" / "qrt.db"
    pepper = load_pepper("", f"sqlite:///{db}")
    assert (tmp_path / "data" / "key-pepper").stat().st_mode & 0o077 == 0

    async def stored() -> None:
        store = SQLiteStore(db)
        await store.open()
        try:
            record = await store.get_key(key_id)
            assert record is not None and key_matches(record, pepper, key)
            assert not key_matches(record, pepper, key[:-1] + ("A" if key[-1] != "A" else "B"))
        finally:
            await store.close()

    asyncio.run(stored())
    # Never the key itself in the store's files, only its HMAC.
    for path in (tmp_path / "data").iterdir():
        assert key.split("_")[-1].encode() not in path.read_bytes()
    admin(capsys, "keys", "revoke", key_id)
    out, _ = admin(capsys, "keys", "list", "--user", "alice")
    assert "revoked" in out


def test_instances_members_and_roles(capsys):
    admin(capsys, "users", "add", "bob")
    admin(capsys, "instances", "add", "hub/group/project")
    out, _ = admin(capsys, "instances", "grant", "hub/group/project", "bob", "reader")
    assert out == "bob is reader of hub/group/project\n"
    admin(capsys, "instances", "grant", "hub/group/project", "bob", "member")
    out, _ = admin(capsys, "instances", "members", "hub/group/project")
    assert out == "bob\tmember\n"
    out, _ = admin(capsys, "instances", "list")
    assert out.startswith("hub/group/project\t")
    admin(capsys, "instances", "remove-member", "hub/group/project", "bob")
    out, _ = admin(capsys, "instances", "members", "hub/group/project")
    assert out == ""
    admin(capsys, "users", "add", "root", "--admin")
    admin(capsys, "users", "set-admin", "bob", "yes")
    out, _ = admin(capsys, "users", "list")
    assert out.startswith("bob\tadmin\t")
    admin(capsys, "instances", "remove", "hub/group/project")
    admin(capsys, "users", "remove", "bob")
    assert admin(capsys, "users", "list")[0].startswith("root\tadmin\t")


def test_an_instances_own_caps(capsys):
    admin(capsys, "instances", "add", "h/g/p")
    out, _ = admin(capsys, "instances", "limits", "h/g/p")
    assert out == "h/g/p: max active jobs none, submits per minute none\n"
    out, _ = admin(capsys, "instances", "limits", "h/g/p", "--max-active-jobs", "20")
    assert out == "h/g/p: max active jobs 20, submits per minute none\n"
    out, _ = admin(capsys, "instances", "limits", "h/g/p", "--submits-per-minute", "60")
    assert out == "h/g/p: max active jobs 20, submits per minute 60\n"  # the other one stays
    out, _ = admin(capsys, "instances", "list")
    assert out.endswith("\tmax active jobs 20, submits per minute 60\n")
    out, _ = admin(capsys, "instances", "limits", "h/g/p", "--max-active-jobs", "none")
    assert out == "h/g/p: max active jobs none, submits per minute 60\n"
    with pytest.raises(SystemExit):
        main(["admin", "instances", "limits", "h/g/p", "--max-active-jobs", "0"])
    assert "a cap must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["keys", "create", "nobody"], "no user 'nobody'"),
        (["keys", "revoke", "0123456789abcdef"], "no key '0123456789abcdef'"),
        (["keys", "revoke", "../x"], "no key '../x'"),
        (["keys", "create", "alice", "--expires-in", "0"], "--expires-in: Input should be greater"),
        # The API's bounds (KeyRequest), not an OverflowError traceback or a 5000-character label
        (
            ["keys", "create", "alice", "--expires-in", "99999999"],
            "--expires-in: Input should be less than or equal to 36500 (days)",
        ),
        (["keys", "create", "alice", "--expires-in", "nan"], "--expires-in: "),
        (
            ["keys", "create", "alice", "--label", "x" * 5000],
            "--label: String should have at most 200 characters",
        ),
        (
            ["keys", "create", "alice", "--label", "a\u202eb"],
            "--label: must not contain control or formatting characters (U+202E at position 1)",
        ),
        (["users", "add", "alice"], "user 'alice' exists already"),
        (["users", "add", "a b"], "user name 'a b' must be"),
        (["users", "remove", "nobody"], "no user 'nobody'"),
        (["instances", "add", "just-a-hub"], "must be hub/group/project"),
        (["instances", "add", "h/g/"], "must be hub/group/project"),
        (["instances", "grant", "h/g/p", "alice", "owner"], "unknown role 'owner'"),
        (["instances", "grant", "x/y/z", "alice", "reader"], "no instance 'x/y/z'"),
        (["instances", "grant", "h/g/p", "nobody", "reader"], "no user 'nobody'"),
        (["instances", "members", "x/y/z"], "no instance 'x/y/z'"),
        (["instances", "remove-member", "h/g/p", "alice"], "'alice' is no member of 'h/g/p'"),
        (["instances", "limits", "x/y/z"], "no instance 'x/y/z'"),
    ],
)
def test_mistakes_are_one_line_and_exit_1(capsys, argv: list[str], message: str):
    admin(capsys, "users", "add", "alice")
    admin(capsys, "instances", "add", "h/g/p")
    _, err = admin(capsys, *argv, code=1)
    assert err.startswith("qrt admin: ") and message in err and err.count("\n") == 1


def test_the_last_platform_admin_is_neither_removed_nor_demoted(capsys):
    admin(capsys, "users", "add", "alice", "--admin")
    for argv in (["users", "remove", "alice"], ["users", "set-admin", "alice", "no"]):
        _, err = admin(capsys, *argv, code=1)
        assert err == (
            "qrt admin: cannot " + ("remove" if "remove" in argv else "demote") + " 'alice': "
            "they are the last platform admin; make another user an admin first\n"
        )
    assert admin(capsys, "users", "list")[0].startswith("alice\tadmin\t")
    admin(capsys, "users", "add", "bob", "--admin")
    admin(capsys, "users", "set-admin", "alice", "no")
    admin(capsys, "users", "remove", "alice")
    admin(capsys, "users", "remove", "bob", code=1)


def test_mongodb_without_a_pepper_is_refused_with_the_reason(capsys, monkeypatch):
    monkeypatch.setenv("QRT_STORE_URL", "mongodb://127.0.0.1:1/qrt")
    _, err = admin(capsys, "users", "list", code=1)
    assert "QRT_KEY_PEPPER must be set" in err
