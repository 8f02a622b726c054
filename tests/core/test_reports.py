"""Read queries over llm_requests: recent rows and usage sums, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, insert

from gatehouse_core.audit import normalize_row
from gatehouse_core.db import make_engine
from gatehouse_core.errors import ConfigError
from gatehouse_core.reports import parse_since, recent_requests, usage_summary
from gatehouse_core.schema import LLMRequest

T = LLMRequest.__table__
NOW = datetime.now(UTC).replace(microsecond=0)
HOUR_AGO = NOW - timedelta(hours=1)
TWO_DAYS_AGO = NOW - timedelta(days=2)
FORTY_DAYS_AGO = NOW - timedelta(days=40)


def attempt(request_id: str, n: int, at: datetime, **fields: Any) -> dict[str, Any]:
    base = {
        "request_id": request_id,
        "attempt": n,
        "created_at": at,
        "provider": "alpha",
        "model": "m/one",
        "status": "ok",
        "input_tokens": None,
        "output_tokens": None,
        "cost_usd": None,
        "cost_source": "unknown",
    }
    return normalize_row({**base, **fields})


# Costs are binary fractions so float sums are exact on both databases.
ROWS = [
    # r1: failed on alpha, then answered by beta (two attempts, one call)
    attempt("r1", 1, HOUR_AGO, status="error", http_status=503),
    attempt("r1", 2, HOUR_AGO, provider="beta", model="m/two", input_tokens=100,
            output_tokens=20, cost_usd=0.5),
    attempt("r2", 1, HOUR_AGO + timedelta(minutes=5), input_tokens=10, output_tokens=2,
            cost_usd=0.25),
    attempt("r3", 1, TWO_DAYS_AGO, input_tokens=1000, output_tokens=200, cost_usd=2.0),
    attempt("r4", 1, TWO_DAYS_AGO, provider="beta", model="m/two", status="incomplete",
            input_tokens=5, output_tokens=1, cost_usd=0.125),
    attempt("old", 1, FORTY_DAYS_AGO, input_tokens=7, output_tokens=7, cost_usd=8.0),
]  # fmt: skip


@pytest.fixture
def engine(db_url: str) -> Engine:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(insert(T), ROWS)
    return engine


def test_recent_requests_are_newest_first_and_limited(engine: Engine) -> None:
    rows = recent_requests(engine, limit=3)
    assert [(r["request_id"], r["attempt"]) for r in rows] == [("r2", 1), ("r1", 2), ("r1", 1)]
    assert rows[0]["created_at"] == HOUR_AGO + timedelta(minutes=5)
    assert rows[0]["created_at"].tzinfo is not None


def test_recent_requests_filter_by_time_and_status(engine: Engine) -> None:
    assert {r["request_id"] for r in recent_requests(engine, since=timedelta(days=1))} == {
        "r1",
        "r2",
    }
    assert [r["request_id"] for r in recent_requests(engine, status="incomplete")] == ["r4"]
    assert len(recent_requests(engine)) == 6


def test_recent_requests_rows_carry_every_column(engine: Engine) -> None:
    (row,) = recent_requests(engine, limit=1)
    assert list(row) == [c.name for c in T.columns]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"status": "fine"}, "use one of ok, error"), ({"limit": 0}, "give 1 or more")],
)
def test_recent_requests_rejects_bad_filters(engine: Engine, kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        recent_requests(engine, **kwargs)


def test_usage_by_provider_counts_calls_attempts_and_sums(engine: Engine) -> None:
    assert usage_summary(engine, since=timedelta(days=30), by="provider") == [
        {
            "group": "alpha",
            "requests": 3,  # r1 (its failed attempt), r2, r3
            "attempts": 3,
            "input_tokens": 1010,
            "output_tokens": 202,
            "cost_usd": 2.25,
        },
        {
            "group": "beta",
            "requests": 2,
            "attempts": 2,
            "input_tokens": 105,
            "output_tokens": 21,
            "cost_usd": 0.625,
        },
    ]


def test_usage_by_model_counts_each_call_once_per_group(engine: Engine) -> None:
    groups = usage_summary(engine, since=timedelta(hours=2), by="model")
    assert groups == [
        {
            "group": "m/two",
            "requests": 1,
            "attempts": 1,
            "input_tokens": 100,
            "output_tokens": 20,
            "cost_usd": 0.5,
        },
        {
            "group": "m/one",
            "requests": 2,
            "attempts": 2,
            "input_tokens": 10,
            "output_tokens": 2,
            "cost_usd": 0.25,
        },
    ]


def test_usage_by_day_groups_utc_days_oldest_first(engine: Engine) -> None:
    groups = usage_summary(engine, since=timedelta(days=60), by="day")
    expected: dict[str, dict[str, Any]] = {}
    for r in ROWS:
        day = expected.setdefault(
            r["created_at"].date().isoformat(),
            {"requests": set(), "attempts": 0, "in": 0, "out": 0, "cost": 0.0},
        )
        day["requests"].add(r["request_id"])
        day["attempts"] += 1
        day["in"] += r["input_tokens"] or 0
        day["out"] += r["output_tokens"] or 0
        day["cost"] += r["cost_usd"] or 0.0
    assert groups == [
        {
            "group": name,
            "requests": len(d["requests"]),
            "attempts": d["attempts"],
            "input_tokens": d["in"],
            "output_tokens": d["out"],
            "cost_usd": d["cost"],
        }
        for name, d in sorted(expected.items())
    ]


def test_usage_by_day_uses_the_utc_day_whatever_the_session_time_zone(postgres_url: str) -> None:
    make_engine(postgres_url).dispose()
    tokyo = create_engine(postgres_url, connect_args={"options": "-c TimeZone=Asia/Tokyo"})
    late = datetime.now(UTC).replace(hour=23, minute=30) - timedelta(days=1)
    with tokyo.begin() as conn:
        conn.execute(insert(T), [attempt("late", 1, late, cost_usd=1.0)])
    (group,) = usage_summary(tokyo, since=timedelta(days=3), by="day")
    assert group["group"] == late.date().isoformat()  # Tokyo is already on the next day
    tokyo.dispose()


def test_usage_of_an_empty_range_is_empty(engine: Engine) -> None:
    assert usage_summary(engine, since=timedelta(minutes=1), by="provider") == []


def test_usage_rejects_an_unknown_grouping(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="use one of day, model, provider"):
        usage_summary(engine, since=timedelta(days=1), by="week")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(weeks=2)),
        (" 7D ", timedelta(days=7)),
    ],
)
def test_parse_since_reads_number_and_unit(text: str, span: timedelta) -> None:
    assert parse_since(text) == span


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("24", "use a whole number and a unit"),
        ("1y", "use a whole number and a unit"),
        ("-3d", "use a whole number and a unit"),
        ("1.5h", "use a whole number and a unit"),
        ("0h", "more than zero"),
        ("99999999999w", "too long"),
    ],
)
def test_parse_since_rejects_other_text(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_since(text)


def test_keyset_pages_split_rows_with_the_same_timestamp(engine: Engine) -> None:
    # r1's two attempts share created_at; the id breaks the tie, so no row is lost or repeated.
    since = timedelta(days=30)
    seen: list[int] = []
    before = None
    for _ in range(10):  # bounded: 5 rows in pages of 1
        page = recent_requests(engine, since=since, limit=1, before=before)
        if not page:
            break
        seen += [row["id"] for row in page]
        before = (page[-1]["created_at"], page[-1]["id"])
    everything = [row["id"] for row in recent_requests(engine, since=since, limit=50)]
    assert seen == everything and len(seen) == 5
