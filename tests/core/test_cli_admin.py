"""`gatehouse migrate`, `gatehouse secrets …`, `gatehouse history` through the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime

import pytest
from cryptography.fernet import Fernet

from gatehouse_core.cli import main
from tests.core.cli import ok, run

KEY = "sk-or-v1-0123456789abcdef0123456789abcdef0123456789abcdefa1b2"
HEAD = "0009_workflow_rollup"
HISTORY_KEYS = {"id", "created_at", "actor", "action", "target", "before", "after"}


@pytest.fixture(autouse=True)
def actor(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LOGNAME", "alice")  # getpass.getuser() reads it first
    return "alice"


def add(capsys: pytest.CaptureFixture[str], name: str) -> None:
    argv = ["providers", "add", name, "--base-url", "https://openrouter.ai/api/v1"]
    ok(capsys, *argv, "--model", "openai/gpt-4o-mini", "--api-key-stdin", stdin=KEY)


# ---- migrate -------------------------------------------------------------------------------


def test_migrate_creates_the_schema_then_is_idempotent(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    first = ok(capsys, "migrate")
    assert f"upgraded at revision {HEAD}" in first
    second = ok(capsys, "migrate")
    assert f"already up to date at revision {HEAD}" in second
    add(capsys, "a")  # the schema is usable
    assert "already up to date" in ok(capsys, "migrate")


def test_migrate_hides_the_database_password(
    capsys: pytest.CaptureFixture[str], postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_password = postgres_url.replace("postgres@", "postgres:hunter2pw@", 1)
    monkeypatch.setenv("GATEHOUSE_DATABASE_URL", with_password)
    out = ok(capsys, "migrate")  # trust auth ignores the password
    assert "hunter2pw" not in out and "***" in out


def test_migrate_with_the_database_down_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEHOUSE_DATABASE_URL", "postgresql+psycopg://u:pw9876@127.0.0.1:1/gh")
    code, out, err = run(capsys, "migrate")
    assert code == 1 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("error: Cannot reach the database") and "pw9876" not in line


# ---- secrets -------------------------------------------------------------------------------


def test_generate_key_prints_a_new_fernet_key_each_time(capsys: pytest.CaptureFixture[str]) -> None:
    first = ok(capsys, "secrets", "generate-key").strip()
    second = ok(capsys, "secrets", "generate-key").strip()
    Fernet(first.encode())
    Fernet(second.encode())
    assert first != second


def test_rotate_with_nothing_stored_reports_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert "Re-encrypted 0 stored key(s)" in ok(capsys, "secrets", "rotate")


def test_rotate_reports_counts_and_is_in_history(capsys: pytest.CaptureFixture[str]) -> None:
    add(capsys, "a")
    add(capsys, "b")
    out = ok(capsys, "secrets", "rotate")
    assert "Re-encrypted 2 stored key(s) under the first key (0 were under an older key)" in out
    [entry] = json.loads(ok(capsys, "history", "--json", "--limit", "1"))
    assert (entry["action"], entry["actor"]) == ("secrets.rotate", "alice")
    assert entry["after"]["total"] == 2


# ---- history -------------------------------------------------------------------------------


def test_history_without_changes_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert "No changes recorded yet." in ok(capsys, "history")
    assert json.loads(ok(capsys, "history", "--json")) == []


def test_history_json_is_a_list_of_objects_with_the_documented_keys(
    capsys: pytest.CaptureFixture[str], db_url: str
) -> None:
    add(capsys, "a")
    ok(capsys, "providers", "disable", "a")
    entries = json.loads(ok(capsys, "history", "--json"))
    assert [e["action"] for e in entries] == ["provider.disable", "provider.create"]
    assert all(set(e) == HISTORY_KEYS for e in entries)
    assert all(e["actor"] == "alice" and e["target"] == "a" for e in entries)
    assert datetime.fromisoformat(entries[0]["created_at"]).utcoffset() is not None
    assert entries[1]["after"]["api_key"] == "sk-or-…a1b2"


def test_history_table_and_limit(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a", "b", "c"):
        add(capsys, name)
    lines = ok(capsys, "history", "--limit", "2").strip().splitlines()
    assert lines[0].split() == ["WHEN", "ACTOR", "ACTION", "TARGET"]
    assert [line.split()[-2:] for line in lines[1:]] == [
        ["provider.create", "c"],
        ["provider.create", "b"],
    ]


@pytest.mark.parametrize("limit", ["0", "-5", "many"])
def test_history_limit_must_be_a_positive_number(
    capsys: pytest.CaptureFixture[str], limit: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["history", "--limit", limit])
    assert caught.value.code == 2
    assert "--limit" in capsys.readouterr().err


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2
    assert "usage: gatehouse" in capsys.readouterr().err


# ---- python -m gatehouse_core --------------------------------------------------------------


def test_python_dash_m_runs_the_same_cli() -> None:
    env = {**os.environ, "LOGNAME": "carol"}
    migrated = subprocess.run(
        [sys.executable, "-m", "gatehouse_core", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert f"at revision {HEAD}" in migrated.stdout
    history = subprocess.run(
        [sys.executable, "-m", "gatehouse_core", "history", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert history.returncode == 0, history.stderr
    assert json.loads(history.stdout) == []
    usage = subprocess.run(
        [sys.executable, "-m", "gatehouse_core", "history", "--limit", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert usage.returncode == 2 and "Traceback" not in usage.stderr
