"""Engines, sessions and migrations: the one place that knows how to reach the database."""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from . import settings
from .errors import DatabaseUnavailable

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_migrated: set[str] = set()
_migrate_lock = threading.Lock()
_PG_MIGRATION_LOCK = 7_163_011  # advisory lock id: concurrent first starts migrate one at a time
_PG_WRITE_LOCK = 7_163_012  # advisory lock id of write_lock transactions (registry changes)


def describe_url(url: str) -> str:
    """The URL with its password hidden, for messages and the console's sidebar.

    An unparseable URL is never repeated: its password could be anywhere in it.
    """
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return "<unparseable URL>"


_URL_EXAMPLES = "e.g. sqlite:///gatehouse.db or postgresql+psycopg://user:pw@host:5432/db"


def make_engine(url: str | None = None, *, migrate: bool = True) -> Engine:
    """An engine for `url` (default: GATEHOUSE_DATABASE_URL), migrated to the newest schema."""
    url = url or settings.get("GATEHOUSE_DATABASE_URL") or "sqlite:///gatehouse.db"
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - make_url defers a non-numeric port's ValueError to here
    except ArgumentError:
        raise DatabaseUnavailable(
            f"GATEHOUSE_DATABASE_URL is not a database URL (it is not repeated here: it may "
            f"hold a password); use {_URL_EXAMPLES}"
        ) from None
    except ValueError:
        raise DatabaseUnavailable(
            "GATEHOUSE_DATABASE_URL has a port that is not a number; use the form "
            "postgresql+psycopg://user:pw@host:5432/db"
        ) from None
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 5}
    try:
        engine = create_engine(parsed, **kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseUnavailable(
            f"Cannot use database {describe_url(url)}: {reason}. Set GATEHOUSE_DATABASE_URL to "
            f"{_URL_EXAMPLES}"
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if migrate:
        ensure_migrated(engine)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the console read while a worker writes; busy_timeout waits out short locks.
    # busy_timeout first: switching to WAL needs a lock that another starting process may hold.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=5000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def unreachable(engine: Engine, exc: BaseException) -> DatabaseUnavailable:
    """A DatabaseUnavailable naming the database (password hidden) and the fix."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return DatabaseUnavailable(
        f"Cannot reach the database {describe_url(str(engine.url))}: {reason}. "
        "Check GATEHOUSE_DATABASE_URL and that the server is running."
    )


def refused(engine: Engine, exc: BaseException) -> DatabaseUnavailable:
    """A DatabaseUnavailable for a change the database rejected (constraint, trigger, size)."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return DatabaseUnavailable(
        f"The database {describe_url(str(engine.url))} refused the change: {reason}. "
        "Nothing was saved."
    )


def ensure_migrated(engine: Engine) -> None:
    """Upgrade the schema to head once per process and URL (cheap after the first call)."""
    key = str(engine.url)
    if key in _migrated:
        return
    with _migrate_lock:
        if key not in _migrated:
            run_migrations(engine)
            _migrated.add(key)


def run_migrations(engine: Engine, revision: str = "head") -> list[str]:
    """Apply migrations up to `revision`; returns the revisions that were applied."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with _sqlite_migration_lock(engine), engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_MIGRATION_LOCK})
            before = MigrationContext.configure(conn).get_current_heads()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            after = MigrationContext.configure(conn).get_current_heads()
    except OperationalError as exc:
        raise unreachable(engine, exc) from None
    return [] if set(before) == set(after) else list(after)


@contextlib.contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    """Processes starting together on one SQLite file migrate one at a time.

    PostgreSQL has its advisory lock; SQLite has none, so a lock file beside the database
    (`<db>.migrate.lock`, flock: released by the kernel even if the process dies) does it.
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(f"{database}.migrate.lock", "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine, *, write_lock: bool = False) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back everything on any error.

    `write_lock=True` is for read-modify-write: on SQLite the transaction starts with
    `BEGIN IMMEDIATE`, so a second writer waits (busy_timeout) before it reads instead of
    overwriting what the first one wrote; on PostgreSQL it takes a transaction-scoped advisory
    lock, which also covers the row that does not exist yet (two first adds at once).
    """
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            if write_lock and engine.dialect.name == "sqlite":
                # pysqlite starts its own transaction only before DML; issuing BEGIN first
                # makes the reads that follow part of one write-locked transaction.
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            elif write_lock and engine.dialect.name == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_WRITE_LOCK})
            yield session
    except OperationalError as exc:
        raise unreachable(engine, exc) from None
    except DBAPIError as exc:
        # One clear line for the operator instead of SQLAlchemy's multi-line statement dump.
        raise refused(engine, exc) from None
