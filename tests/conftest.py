"""Shared fixtures: every test gets its own temp folder, SQLite database and secrets key.

PostgreSQL and Redis tests use real servers (GATEHOUSE_TEST_POSTGRES_URL, GATEHOUSE_TEST_REDIS_URL,
defaults on 127.0.0.1). Without a server they skip with the reason, unless
GATEHOUSE_TEST_REQUIRE_SERVICES=1 (CI sets it), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_ADMIN_URL = os.environ.get(
    "GATEHOUSE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("GATEHOUSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("GATEHOUSE_TEST_REQUIRE_SERVICES", "") not in ("", "0")

# Property tests without their own example count run this profile: "ci" (the default) keeps
# the suite's time modest, GATEHOUSE_HYPOTHESIS_PROFILE=thorough searches ten times longer.
settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile("thorough", parent=settings.get_profile("ci"), max_examples=250)
settings.load_profile(os.environ.get("GATEHOUSE_HYPOTHESIS_PROFILE", "ci"))

_CLEARED = (
    "GATEHOUSE_DATABASE_URL",
    "GATEHOUSE_SECRETS_KEY",
    "GATEHOUSE_REDIS_URL",
    "GATEHOUSE_LOG_LEVEL",
    "GATEHOUSE_HOME",
    "GATEHOUSE_TIMEZONE",
    "CODEGEN_PROVIDER",
    "CODEGEN_API_KEY",
    "CODEGEN_URL",
    "CODEGEN_MODEL",
)


def unavailable(reason: str) -> None:
    """Skip for a missing service, or fail when the run requires services (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (GATEHOUSE_TEST_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment per test: temp cwd, temp SQLite database, a fresh secrets key."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GATEHOUSE_HOME", str(tmp_path / ".gatehouse"))
    monkeypatch.setenv("GATEHOUSE_DATABASE_URL", f"sqlite:///{tmp_path / 'gatehouse.db'}")
    monkeypatch.setenv("GATEHOUSE_SECRETS_KEY", Fernet.generate_key().decode())
    return tmp_path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gatehouse.db'}"


@pytest.fixture(scope="session")
def _postgres_admin() -> Iterator[str]:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means "no server here"
        reason = str(exc).splitlines()[0]
        yield f"unavailable: PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {reason}"
        return
    yield POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(_postgres_admin: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database, dropped after the test."""
    if _postgres_admin.startswith("unavailable: "):
        unavailable(_postgres_admin.removeprefix("unavailable: "))
    name = f"gatehouse_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(_postgres_admin, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(_postgres_admin).set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("GATEHOUSE_DATABASE_URL", url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """Run the test on SQLite and on PostgreSQL; sets GATEHOUSE_DATABASE_URL accordingly."""
    if request.param == "sqlite":
        return sqlite_url
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def redis_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The test Redis server; keys the test writes carry a unique prefix and are deleted after."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        client.close()
        unavailable(f"Redis not reachable at {REDIS_URL}: {exc}")
    yield REDIS_URL
    client.close()
