"""A bad row is not an outage: text the database cannot store is made storable, a row the
database refuses for what it holds is set aside, and writing goes on (issue 7, item 1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sqlalchemy import String, select

from gatehouse_core.audit import AuditWriter, import_spilled, normalize_row
from gatehouse_core.db import make_engine
from tests.core import test_audit
from tests.core.test_audit import T, count, keys, row, spill_lines

pg_proxy = test_audit.pg_proxy  # the fixture: the test database behind a TcpProxy

# Every text column and its length, from the table itself (error_message: the 500 we keep).
TEXT_LIMITS = {
    c.name: 500 if c.name == "error_message" else c.type.length
    for c in T.columns
    if isinstance(c.type, String)
}
# The ones a caller or an upstream can fill (request_id is the row's identity).
TEXT_FIELDS = [name for name in TEXT_LIMITS if name != "request_id"]
BAD = "bad\udcff\x00text\ud800"


@pytest.fixture
def spill_dir(tmp_path: Path) -> Path:
    return tmp_path / ".gatehouse" / "audit-spill"


def rejected_lines(spill_dir: Path) -> list[dict]:
    path = spill_dir / "rejected" / f"{os.getpid()}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_normalize_row_makes_every_text_column_storable_and_fits_it() -> None:
    assert {"workflow_id", "trace_id", "actor", "source", "model", "provider"} <= set(TEXT_FIELDS)
    for name in TEXT_FIELDS:
        out = normalize_row(row(1, **{name: BAD}))
        assert out[name] == "bad\ufffdtext\ufffd", name
        out[name].encode("utf-8")
        limit = TEXT_LIMITS[name]
        out = normalize_row(row(1, **{name: "é" * 5000}))
        assert len(out[name]) == limit, name


def test_normalize_row_keeps_surrogate_pairs_and_turns_other_values_into_text() -> None:
    out = normalize_row(row(1, workflow_id="\ud83d\ude00 ok", trace_id=42))
    assert (out["workflow_id"], out["trace_id"]) == ("\U0001f600 ok", "42")


@pytest.mark.timeout(60)
def test_lone_surrogates_in_any_text_field_do_not_stop_writing(
    db_url: str, spill_dir: Path
) -> None:
    # The scenario: bad rows among good ones, then 20 more calls.
    engine = make_engine(db_url)
    writer = AuditWriter(engine, spill_dir=spill_dir, max_buffer=100, retry_interval=0.05)
    expected = []
    for n, name in enumerate(TEXT_FIELDS):
        writer.submit(row(n))
        writer.submit(row(n, attempt=2, **{name: BAD}))
        writer.submit(row(n, attempt=3, **{name: "x" * 100_000}))
        expected += [(f"req-{n}", 1), (f"req-{n}", 2), (f"req-{n}", 3)]
    assert writer.flush() is True
    for n in range(100, 120):
        writer.submit(row(n))
        expected.append((f"req-{n}", 1))
    assert writer.flush() is True

    assert keys(engine) == sorted(expected)
    stats = writer.stats
    assert (stats.pending, stats.spilled, stats.rejected, stats.last_error) == (0, 0, 0, None)
    with engine.connect() as conn:
        stored = conn.execute(select(T).where(T.c.attempt == 2)).mappings().all()
    assert {r["request_id"]: r for r in stored}["req-0"][TEXT_FIELDS[0]] == "bad\ufffdtext\ufffd"
    writer.close()  # must not raise
    assert list(spill_dir.glob("*.jsonl")) == []


@pytest.mark.timeout(60)
def test_a_row_refused_for_its_values_is_set_aside_with_the_reason_and_writing_goes_on(
    db_url: str, spill_dir: Path
) -> None:
    engine = make_engine(db_url)
    writer = AuditWriter(engine, spill_dir=spill_dir, retry_interval=60)
    writer.submit(row(1))
    writer.submit(row(2, final_attempt="yes"))  # StatementError wrapping a TypeError
    writer.submit(row(3, latency_ms=[1, 2]))  # TypeError / DatatypeMismatch
    writer.submit(row(4))
    assert writer.flush() is True
    for n in range(10, 30):
        writer.submit(row(n))
    assert writer.flush() is True

    assert keys(engine) == sorted(
        [("req-1", 1), ("req-4", 1)] + [(f"req-{n}", 1) for n in range(10, 30)]
    )
    stats = writer.stats
    assert (stats.rejected, stats.pending, stats.last_error) == (2, 0, None)
    refused = {line["request_id"]: line["rejected_reason"] for line in rejected_lines(spill_dir)}
    assert set(refused) == {"req-2", "req-3"}
    assert "boolean" in refused["req-2"]
    writer.close()


@pytest.mark.timeout(60)
def test_a_raw_row_with_surrogates_never_fails_the_spill_of_the_others(
    pg_proxy, postgres_url: str, spill_dir: Path
) -> None:
    proxy, url = pg_proxy
    writer = AuditWriter(make_engine(url, migrate=False), spill_dir=spill_dir, retry_interval=60)
    proxy.stop()
    writer.submit(row(1, workflow_id=BAD))
    writer.submit({"request_id": "no-status\udcff", "attempt": 1})  # cannot be normalized
    writer.submit(row(2))
    assert writer.flush() is True
    writer.close()  # the database is still down: must not raise either

    assert sorted(r["request_id"] for r in spill_lines(spill_dir)) == ["req-1", "req-2"]
    assert [line["request_id"] for line in rejected_lines(spill_dir)] == ["no-status\udcff"]
    direct = make_engine(postgres_url)
    assert import_spilled(direct, spill_dir) == 2
    assert count(direct) == 2
    direct.dispose()
