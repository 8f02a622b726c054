"""`gatehouse users …`: add, list, disable, enable, set-password (passwords only from stdin)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from gatehouse_core.auth import UserStore
from gatehouse_core.cli import main
from gatehouse_core.db import make_engine
from gatehouse_core.errors import AuthError

PASSWORD = "s3cret-passw0rd"


def run(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def store() -> UserStore:
    return UserStore(make_engine())


def test_add_reads_the_password_from_stdin(capsys, monkeypatch, store: UserStore) -> None:
    code, out, err = run(
        ["users", "add", "Alice", "--role", "admin"], capsys, monkeypatch, PASSWORD + "\n"
    )
    assert (code, out, err) == (0, "Added user alice (admin)\n", "")
    assert store.authenticate("alice", PASSWORD).role == "admin"


def test_password_is_never_an_argument(capsys, monkeypatch) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(
            ["users", "add", "alice", "--role", "admin", "--password", PASSWORD],
            capsys,
            monkeypatch,
        )
    assert exit_.value.code == 2


def test_short_password_is_refused_and_nothing_is_stored(capsys, monkeypatch, store) -> None:
    code, out, err = run(
        ["users", "add", "alice", "--role", "viewer"], capsys, monkeypatch, "short\n"
    )
    assert code == 1 and out == ""
    assert err == "error: password: the password must have at least 8 characters\n"
    assert not store.has_users()


def test_empty_stdin_says_how_to_give_the_password(capsys, monkeypatch, store) -> None:
    code, _, err = run(["users", "add", "alice", "--role", "viewer"], capsys, monkeypatch, "")
    assert code == 1 and "no password on standard input" in err
    assert not store.has_users()


def test_unknown_role_is_an_argument_error(capsys, monkeypatch) -> None:
    with pytest.raises(SystemExit):
        run(["users", "add", "alice", "--role", "root"], capsys, monkeypatch, PASSWORD)
    assert "invalid choice: 'root'" in capsys.readouterr().err


def test_list_shows_roles_and_status(capsys, monkeypatch, store) -> None:
    store.create("alice", PASSWORD, "admin", actor="t")
    store.create("bob", PASSWORD, "viewer", actor="t")
    store.set_disabled("bob", True, actor="t")
    code, out, _ = run(["users", "list"], capsys, monkeypatch)
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == [
        "USERNAME",
        "ROLE",
        "STATUS",
        "CREATED",
        "LAST",
        "SIGN-IN",
    ]
    assert lines[1].split()[:3] == ["alice", "admin", "active"]
    assert lines[2].split()[:3] == ["bob", "viewer", "disabled"]


def test_list_json_has_no_secret(capsys, monkeypatch, store) -> None:
    store.create("alice", PASSWORD, "operator", actor="t")
    code, out, _ = run(["users", "list", "--json"], capsys, monkeypatch)
    data = json.loads(out)
    assert code == 0 and [(u["username"], u["role"], u["disabled"]) for u in data] == [
        ("alice", "operator", False)
    ]
    assert set(data[0]) == {
        "username",
        "role",
        "disabled",
        "created_at",
        "last_login_at",
        "failed_attempts",
        "locked_until",
    }
    assert "scrypt" not in out


def test_disable_refuses_sign_in_and_enable_restores_it(capsys, monkeypatch, store) -> None:
    store.create("alice", PASSWORD, "admin", actor="t")
    store.create("bob", PASSWORD, "operator", actor="t")
    assert run(["users", "disable", "bob"], capsys, monkeypatch)[:2] == (0, "Disabled user bob\n")
    with pytest.raises(AuthError, match="disabled"):
        store.authenticate("bob", PASSWORD)
    assert run(["users", "enable", "bob"], capsys, monkeypatch)[0] == 0
    assert store.authenticate("bob", PASSWORD).username == "bob"


def test_disabling_the_last_admin_is_refused(capsys, monkeypatch, store) -> None:
    store.create("alice", PASSWORD, "admin", actor="t")
    code, _, err = run(["users", "disable", "alice"], capsys, monkeypatch)
    assert code == 1 and "last enabled admin" in err


def test_set_password_from_stdin(capsys, monkeypatch, store) -> None:
    store.create("alice", PASSWORD, "viewer", actor="t")
    code, out, _ = run(["users", "set-password", "alice"], capsys, monkeypatch, "new password 1\n")
    assert (code, out) == (0, "Set a new password for alice\n")
    assert store.authenticate("alice", "new password 1").username == "alice"


def test_set_password_of_unknown_user_fails_before_reading_stdin(capsys, monkeypatch) -> None:
    code, _, err = run(["users", "set-password", "ghost"], capsys, monkeypatch, "")
    assert code == 1 and "No user named 'ghost'" in err


def test_changes_are_in_the_history_without_the_password(capsys, monkeypatch) -> None:
    run(["users", "add", "alice", "--role", "admin"], capsys, monkeypatch, PASSWORD + "\n")
    run(["users", "set-password", "alice"], capsys, monkeypatch, "other password\n")
    code, out, _ = run(["history", "--json"], capsys, monkeypatch)
    entries = json.loads(out)
    assert [(e["action"], e["target"]) for e in entries] == [
        ("user.set_password", "alice"),
        ("user.create", "alice"),
    ]
    assert PASSWORD not in out and "other password" not in out and "scrypt" not in out


def test_users_group_runs_as_a_real_command() -> None:
    env = dict(os.environ)
    add = subprocess.run(
        [sys.executable, "-m", "gatehouse_core", "users", "add", "ops", "--role", "operator"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert add.returncode == 0, add.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "gatehouse_core", "users", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert [(u["username"], u["role"]) for u in json.loads(listed.stdout)] == [("ops", "operator")]
