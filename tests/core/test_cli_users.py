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


# ---- roles, unlock and console sessions -----------------------------------------------------


def test_sessions_lists_a_users_live_sessions_as_json(capsys, monkeypatch, store) -> None:
    from gatehouse_core.sessions import SessionStore

    store.create("alice", PASSWORD, "admin", actor="t")
    sessions = SessionStore(store.engine)
    sessions.create("alice", "admin", user_agent="Firefox", client_address="10.0.0.7")
    code, out, _ = run(["users", "sessions", "alice", "--json"], capsys, monkeypatch)
    assert code == 0
    listed = json.loads(out)
    assert [(s["username"], s["via"], s["user_agent"]) for s in listed] == [
        ("alice", "password", "Firefox")
    ]
    assert set(listed[0]) == {
        "id",
        "username",
        "role",
        "via",
        "created_at",
        "last_seen_at",
        "expires_at",
        "user_agent",
        "client_address",
    }
    code, out, _ = run(["users", "sessions", "alice"], capsys, monkeypatch)
    assert "10.0.0.7" in out


def test_sign_out_ends_every_session_of_the_user(capsys, monkeypatch, store) -> None:
    from gatehouse_core.sessions import SessionStore

    store.create("alice", PASSWORD, "admin", actor="t")
    sessions = SessionStore(store.engine)
    for _ in range(2):
        sessions.create("alice", "admin")
    code, out, _ = run(["users", "sign-out", "alice"], capsys, monkeypatch)
    assert (code, out.strip()) == (0, "Signed alice out everywhere (2 sessions ended)")
    assert sessions.list_for("alice") == []
    code, out, _ = run(["users", "sessions", "alice"], capsys, monkeypatch)
    assert out.strip() == "alice is not signed in anywhere."


def test_sessions_of_an_unknown_user_is_a_clear_error(capsys, monkeypatch) -> None:
    code, _, err = run(["users", "sign-out", "ghost"], capsys, monkeypatch)
    assert code != 0 and "No user named 'ghost'" in err and "Traceback" not in err


def test_set_role_refuses_to_demote_the_last_admin(capsys, monkeypatch, store) -> None:
    store.create("root", PASSWORD, "admin", actor="t")
    code, _, err = run(["users", "set-role", "root", "viewer"], capsys, monkeypatch)
    assert code != 0 and "last enabled admin" in err
    store.create("bob", PASSWORD, "viewer", actor="t")
    code, out, _ = run(["users", "set-role", "bob", "operator"], capsys, monkeypatch)
    assert (code, out.strip()) == (0, "bob is now operator")


def test_unlock_lifts_the_lockout(capsys, monkeypatch, store) -> None:
    store.create("bob", PASSWORD, "viewer", actor="t")
    for _ in range(5):
        with pytest.raises(AuthError):
            store.authenticate("bob", "wrong guess")
    code, out, _ = run(["users", "unlock", "bob"], capsys, monkeypatch)
    assert (code, out.strip()) == (0, "Unlocked bob")
    assert store.authenticate("bob", PASSWORD).username == "bob"
