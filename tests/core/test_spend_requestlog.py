"""The audit log browser: keyset pages exactly once under inserts, filters, call detail, CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from gatehouse_core.db import make_engine
from gatehouse_core.errors import ConfigError
from gatehouse_core.spend import requestlog
from gatehouse_core.spend.requestlog import RequestFilters
from tests.spend_rows import request_row, store

T0 = datetime(2026, 11, 10, 9, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Engine:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def test_pages_return_every_row_exactly_once_while_rows_arrive(engine: Engine) -> None:
    # 30 rows, several sharing a timestamp, so the id breaks ties inside the cursor.
    rows = [request_row(f"r{n:02d}", T0 + timedelta(seconds=n // 3)) for n in range(30)]
    store(engine, rows, with_rollup=False)
    seen: list[str] = []
    cursor = None
    for turn in range(20):  # bounded: 30 rows / 7 per page is 5 pages
        page = requestlog.page(engine, after=cursor, limit=7)
        seen += [r["request_id"] for r in page.rows]
        # New traffic between two page views: newer than anything on the pages so far.
        store(
            engine,
            [request_row(f"new{turn}", T0 + timedelta(hours=1, seconds=turn))],
            with_rollup=False,
        )
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(r["request_id"] for r in rows)
    assert len(seen) == len(set(seen)) == 30
    assert seen[0] == "r29" and seen[-1] == "r00"  # newest first


def test_filters_narrow_the_pages(engine: Engine) -> None:
    store(
        engine,
        [
            request_row("a", T0, provider="alpha", workflow_id="wf-1", trace_id="t-1"),
            request_row("b", T0, provider="beta", status="error", error_type="rate_limited"),
            request_row("c", T0 + timedelta(hours=2), source="api", actor="svc"),
        ],
        with_rollup=False,
    )

    def ids(**kw: object) -> list[str]:
        return [r["request_id"] for r in requestlog.page(engine, RequestFilters(**kw)).rows]

    assert ids(provider="beta") == ["b"]
    assert ids(status="error", error_type="rate_limited") == ["b"]
    assert ids(workflow_id="wf-1", trace_id="t-1") == ["a"]
    assert sorted(ids(source="")) == ["a", "b"]  # missing source; same time, so by id
    assert ids(actor="svc") == ["c"]
    assert ids(start=T0 + timedelta(hours=1)) == ["c"]
    assert ids(end=T0 + timedelta(hours=1), provider="alpha") == ["a"]
    assert requestlog.count(engine, RequestFilters(start=T0)) == 3


def test_call_detail_lists_the_attempt_chain_in_order(engine: Engine) -> None:
    store(
        engine,
        [
            request_row(
                "x", T0 + timedelta(seconds=2), 2, provider="beta", fallback=True, latency_ms=900.0
            ),
            request_row(
                "x",
                T0,
                1,
                status="error",
                http_status=429,
                final_attempt=False,
                error_type="rate_limited",
                error_message="slow down",
            ),
        ],  # fmt: skip
        with_rollup=False,
    )
    chain = requestlog.call_attempts(engine, "x")
    assert [(a["attempt"], a["provider"], a["http_status"]) for a in chain] == [
        (1, "alpha", 429),
        (2, "beta", 200),
    ]
    # Rows are written as attempts end: #1 ran 400 ms to T0, #2 900 ms to T0 + 2 s.
    assert [a["offset_ms"] for a in chain] == [0.0, 1500.0]
    with pytest.raises(ConfigError, match="no call with request id 'nope'"):
        requestlog.call_attempts(engine, "nope")


def test_csv_export_streams_batches_and_stops_at_the_bound(engine: Engine) -> None:
    store(
        engine,
        [request_row(f"r{n}", T0 + timedelta(minutes=n)) for n in range(12)],
        with_rollup=False,
    )
    progress: list[int] = []
    text = "".join(requestlog.export_csv(engine, batch=5, on_progress=progress.append))
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["request_id"] for r in table] == [f"r{n}" for n in range(11, -1, -1)]
    assert progress == [5, 10, 12]
    assert table[0]["created_at"] == (T0 + timedelta(minutes=11)).isoformat()
    bounded = "".join(requestlog.export_csv(engine, max_rows=4, batch=3)).splitlines()
    assert len(bounded) == 1 + 4 + 1
    assert bounded[-1] == "# stopped after 4 rows; narrow the filters for the rest"


def test_a_tampered_cursor_is_a_clear_error(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="start again from the first page"):
        requestlog.page(engine, after="not-a-cursor")
    with pytest.raises(ConfigError, match="give 1 to 500"):
        requestlog.page(engine, limit=0)
