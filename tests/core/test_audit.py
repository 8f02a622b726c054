"""The audit writer: batching, flush/close, stats, outages (through a real TCP proxy in front of
PostgreSQL), spill files and their idempotent import."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url

from gatehouse_core.audit import AuditWriter, import_spilled
from gatehouse_core.db import make_engine
from gatehouse_core.schema import LLMRequest
from tests.fakes.tcp_proxy import TcpProxy

T = LLMRequest.__table__
REPO_ROOT = Path(__file__).resolve().parents[2]


def row(n: int, **fields: Any) -> dict[str, Any]:
    base = {
        "request_id": f"req-{n}",
        "attempt": 1,
        "created_at": datetime.now(UTC),
        "provider": "primary",
        "model": "test/model",
        "status": "ok",
        "input_tokens": 10,
        "output_tokens": 5,
        "cost_usd": 0.25,
        "cost_source": "provider",
    }
    return {**base, **fields}


def keys(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(T.c.request_id, T.c.attempt)).all())


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(T)).scalar_one()


def audit_flush(database_url: str, home: Path | None = None) -> str:
    """stdout of `gatehouse audit flush` run as its own process (GATEHOUSE_HOME: `home`)."""
    env = {**os.environ, "GATEHOUSE_DATABASE_URL": database_url}
    if home is not None:
        env["GATEHOUSE_HOME"] = str(home)
    done = subprocess.run(
        [sys.executable, "-m", "gatehouse_core", "audit", "flush"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def spill_lines(spill_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for p in spill_dir.glob("*.jsonl") for line in p.read_text().split()]


@pytest.fixture
def spill_dir(tmp_path: Path) -> Path:
    return tmp_path / ".gatehouse" / "audit-spill"


@pytest.fixture
def writers(spill_dir: Path) -> Iterator[Callable[..., AuditWriter]]:
    built: list[AuditWriter] = []

    def build(engine: Engine, **kwargs: Any) -> AuditWriter:
        writer = AuditWriter(engine, spill_dir=spill_dir, **kwargs)
        built.append(writer)
        return writer

    yield build
    for writer in built:
        writer.close(timeout=2)


@pytest.fixture
def pg_proxy(postgres_url: str) -> Iterator[tuple[TcpProxy, str]]:
    """The test's PostgreSQL database (migrated) and a proxy URL to it; stop the proxy to cut it."""
    make_engine(postgres_url).dispose()
    target = make_url(postgres_url)
    with TcpProxy(target.port or 5432) as proxy:
        url = target.set(port=proxy.port).render_as_string(hide_password=False)
        yield proxy, url


def inserts_counter(engine: Engine) -> list[int]:
    """Rows per INSERT into llm_requests, recorded by a SQLAlchemy engine event."""
    sizes: list[int] = []

    @event.listens_for(engine, "before_execute")
    def _count(conn, clause, multiparams, params, options):  # noqa: ANN001
        if getattr(clause, "is_insert", False) and clause.table.name == "llm_requests":
            sizes.append(len(multiparams) if multiparams else 1)

    return sizes


# ---- writing -----------------------------------------------------------------------------


def test_submitted_rows_are_written_with_their_fields(db_url: str, writers) -> None:
    engine = make_engine(db_url)
    writer = writers(engine)
    created = datetime(2026, 3, 4, 5, 6, 7, 123000, tzinfo=UTC)
    writer.submit(row(1, created_at=created, workflow_id="wf", trace_id="tr", source="cli"))
    writer.submit(row(1, attempt=2, status="error", http_status=503, cost_usd=None))

    assert writer.flush() is True
    with engine.connect() as conn:
        stored = conn.execute(select(T).order_by(T.c.attempt)).mappings().all()
    assert [(r["request_id"], r["attempt"], r["status"]) for r in stored] == [
        ("req-1", 1, "ok"),
        ("req-1", 2, "error"),
    ]
    assert stored[0]["created_at"] == created
    assert (stored[0]["workflow_id"], stored[0]["source"], stored[0]["cost_usd"]) == (
        "wf",
        "cli",
        0.25,
    )
    assert (stored[1]["http_status"], stored[1]["cost_usd"]) == (503, None)


def test_rows_submitted_between_flushes_go_in_one_insert(sqlite_url: str, writers) -> None:
    engine = make_engine(sqlite_url)
    sizes = inserts_counter(engine)
    writer = writers(engine, flush_interval=60)
    for n in range(25):
        writer.submit(row(n))
    writer.flush()
    assert sizes == [25]


def test_no_insert_carries_more_than_batch_size_rows(db_url: str, writers) -> None:
    engine = make_engine(db_url)
    sizes = inserts_counter(engine)
    writer = writers(engine, batch_size=10)
    for n in range(35):
        writer.submit(row(n))
    writer.flush()
    assert sum(sizes) == 35
    assert max(sizes) <= 10 and len(sizes) >= 4


def test_close_writes_pending_rows(sqlite_url: str, spill_dir: Path) -> None:
    engine = make_engine(sqlite_url)
    writer = AuditWriter(engine, spill_dir=spill_dir, flush_interval=60)
    for n in range(7):
        writer.submit(row(n))
    mine = writer._thread  # other tests' writers may still run in this process
    writer.close()
    assert count(engine) == 7
    assert not mine.is_alive()
    assert mine not in threading.enumerate()


def test_rows_submitted_after_close_are_spilled_not_lost(sqlite_url: str, spill_dir: Path) -> None:
    engine = make_engine(sqlite_url)
    writer = AuditWriter(engine, spill_dir=spill_dir)
    writer.close()
    writer.submit(row(1))
    assert writer.stats.spilled == 1
    assert import_spilled(engine, spill_dir) == 1
    assert keys(engine) == [("req-1", 1)]


def test_stats_count_written_and_pending(sqlite_url: str, writers) -> None:
    writer = writers(make_engine(sqlite_url), flush_interval=60)
    for n in range(3):
        writer.submit(row(n))
    assert (writer.stats.pending, writer.stats.written) == (3, 0)
    writer.flush()
    stats = writer.stats
    assert (stats.pending, stats.written, stats.spilled, stats.last_error) == (0, 3, 0, None)


def test_error_message_is_scrubbed_and_truncated(sqlite_url: str, writers) -> None:
    engine = make_engine(sqlite_url)
    writer = writers(engine)
    key = "sk-or-v1-" + "a1b2" * 16
    writer.submit(row(1, status="error", error_message=f"upstream said {key} " + "x" * 2000))
    writer.flush()
    with engine.connect() as conn:
        message = conn.execute(select(T.c.error_message)).scalar_one()
    assert key not in message and "[REDACTED]" in message
    assert len(message) == 500


def test_row_without_required_fields_is_set_aside_and_others_written(
    sqlite_url: str, writers, spill_dir: Path
) -> None:
    engine = make_engine(sqlite_url)
    writer = writers(engine)
    writer.submit(row(1))
    writer.submit({"request_id": "broken", "attempt": 1})
    writer.submit(row(2))
    writer.flush()
    assert keys(engine) == [("req-1", 1), ("req-2", 1)]
    assert writer.stats.rejected == 1
    set_aside = (spill_dir / "rejected" / f"{os.getpid()}.jsonl").read_text()
    assert '"broken"' in set_aside


def test_row_the_database_refuses_does_not_block_its_batch(
    postgres_url: str, writers, spill_dir: Path
) -> None:
    engine = make_engine(postgres_url)
    writer = writers(engine)
    writer.submit(row(1))
    writer.submit(row(2, input_tokens=2**40))  # out of range for INTEGER: a DataError
    writer.submit(row(3))
    writer.flush()
    assert keys(engine) == [("req-1", 1), ("req-3", 1)]
    assert (writer.stats.written, writer.stats.rejected) == (2, 1)
    assert '"req-2"' in (spill_dir / "rejected" / f"{os.getpid()}.jsonl").read_text()


# ---- outages -----------------------------------------------------------------------------


def hang_writer(pg_proxy, writers, **kwargs: Any) -> tuple[AuditWriter, Engine]:
    """A writer whose thread is blocked connecting through a proxy that holds connections."""
    proxy, url = pg_proxy
    # A long connect timeout: if submit() waited for the database, the test would hang.
    engine = create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 60})
    writer = writers(engine, **kwargs)
    proxy.stop()
    proxy.start(hold=True)
    writer.submit(row(0))
    writer.flush(timeout=0)  # wake the thread: it now blocks in a held connection
    for _ in range(1000):
        if proxy.held:
            break
        threading.Event().wait(0.01)
    assert proxy.held == 1
    return writer, engine


@pytest.mark.timeout(60)
def test_submit_returns_while_the_writer_hangs_connecting(pg_proxy, writers) -> None:
    writer, engine = hang_writer(pg_proxy, writers)
    for n in range(1, 101):
        writer.submit(row(n))
    assert writer.stats.pending == 101 and pg_proxy[0].held == 1
    pg_proxy[0].release()
    assert writer.flush(timeout=30) is True
    assert count(engine) == 101


@pytest.mark.timeout(60)
def test_memory_stays_bounded_while_the_writer_hangs(pg_proxy, writers, spill_dir: Path) -> None:
    writer, engine = hang_writer(pg_proxy, writers, max_buffer=10)
    for n in range(1, 101):
        writer.submit(row(n))
    stats = writer.stats
    assert stats.pending <= 20 and stats.pending + stats.spilled == 101
    pg_proxy[0].release()
    assert writer.flush(timeout=30) is True
    assert keys(engine) == sorted((f"req-{n}", 1) for n in range(101))
    assert list(spill_dir.glob("*.jsonl")) == []


def test_outage_spills_rows_every_cycle_and_writes_each_once_after(
    pg_proxy, writers, spill_dir: Path
) -> None:
    proxy, url = pg_proxy
    engine = make_engine(url, migrate=False)
    # max_buffer far above the rows: write-ahead must not wait for the buffer to fill.
    writer = writers(engine, max_buffer=1000, flush_interval=0.02, retry_interval=60)
    writer.submit(row(0))
    writer.flush()
    proxy.stop()

    for n in range(1, 26):
        writer.submit(row(n))
    for _ in range(1000):  # no flush: the thread's own cycles notice the outage and spill
        if writer.stats.spilled >= 25:
            break
        threading.Event().wait(0.01)
    stats = writer.stats
    assert (stats.written, stats.pending, stats.spilled) == (1, 0, 25)
    assert stats.last_error and "OperationalError" in stats.last_error
    assert len(spill_lines(spill_dir)) == 25

    proxy.start()
    assert writer.flush() is True
    assert keys(engine) == sorted((f"req-{n}", 1) for n in range(26))
    stats = writer.stats
    assert (stats.written, stats.pending, stats.spilled, stats.last_error) == (26, 0, 0, None)
    assert list(spill_dir.glob("*.jsonl")) == []


def test_flush_during_outage_spills_everything(pg_proxy, writers, spill_dir: Path) -> None:
    proxy, url = pg_proxy
    writer = writers(make_engine(url, migrate=False), retry_interval=60)
    proxy.stop()
    for n in range(5):
        writer.submit(row(n))
    assert writer.flush() is True
    assert (writer.stats.pending, writer.stats.spilled) == (0, 5)
    assert sorted(r["request_id"] for r in spill_lines(spill_dir)) == [f"req-{n}" for n in range(5)]


def test_outage_is_logged_once_not_per_row(pg_proxy, writers) -> None:
    proxy, url = pg_proxy
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("gatehouse.audit")
    logger.addHandler(handler)
    try:
        writer = writers(make_engine(url, migrate=False), retry_interval=0.01)
        proxy.stop()
        for n in range(20):
            writer.submit(row(n))
            writer.flush()  # each flush retries the database
        proxy.start()
        writer.flush()
        proxy.stop()
        writer.submit(row(99))
        writer.flush()
    finally:
        logger.removeHandler(handler)
    messages = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert sum("unreachable" in m for m in messages) == 2  # two outages
    assert sum("reachable again" in m for m in messages) == 1


def test_import_while_a_writer_is_down_then_its_recovery_write_each_row_once(
    pg_proxy, postgres_url: str, writers, spill_dir: Path
) -> None:
    proxy, url = pg_proxy
    writer = writers(make_engine(url, migrate=False), max_buffer=1, retry_interval=60)
    direct = make_engine(postgres_url)
    proxy.stop()
    for n in range(10):
        writer.submit(row(n))
    writer.flush()  # spilled: the proxy is down
    assert import_spilled(direct, spill_dir) == 10  # `audit flush` takes the writer's file
    for n in range(10, 15):
        writer.submit(row(n))
    writer.flush()
    assert writer.stats.spilled == 5

    proxy.start()
    assert writer.flush() is True
    assert keys(direct) == sorted((f"req-{n}", 1) for n in range(15))
    assert (writer.stats.spilled, writer.stats.written) == (0, 5)
    direct.dispose()


CHILD = """
import sys
from pathlib import Path
from gatehouse_core.audit import AuditWriter
from gatehouse_core.db import make_engine

writer = AuditWriter(make_engine(sys.argv[1], migrate=False), spill_dir=Path(sys.argv[2]),
                     retry_interval=60)
for n in range(int(sys.argv[3])):
    writer.submit({"request_id": f"exit-{n}", "attempt": 1, "provider": "p", "model": "m",
                   "status": "ok", "cost_usd": 0.5})
# no close(): the atexit hook must save the rows
"""


def test_exit_while_database_down_spills_and_cli_flush_imports_once(
    pg_proxy, postgres_url: str, spill_dir: Path
) -> None:
    proxy, url = pg_proxy
    proxy.stop()
    child = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(spill_dir), "40"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    assert len(spill_lines(spill_dir)) == 40

    assert "Imported 40 " in audit_flush(postgres_url)
    assert "Imported 0 " in audit_flush(postgres_url)
    engine = make_engine(postgres_url)
    assert keys(engine) == sorted((f"exit-{n}", 1) for n in range(40))
    engine.dispose()


# ---- importing spill files ---------------------------------------------------------------


def write_spill(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({**r, "created_at": r["created_at"].isoformat()}) for r in rows]
    path.write_text("".join(line + "\n" for line in lines))


def test_import_skips_rows_already_present_and_removes_the_file(
    db_url: str, writers, spill_dir: Path
) -> None:
    engine = make_engine(db_url)
    writer = writers(engine)
    writer.submit(row(1))
    writer.flush()
    # An ambiguous commit can leave a row both in the table and in a spill file.
    write_spill(spill_dir / "123-1.jsonl", [row(1), row(2), row(3), row(3)])

    assert import_spilled(engine, spill_dir) == 2
    assert import_spilled(engine, spill_dir) == 0
    assert keys(engine) == [("req-1", 1), ("req-2", 1), ("req-3", 1)]
    assert list(spill_dir.glob("*.jsonl")) == []


def test_concurrent_imports_insert_each_row_once(db_url: str, spill_dir: Path) -> None:
    engine = make_engine(db_url)
    for f in range(6):
        write_spill(spill_dir / f"9{f}-1.jsonl", [row(f * 100 + n) for n in range(50)])
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(import_spilled(engine, spill_dir)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(results) == 300 and len(results) == 3
    assert count(engine) == 300


def test_unreadable_spill_line_is_set_aside(sqlite_url: str, spill_dir: Path) -> None:
    engine = make_engine(sqlite_url)
    write_spill(spill_dir / "7-1.jsonl", [row(1)])
    with (spill_dir / "7-1.jsonl").open("a") as f:
        f.write('{"request_id": "cut-off-mid-wri\n')
    assert import_spilled(engine, spill_dir) == 1
    assert "cut-off-mid-wri" in (spill_dir / "rejected" / f"{os.getpid()}.jsonl").read_text()


def test_import_of_a_missing_folder_imports_nothing(sqlite_url: str, tmp_path: Path) -> None:
    assert import_spilled(make_engine(sqlite_url), tmp_path / "nowhere") == 0
