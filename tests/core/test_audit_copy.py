"""PostgreSQL batches of COPY_MIN_ROWS or more go in by COPY: the same rows, rollup and error
handling as the multi-row INSERT that SQLite (and small batches) use."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.exc import DataError, IntegrityError

from gatehouse_core.audit import COLUMNS, COPY_MIN_ROWS, _insert_batch, is_outage, normalize_row
from gatehouse_core.db import make_engine
from gatehouse_core.schema import LLMRequest
from gatehouse_core.spend.rollups import rollup_totals

T = LLMRequest.__table__
START = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


def varied_rows(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Rows with every kind of value a column holds: None, text with quotes, tabs, newlines and
    backslashes (COPY's own escapes), floats small and large, booleans."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        ok = rng.random() < 0.8
        rows.append(
            normalize_row(
                {
                    "request_id": f"copy-{i // 2}",
                    "attempt": i % 2 + 1,
                    "created_at": START + timedelta(minutes=7 * i, microseconds=i),
                    "provider": rng.choice(["main", "eu"]),
                    "model": rng.choice(["openai/gpt-4o-mini", "anthropic/claude-haiku-4.5"]),
                    "model_used": "openai/gpt-4o-mini" if ok else None,
                    "status": "ok" if ok else "error",
                    "http_status": 200 if ok else 502,
                    "error_type": None if ok else "provider_unavailable",
                    "error_message": None if ok else 'bad "gateway"\tline\nnext \\N \\ end',
                    "input_tokens": rng.randint(1, 50_000) if ok else None,
                    "output_tokens": rng.randint(1, 4_000) if ok else None,
                    "cached_tokens": rng.choice([0, 12, None]),
                    "cost_usd": rng.choice([1.5e-07, 0.012345678, 3.25]) if ok else None,
                    "cost_source": rng.choice(["provider", "estimated"]) if ok else "unknown",
                    "latency_ms": round(rng.uniform(5, 9_000), 2),
                    "ttft_ms": rng.choice([None, 321.5]),
                    "workflow_id": rng.choice([None, "wf-ä", "wf,comma"]),
                    "source": "test",
                    "actor": "alice",
                    "final_attempt": i % 2 == 1,
                    "fallback": False,
                }
            )
        )
    return rows


def stored(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        found = conn.execute(select(*(T.c[c] for c in COLUMNS)).order_by(T.c.id)).mappings()
        return [dict(r) for r in found]


def test_a_copied_batch_stores_exactly_what_an_inserted_batch_stores(
    postgres_url: str, sqlite_url: str
) -> None:
    rows = varied_rows(COPY_MIN_ROWS + 50)
    pg, lite = make_engine(postgres_url), make_engine(sqlite_url)
    try:
        assert _insert_batch(pg, rows, dedup=False) == (len(rows), [])
        assert _insert_batch(lite, rows, dedup=False) == (len(rows), [])
        copied, inserted = stored(pg), stored(lite)
        assert copied == inserted
        assert [r["error_message"] for r in copied] == [r["error_message"] for r in rows]
        assert any(r["error_message"] for r in rows)
        with pg.connect() as a, lite.connect() as b:
            assert rollup_totals(a) == pytest.approx(rollup_totals(b))
            assert rollup_totals(a)["attempts"] == len(rows)
    finally:
        pg.dispose()
        lite.dispose()


def test_a_bad_row_in_a_copied_batch_is_set_aside_and_the_rest_are_written(
    postgres_url: str,
) -> None:
    rows = varied_rows(COPY_MIN_ROWS + 10)
    rows[5]["input_tokens"] = 2**40  # out of range for INTEGER: COPY refuses the whole batch
    engine = make_engine(postgres_url)
    try:
        inserted, refused = _insert_batch(engine, rows, dedup=False)
        assert inserted == len(rows) - 1
        assert [r["request_id"] for r, _ in refused] == [rows[5]["request_id"]]
        assert "DataError" in refused[0][1]
        with engine.connect() as conn:
            assert rollup_totals(conn)["attempts"] == len(rows) - 1
    finally:
        engine.dispose()


def test_a_copied_batch_overlapping_stored_rows_writes_only_the_new_ones(
    postgres_url: str,
) -> None:
    rows = varied_rows(COPY_MIN_ROWS * 2)
    engine = make_engine(postgres_url)
    try:
        _insert_batch(engine, rows[:COPY_MIN_ROWS], dedup=False)
        # A retried batch: the unique index refuses the COPY, the row-by-row pass skips repeats.
        inserted, refused = _insert_batch(engine, rows, dedup=False)
        assert (inserted, refused) == (COPY_MIN_ROWS, [])
        assert len(stored(engine)) == len(rows)
        with engine.connect() as conn:
            assert rollup_totals(conn)["attempts"] == len(rows)
    finally:
        engine.dispose()


def test_copy_errors_reach_the_writer_as_sqlalchemy_errors_and_a_lost_server_is_an_outage(
    postgres_url: str,
) -> None:
    from gatehouse_core.audit import _write_table

    engine = make_engine(postgres_url)
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    rows = varied_rows(COPY_MIN_ROWS)
    try:
        _insert_batch(engine, rows, dedup=False)
        with pytest.raises(IntegrityError) as duplicate, engine.begin() as conn:
            _write_table(conn, rows)
        assert not is_outage(duplicate.value)
        bad = [dict(r) for r in varied_rows(COPY_MIN_ROWS, seed=9)]
        for r in bad:
            r["request_id"] = "x" + r["request_id"]
        bad[0]["http_status"] = 2**40
        with pytest.raises(DataError), engine.begin() as conn:
            _write_table(conn, bad)
        with pytest.raises(Exception) as lost, engine.begin() as conn:  # noqa: PT011
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with admin.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            _write_table(conn, [{**r, "request_id": "y" + r["request_id"]} for r in rows])
        assert is_outage(lost.value)
    finally:
        admin.dispose()
        engine.dispose()
