"""The audit writer under load while PostgreSQL goes away and comes back, through a real TCP
proxy: cut and restored, and black-holed (accepts TCP, never answers). No row lost or doubled
(issue 13, "Database outage")."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from gatehouse_core.audit import AuditWriter
from gatehouse_core.db import make_engine
from tests.core import test_audit
from tests.core.test_audit import keys, row

pg_proxy = test_audit.pg_proxy  # the fixture: the test database behind a TcpProxy

THREADS, ROWS_PER_THREAD = 4, 150


@pytest.fixture
def spill_dir(tmp_path: Path) -> Path:
    return tmp_path / ".gatehouse" / "audit-spill"


def submit_from_threads(writer: AuditWriter, threads: int, rows: int) -> list[threading.Thread]:
    def work(t: int) -> None:
        for n in range(rows):
            writer.submit(row(t * 10_000 + n, attempt=1 + n % 3))
            time.sleep(0.001)  # pacing, so the submissions span the outages

    started = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for thread in started:
        thread.start()
    return started


def expected_keys(threads: int, rows: int) -> list[tuple[str, int]]:
    return sorted((f"req-{t * 10_000 + n}", 1 + n % 3) for t in range(threads) for n in range(rows))


def settle(writer: AuditWriter) -> None:
    """Flush until nothing is pending or spilled (bounded: the database is back)."""
    for _ in range(20):
        writer.flush(timeout=10)
        stats = writer.stats
        if stats.pending == 0 and stats.spilled == 0 and stats.last_error is None:
            return


def assert_nothing_set_aside(writer: AuditWriter, spill_dir: Path) -> None:
    assert writer.stats.rejected == 0
    assert not (spill_dir / "rejected" / f"{os.getpid()}.jsonl").exists()
    assert list(spill_dir.glob("*.jsonl")) == []


@pytest.mark.timeout(120)
def test_rows_from_many_threads_survive_a_flapping_database_each_exactly_once(
    pg_proxy, postgres_url: str, spill_dir: Path
) -> None:
    proxy, url = pg_proxy
    writer = AuditWriter(
        make_engine(url, migrate=False),
        spill_dir=spill_dir,
        max_buffer=50,
        batch_size=50,
        flush_interval=0.02,
        retry_interval=0.05,
    )
    submitters = submit_from_threads(writer, THREADS, ROWS_PER_THREAD)
    for _ in range(3):  # cut and restore while the threads submit
        time.sleep(0.1)
        proxy.stop()
        time.sleep(0.15)
        proxy.start()
    for thread in submitters:
        thread.join(timeout=60)
    settle(writer)

    direct = make_engine(postgres_url)
    assert keys(direct) == expected_keys(THREADS, ROWS_PER_THREAD)
    direct.dispose()
    assert_nothing_set_aside(writer, spill_dir)
    writer.close()


@pytest.mark.timeout(120)
def test_a_blackholed_database_never_blocks_submit_and_writing_resumes_after(
    pg_proxy, postgres_url: str, spill_dir: Path
) -> None:
    proxy, url = pg_proxy
    writer = AuditWriter(
        make_engine(url, migrate=False),
        spill_dir=spill_dir,
        max_buffer=20,
        batch_size=20,
        flush_interval=0.02,
        retry_interval=0.05,
    )
    writer.submit(row(99_999))
    assert writer.flush(timeout=30) is True  # a pooled connection exists: it freezes too
    proxy.blackhole()

    submitters = submit_from_threads(writer, 2, ROWS_PER_THREAD)
    for thread in submitters:
        thread.join(timeout=60)
    # Every submit returned while the writer's database call was hanging.
    assert not any(thread.is_alive() for thread in submitters)
    stats = writer.stats
    assert stats.written == 1
    assert stats.pending + stats.spilled == 2 * ROWS_PER_THREAD
    # Memory bounded: submit spills past 2 * max_buffer queued; the hung batch holds the rest.
    assert stats.pending <= 4 * 20

    proxy.restore()
    settle(writer)
    direct = make_engine(postgres_url)
    assert keys(direct) == sorted(expected_keys(2, ROWS_PER_THREAD) + [("req-99999", 1)])
    direct.dispose()
    assert_nothing_set_aside(writer, spill_dir)
    writer.close()
