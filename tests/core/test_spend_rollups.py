"""The hourly rollup equals the raw aggregation: written by the audit writer (batches, two
processes at once, retried batches) and rebuilt from raw rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, delete, insert, select

from gatehouse_core.audit import AuditWriter, _insert_batch, _to_line, import_spilled
from gatehouse_core.db import make_engine
from gatehouse_core.schema import LLMRequest, UsageHourly, UsageHourlyWorkflow
from gatehouse_core.spend.rollups import rebuild, rollup_totals
from tests.core.spend_data import (
    NOW,
    assert_rollups_match_raw,
    assert_same,
    random_rows,
    raw_rollup,
    stored_rollup,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("rollup_worker.py")
R = LLMRequest.__table__
U = UsageHourly.__table__
W = UsageHourlyWorkflow.__table__


@pytest.fixture
def spill_dir(tmp_path: Path) -> Path:
    return tmp_path / ".gatehouse" / "audit-spill"


@pytest.fixture
def writer(engine: Engine, spill_dir: Path) -> Iterator[Callable[..., AuditWriter]]:
    built: list[AuditWriter] = []

    def build(**kwargs: Any) -> AuditWriter:
        built.append(AuditWriter(engine, spill_dir=spill_dir, **kwargs))
        return built[-1]

    yield build
    for w in built:
        w.close(timeout=2)


def write_all(writer: AuditWriter, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        writer.submit(row)
    assert writer.flush(timeout=30)


def test_writer_batches_keep_the_rollup_equal_to_the_raw_rows(
    engine: Engine, writer: Callable[..., AuditWriter]
) -> None:
    rows = random_rows(1, 400, prefix="a")
    write_all(writer(batch_size=23), rows)
    assert raw_rollup(engine)  # the data set is not empty
    assert_rollups_match_raw(engine)


def test_rollup_counts_calls_on_final_attempts_and_fallbacks_on_final_rows(
    engine: Engine, writer: Callable[..., AuditWriter]
) -> None:
    at = NOW.replace(minute=5)
    base = {"created_at": at, "model": "m", "source": "cli", "actor": "alice"}
    rows = [
        {**base, "request_id": "r1", "attempt": 1, "provider": "a", "status": "error"}
        | {"final_attempt": False, "fallback": False, "latency_ms": 30.0},
        {**base, "request_id": "r1", "attempt": 2, "provider": "b", "status": "ok"}
        | {"final_attempt": True, "fallback": True, "cost_usd": 0.5, "cost_source": "provider"},
        {**base, "request_id": "r2", "attempt": 1, "provider": "b", "status": "ok"}
        | {"final_attempt": True, "fallback": False, "cost_usd": 0.25, "cost_source": "estimated"},
    ]
    write_all(writer(), rows)
    with engine.connect() as conn:
        b_ok = rollup_totals(conn, provider="b", status="ok")
        a_error = rollup_totals(conn, provider="a", status="error")
        (hour,) = conn.execute(select(U.c.bucket_start).distinct()).scalars()
    assert hour == NOW.replace(minute=0)
    assert (b_ok["calls"], b_ok["attempts"], b_ok["fallback_calls"]) == (2, 2, 1)
    assert (b_ok["cost_usd"], b_ok["cost_reported_usd"], b_ok["cost_estimated_usd"]) == (
        0.75,
        0.5,
        0.25,
    )
    assert (a_error["calls"], a_error["attempts"], a_error["latency_h01"]) == (0, 1, 1)


def test_two_writer_processes_at_once_keep_the_rollup_exact(
    engine: Engine, db_url: str, tmp_path: Path, spill_dir: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    go = tmp_path / "go"
    procs = []
    for n in (1, 2):
        spec = {
            "url": db_url,
            "seed": 10 + n,
            "calls": 250,
            "prefix": f"w{n}",
            "spill_dir": str(spill_dir / f"w{n}"),
            "ready": str(tmp_path / f"ready{n}"),
            "go": str(go),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(WORKER), json.dumps(spec)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready{n}").exists() for n in (1, 2)):
        assert time.monotonic() < deadline, "the writer processes did not start"
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.05)
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    expected_rows = sum(len(random_rows(seed, 250, prefix="x", narrow=True)) for seed in (11, 12))
    assert sum(int(out) for out, _ in results) == expected_rows
    assert not list(spill_dir.rglob("*.jsonl"))  # everything reached the database
    assert_rollups_match_raw(engine)


def test_retried_batches_are_counted_once(
    engine: Engine, writer: Callable[..., AuditWriter], spill_dir: Path
) -> None:
    rows = random_rows(2, 200, prefix="r")
    first, rest = rows[:150], rows[150:]
    write_all(writer(), first)
    # A batch whose commit was ambiguous is sent again through the dedup path...
    inserted, bad = _insert_batch(engine, first[100:] + rest[:20], dedup=True)
    assert (inserted, bad) == (20, [])
    # ...a writer that does not know sends rows already stored (the unique index refuses the
    # batch, which is then retried row by row with dedup)...
    inserted, bad = _insert_batch(engine, first[:10] + rest[20:40], dedup=False)
    assert (inserted, bad) == (20, [])
    # ...and spill files holding rows already written are imported again.
    spill_dir.mkdir(parents=True, exist_ok=True)
    (spill_dir / "1-1.jsonl").write_text("".join(_to_line(r) + "\n" for r in rows[:60] + rest))
    assert import_spilled(engine, spill_dir) == len(rest) - 40
    with engine.connect() as conn:
        assert rollup_totals(conn)["attempts"] == len(rows)
    assert_rollups_match_raw(engine)


def test_the_same_rows_give_identical_rollups_on_sqlite_and_postgres(
    sqlite_url: str, postgres_url: str, spill_dir: Path
) -> None:
    rows = random_rows(3, 300, prefix="s")
    found = []
    for url in (sqlite_url, postgres_url):
        engine = make_engine(url)
        w = AuditWriter(engine, spill_dir=spill_dir, batch_size=50)
        write_all(w, rows)
        w.close()
        found.append((stored_rollup(engine), stored_rollup(engine, by_workflow=True)))
        engine.dispose()
    assert_same(found[0][0], found[1][0])
    assert_same(found[0][1], found[1][1])
    assert found[0][0] and len(found[0][1]) > len(found[0][0])  # workflow splits buckets


def test_rows_without_marks_count_as_final_when_they_are_the_last_attempt(
    engine: Engine, writer: Callable[..., AuditWriter]
) -> None:
    """Rows spilled by a process from before 0005 carry no final_attempt/fallback."""
    base = {"created_at": NOW, "model": "m", "status": "error"}
    w = writer()
    write_all(w, [{**base, "request_id": "old", "attempt": 1, "provider": "a"}])
    write_all(w, [{**base, "request_id": "old", "attempt": 2, "provider": "b", "status": "ok"}])
    write_all(w, [{**base, "request_id": "lone", "attempt": 1, "provider": "a"}])
    with engine.connect() as conn:
        b = rollup_totals(conn, provider="b")
        lone = rollup_totals(conn, provider="a")
    assert (b["calls"], b["fallback_calls"]) == (1, 1)
    # "old" attempt 1 was counted as a call while it was the last attempt seen: `rollups
    # rebuild` corrects such chains split across batches.
    assert lone["attempts"] == 2


def drop_rollup(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(U))
        conn.execute(delete(W))


def test_rebuild_recomputes_what_the_writer_maintained(
    engine: Engine, writer: Callable[..., AuditWriter]
) -> None:
    write_all(writer(), random_rows(4, 300, prefix="b"))
    maintained = stored_rollup(engine)
    maintained_by_workflow = stored_rollup(engine, by_workflow=True)
    drop_rollup(engine)
    lines = []
    days = rebuild(engine, since=timedelta(days=5), now=NOW, progress=lines.append)
    assert [d.day for d in days] == [
        datetime(2026, 11, day, tzinfo=UTC) for day in (27, 28, 29, 30)
    ]  # from the oldest raw row's day (3 days back), not 5 days back
    assert lines == days
    assert sum(d.rows for d in days) == len(random_rows(4, 300, prefix="b"))
    assert_same(stored_rollup(engine), maintained)
    assert_same(stored_rollup(engine, by_workflow=True), maintained_by_workflow)
    assert sum(d.buckets for d in days) == len(maintained)  # buckets of llm_usage_hourly


def test_rebuild_counts_unmarked_rows_by_their_highest_attempt(engine: Engine) -> None:
    """Rows written before 0005 have final_attempt NULL; a chain may cross midnight."""
    late = datetime(2026, 11, 29, 23, 59, 59, tzinfo=UTC)
    base = {"model": "m", "status": "error", "cost_source": "unknown"}
    legacy = [
        {**base, "request_id": "x", "attempt": 1, "provider": "a", "created_at": late},
        {**base, "request_id": "x", "attempt": 2, "provider": "b", "created_at": late}
        | {"status": "ok"},
        {**base, "request_id": "y", "attempt": 1, "provider": "a", "created_at": late},
        {**base, "request_id": "y", "attempt": 2, "provider": "a"}
        | {"created_at": late + timedelta(seconds=2), "status": "ok"},
        {**base, "request_id": "z", "attempt": 1, "provider": "a", "created_at": late},
    ]
    with engine.begin() as conn:  # plain inserts: no rollup, like rows from before 0005
        conn.execute(insert(R), legacy)
    rebuild(engine, since=timedelta(days=2), now=NOW)
    with engine.connect() as conn:
        a_err = rollup_totals(conn, provider="a", status="error")
        a_ok = rollup_totals(conn, provider="a", status="ok")
        b_ok = rollup_totals(conn, provider="b", status="ok")
    assert (a_err["attempts"], a_err["calls"]) == (3, 1)  # only z's lone attempt is final
    assert (a_ok["calls"], a_ok["fallback_calls"]) == (1, 0)  # y: retried on the same provider
    assert (b_ok["calls"], b_ok["fallback_calls"]) == (1, 1)  # x: fell back from a to b


def test_rebuild_keeps_rollups_of_days_whose_raw_rows_are_gone(
    engine: Engine, writer: Callable[..., AuditWriter]
) -> None:
    old = NOW - timedelta(days=40)
    base = {"model": "m", "provider": "a", "status": "ok", "final_attempt": True}
    write_all(writer(), [{**base, "request_id": "old", "attempt": 1, "created_at": old}])
    write_all(writer(), [{**base, "request_id": "new", "attempt": 1, "created_at": NOW}])
    with engine.begin() as conn:
        conn.execute(delete(R).where(R.c.request_id == "old"))  # pruned
    rebuild(engine, since=timedelta(days=365), now=NOW)
    with engine.connect() as conn:
        assert rollup_totals(conn)["calls"] == 2
    with engine.begin() as conn:
        conn.execute(delete(R))  # every raw row pruned
    assert rebuild(engine, since=timedelta(days=365), now=NOW) == []
    with engine.connect() as conn:
        assert rollup_totals(conn)["calls"] == 2


def test_numbers_written_as_text_do_not_stop_the_writer(
    engine: Engine, writer: Callable[..., AuditWriter]
) -> None:
    """The database accepts '12' for an integer column; the rollup must not choke on it."""
    base = {"created_at": NOW, "model": "m", "provider": "a", "status": "ok", "final_attempt": True}
    w = writer()
    text_numbers = {"input_tokens": "12", "cost_usd": "0.5", "latency_ms": "30.5"}
    write_all(w, [{**base, "request_id": "t", "attempt": 1, **text_numbers}])
    write_all(w, [{**base, "request_id": "u", "attempt": 1, "input_tokens": 3}])
    assert (w.stats.written, w.stats.last_error) == (2, None)
    with engine.connect() as conn:
        totals = rollup_totals(conn)
    assert (totals["input_tokens"], totals["cost_usd"], totals["latency_count"]) == (15, 0.5, 1)
    assert_rollups_match_raw(engine)
