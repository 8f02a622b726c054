"""No plaintext API key at rest or in output; key rotation with two keys, and the old key missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from gatehouse_core.crypto import SecretBox, generate_key
from gatehouse_core.db import make_engine
from gatehouse_core.registry import Registry
from tests.core.cli import run

KEY_A = "sk-or-v1-a7f3c9e1b5d24680a7f3c9e1b5d24680a7f3c9e1b5d24680a7f3a1b2"
KEY_B = "sk-or-v1-0d9e8f7a6b5c4d3e0d9e8f7a6b5c4d3e0d9e8f7a6b5c4d3e0d9ec3d4"
# What would betray a key besides the whole string: its distinctive body, without the ends.
FRAGMENTS = (KEY_A, KEY_B, KEY_A[10:-6], KEY_B[10:-6])


def ok(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None) -> str:
    code, out, err = run(capsys, *argv, stdin=stdin)
    assert code == 0, err
    return out + err


def add(capsys: pytest.CaptureFixture[str], name: str, key: str) -> str:
    argv = ["providers", "add", name, "--base-url", "https://openrouter.ai/api/v1"]
    return ok(capsys, *argv, "--model", "openai/gpt-4o-mini", "--api-key-stdin", stdin=key)


def assert_no_plaintext(blob: str | bytes, where: str) -> None:
    for fragment in FRAGMENTS:
        needle = fragment.encode() if isinstance(blob, bytes) else fragment
        assert needle not in blob, f"plaintext API key found in {where}"


def database_dump(url: str) -> str:
    """Every row of every table, as text (the PostgreSQL side of 'scan the database')."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            assert {"provider_secrets", "settings_audit", "system_settings"} <= set(tables)
            return "\n".join(
                repr(conn.execute(text(f'SELECT * FROM "{table}"')).all()) for table in tables
            )
    finally:
        engine.dispose()


def sqlite_bytes(tmp_path: Path) -> bytes:
    """The database file and its write-ahead log, where fresh pages live first."""
    files = sorted(tmp_path.glob("gatehouse.db*"))
    assert files
    return b"".join(f.read_bytes() for f in files)


def test_no_plaintext_key_in_database_audit_or_cli_output(
    capsys: pytest.CaptureFixture[str], db_url: str, tmp_path: Path
) -> None:
    outputs = [
        add(capsys, "primary", KEY_A),
        add(capsys, "backup", KEY_A),
        ok(capsys, "providers", "set-key", "backup", "--api-key-stdin", stdin=KEY_B),
        ok(capsys, "providers", "update", "primary", "--rpm", "60", "--api-key-stdin", stdin=KEY_B),
        ok(capsys, "providers", "disable", "backup"),
        ok(capsys, "providers", "enable", "backup"),
        ok(capsys, "providers", "list"),
        ok(capsys, "providers", "list", "--json"),
        ok(capsys, "providers", "show", "primary"),
        ok(capsys, "providers", "show", "primary", "--json"),
        ok(capsys, "secrets", "rotate"),
        ok(capsys, "providers", "remove", "backup"),
        ok(capsys, "history"),
        ok(capsys, "history", "--json"),
    ]
    for number, output in enumerate(outputs):
        assert_no_plaintext(output, f"CLI output #{number}")
    assert "sk-or-…c3d4" in outputs[7]  # list --json
    history = json.loads(outputs[-1])
    assert {"sk-or-…a1b2", "sk-or-…c3d4"} <= {
        side.get("api_key") for e in history for side in (e["before"] or {}, e["after"] or {})
    }
    assert_no_plaintext(json.dumps(history), "settings_audit")

    assert_no_plaintext(database_dump(db_url), "database rows")
    if db_url.startswith("sqlite"):
        assert_no_plaintext(sqlite_bytes(tmp_path), "the SQLite file")

    engine = make_engine(db_url)
    try:  # the key is really there, encrypted
        assert Registry(engine, SecretBox.from_env(), env={}).api_key("primary") == KEY_B
    finally:
        engine.dispose()


def test_rotation_with_two_keys(
    capsys: pytest.CaptureFixture[str], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = generate_key(), generate_key()
    monkeypatch.setenv("GATEHOUSE_SECRETS_KEY", old)
    add(capsys, "primary", KEY_A)
    add(capsys, "backup", KEY_B)

    monkeypatch.setenv("GATEHOUSE_SECRETS_KEY", f"{new},{old}")
    out = ok(capsys, "secrets", "rotate")
    assert "Re-encrypted 2 stored key(s) under the first key (2 were under an older key)" in out

    monkeypatch.setenv("GATEHOUSE_SECRETS_KEY", new)
    code, out, err = run(capsys, "providers", "list", "--json")
    assert code == 0 and err == ""
    assert [(p["name"], p["key_status"]) for p in json.loads(out)] == [
        ("primary", "ok"),
        ("backup", "ok"),
    ]
    engine = make_engine(db_url)
    try:
        registry = Registry(engine, SecretBox([new]), env={})
        assert (registry.api_key("primary"), registry.api_key("backup")) == (KEY_A, KEY_B)
    finally:
        engine.dispose()
    assert "Re-encrypted 2 stored key(s) under the first key (0 were under an older key)" in ok(
        capsys, "secrets", "rotate"
    )


def test_old_key_missing_is_a_clear_error_and_list_still_works(
    capsys: pytest.CaptureFixture[str], db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = generate_key(), generate_key()
    monkeypatch.setenv("GATEHOUSE_SECRETS_KEY", old)
    add(capsys, "primary", KEY_A)
    add(capsys, "backup", KEY_B)
    history_before = ok(capsys, "history", "--json")

    monkeypatch.setenv("GATEHOUSE_SECRETS_KEY", new)
    code, out, err = run(capsys, "secrets", "rotate")
    assert code == 1 and out == "" and "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith("error: Cannot decrypt the stored API key of backup, primary")
    assert "GATEHOUSE_SECRETS_KEY=<new>,<old>" in line and "gatehouse secrets rotate" in line

    code, out, err = run(capsys, "providers", "list")
    assert code == 0
    assert "warning: Cannot decrypt the stored API key of primary, backup" in err
    assert "sk-or-…a1b2 (cannot decrypt)" in out
    code, out, _ = run(capsys, "providers", "list", "--json")
    assert {p["key_status"] for p in json.loads(out)} == {"undecryptable"}
    assert ok(capsys, "history", "--json") == history_before  # the failed rotation left nothing

    monkeypatch.setenv("GATEHOUSE_SECRETS_KEY", f"{new},{old}")  # the fix the message gives
    assert "(2 were under an older key)" in ok(capsys, "secrets", "rotate")
