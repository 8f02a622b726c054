"""Engines and migrations: the migrated schema is exactly schema.py, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from gatehouse_core.db import (
    current_revision,
    describe_url,
    make_engine,
    run_migrations,
    transaction,
)
from gatehouse_core.errors import DatabaseUnavailable
from gatehouse_core.schema import Base, LLMRequest, SystemSetting, utcnow

HEAD = "0009_workflow_rollup"  # the newest revision shipped in gatehouse_core/migrations/versions


def test_migrations_create_exactly_the_schema_metadata(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_migrate_is_idempotent(db_url: str) -> None:
    engine = make_engine(db_url, migrate=False)
    try:
        assert current_revision(engine) is None
        assert run_migrations(engine) == [HEAD]
        assert run_migrations(engine) == []
        assert current_revision(engine) == HEAD
    finally:
        engine.dispose()


def test_first_use_migrates_automatically(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        assert current_revision(engine) == HEAD
        with transaction(engine) as s:
            assert s.get(SystemSetting, "llm_providers") is None
    finally:
        engine.dispose()


def test_seed_query_works_on_postgres(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    now = utcnow()
    rows = [
        LLMRequest(
            request_id=rid,
            attempt=1,
            created_at=at,
            provider="openrouter-primary",
            model="anthropic/claude-sonnet-4",
            input_tokens=12,
            output_tokens=34,
            cost_usd=0.00123,
            status="ok",
        )
        for rid, at in (("recent", now - timedelta(hours=1)), ("old", now - timedelta(days=2)))
    ]
    try:
        with transaction(engine) as s:
            s.add_all(rows)
        with engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT created_at, provider, model, input_tokens, output_tokens, cost_usd "
                    "FROM llm_requests WHERE created_at > NOW() - INTERVAL '1 day'"
                )
            ).all()
    finally:
        engine.dispose()
    assert len(found) == 1
    created_at, provider, model, tokens_in, tokens_out, cost = found[0]
    assert (provider, model, tokens_in, tokens_out) == (
        "openrouter-primary",
        "anthropic/claude-sonnet-4",
        12,
        34,
    )
    assert float(cost) == pytest.approx(0.00123)
    assert created_at.utcoffset() is not None  # timestamptz, comparable with NOW()


def test_timestamps_come_back_timezone_aware_utc(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with transaction(engine) as s:
            s.add(SystemSetting(key="probe", value={"a": 1}))
        with transaction(engine) as s:
            updated = s.get(SystemSetting, "probe").updated_at
    finally:
        engine.dispose()
    assert updated.utcoffset() == timedelta(0)
    assert abs(utcnow() - updated) < timedelta(minutes=5)


def test_transaction_rolls_back_everything_on_error(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with pytest.raises(RuntimeError), transaction(engine) as s:
            s.add(SystemSetting(key="half", value={}))
            s.flush()
            raise RuntimeError("boom")
        with transaction(engine) as s:
            assert s.get(SystemSetting, "half") is None
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        engine.dispose()


@pytest.mark.parametrize("url", ["garbage", "://nothing", "http://example.com/db"])
def test_malformed_url_is_refused_with_an_example(url: str) -> None:
    with pytest.raises(DatabaseUnavailable) as caught:
        make_engine(url)
    message = str(caught.value)
    assert "GATEHOUSE_DATABASE_URL" in message or "Cannot" in message
    assert "sqlite:///" in message or "postgresql+psycopg://" in message
    assert "\n" not in message


def test_unknown_driver_is_a_clear_error() -> None:
    with pytest.raises(DatabaseUnavailable, match="Cannot use database"):
        make_engine("nosuchdb://host/db")


def test_unreachable_postgres_names_the_server_but_not_the_password() -> None:
    with pytest.raises(DatabaseUnavailable) as caught:
        make_engine("postgresql+psycopg://gate:s3cretpw@127.0.0.1:1/gatehouse")
    message = str(caught.value)
    assert "Cannot reach the database" in message and "127.0.0.1:1" in message
    assert "GATEHOUSE_DATABASE_URL" in message
    assert "s3cretpw" not in message and "\n" not in message


def test_describe_url_hides_the_password() -> None:
    shown = describe_url("postgresql+psycopg://gate:s3cretpw@db:5432/gatehouse")
    assert "s3cretpw" not in shown and "gate:***@db:5432/gatehouse" in shown
    assert describe_url("::::") == "<unparseable URL>"


# ---- bad URLs are never echoed with their password ---------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql+psycopg://gate:s3cretpw@db:port/gatehouse", "port that is not a number"),
        ("postgresql+psycopg://gate:s3cretpw@[::1/gatehouse", "port that is not a number"),
        ("s3cretpw not a url at all", "not a database URL"),
    ],
)
def test_unparseable_url_is_refused_without_its_password(url: str, says: str) -> None:
    with pytest.raises(DatabaseUnavailable) as caught:
        make_engine(url)
    assert says in str(caught.value) and "s3cretpw" not in str(caught.value)
    assert "s3cretpw" not in describe_url(url)


def test_cli_does_not_echo_an_unparseable_url(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "GATEHOUSE_DATABASE_URL": "postgresql+psycopg://u:s3cretpw@h:x/db"}
    done = subprocess.run(
        [sys.executable, "-m", "gatehouse_core", "providers", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "s3cretpw" not in done.stdout + done.stderr
    assert "port that is not a number" in done.stderr and "Traceback" not in done.stderr


# ---- six processes migrating one fresh SQLite file at once --------------------------------


def test_six_processes_starting_together_on_a_fresh_sqlite_file_all_succeed(
    tmp_path: Path,
) -> None:
    import os
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    code = (
        "import sys, time\n"
        "from gatehouse_core.db import make_engine, current_revision\n"
        "for _ in range(6000):  # bounded: at most 30 s\n"
        "    if __import__('os').path.exists(sys.argv[2]): break\n"
        "    time.sleep(0.005)\n"
        "engine = make_engine(sys.argv[1])\n"
        "print(current_revision(engine))\n"
    )
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(6)
    ]
    go.write_text("")  # release them together, after the interpreters have started
    results = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    assert [r[2] for r in results] == [0] * 6, [r[1][-400:] for r in results]
    assert len({r[0].strip() for r in results}) == 1
