"""Demo data: the history has the promised shape, goes through the audit insert (rollups
maintained), and `delete` leaves no row or rollup contribution behind."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from gatehouse_core.audit import _insert_batch
from gatehouse_core.catalog import Catalog
from gatehouse_core.db import make_engine
from gatehouse_core.errors import ConfigError
from gatehouse_core.schema import LLMRequest, UsageHourly
from gatehouse_core.spend.demo import (
    DEMO_SOURCE,
    DemoProgress,
    delete_demo_data,
    generate_rows,
    write_demo_data,
)
from tests.core.spend_data import (
    NOW,
    assert_rollups_match_raw,
    assert_same,
    random_rows,
    raw_rollup,
    stored_rollup,
)


@pytest.fixture
def catalog(sqlite_url: str) -> Iterator[Catalog]:
    engine = make_engine(sqlite_url)
    yield Catalog(engine, ttl=float("inf"))
    engine.dispose()


@pytest.fixture
def history(catalog: Catalog) -> list[dict[str, Any]]:
    return list(generate_rows(days=14, rows=6000, seed=7, now=NOW, catalog=catalog))


def test_demo_round_trip_leaves_no_row_or_rollup_contribution(engine: Engine) -> None:
    real = random_rows(1, 200, prefix="real")
    assert _insert_batch(engine, real, dedup=False)[1] == []
    rollup_before, raw_before = stored_rollup(engine), raw_rollup(engine)
    steps: list[DemoProgress] = []
    written = write_demo_data(
        engine, days=3, rows=2500, seed=1, now=NOW, batch_rows=400, progress=steps.append
    )
    assert written.rows == 2500
    assert steps[-1] == DemoProgress(written=2500, total=2500) and len(steps) > 3
    assert_rollups_match_raw(engine)  # maintained as it was written
    assert stored_rollup(engine) != rollup_before
    deleted = delete_demo_data(engine, batch_rows=300)
    assert deleted.rows == 2500 and deleted.buckets > 0
    assert_same(stored_rollup(engine), rollup_before)
    assert raw_rollup(engine) == raw_before


def test_demo_data_refuses_to_write_twice(engine: Engine) -> None:
    write_demo_data(engine, days=1, rows=50, seed=1, now=NOW)
    with pytest.raises(ConfigError, match="demo-data --delete"):
        write_demo_data(engine, days=1, rows=50, seed=1, now=NOW)


@pytest.mark.parametrize(("days", "rows"), [(0, 10), (1, 0), (4000, 10)])
def test_out_of_range_sizes_are_refused(sqlite_url: str, days: int, rows: int) -> None:
    engine = make_engine(sqlite_url)
    with pytest.raises(ConfigError, match="out of range"):
        write_demo_data(engine, days=days, rows=rows)
    engine.dispose()


def test_history_has_exactly_the_rows_asked_for_within_the_days(
    history: list[dict[str, Any]],
) -> None:
    assert len(history) == 6000
    end = NOW.replace(minute=0)
    assert all(
        end - timedelta(days=14) <= r["created_at"] < end + timedelta(hours=1) for r in history
    )
    assert {r["source"] for r in history} == {DEMO_SOURCE}


def test_attempt_chains_are_marked_like_the_gateway_marks_them(
    history: list[dict[str, Any]],
) -> None:
    chains: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in history:
        chains[r["request_id"]].append(r)
    kinds = Counter()
    for rows in chains.values():
        assert [r["attempt"] for r in rows] == list(range(1, len(rows) + 1))
        assert [r["final_attempt"] for r in rows] == [False] * (len(rows) - 1) + [True]
        assert all(r["status"] == "error" for r in rows[:-1])
        last = rows[-1]
        assert last["fallback"] == (last["provider"] != rows[0]["provider"])
        kinds["retried"] += len(rows) > 1 and not last["fallback"]
        kinds["fell back"] += last["fallback"]
        kinds["failed"] += last["status"] == "error"
        kinds["cut"] += last["status"] == "incomplete"
    assert all(kinds[k] > 0 for k in ("retried", "fell back", "failed", "cut")), kinds


def test_costs_come_from_catalog_prices(history: list[dict[str, Any]], catalog: Catalog) -> None:
    priced = [r for r in history if r["cost_usd"] is not None]
    assert len(priced) > len(history) * 0.9
    for r in priced[:500]:
        expected = catalog.estimate_cost(
            r["model"], r["input_tokens"], r["output_tokens"], r["cached_tokens"]
        )
        assert r["cost_usd"] == pytest.approx(expected, abs=1e-10)
    assert {r["cost_source"] for r in priced} == {"provider", "estimated"}


def test_history_has_variety_and_a_weekly_rhythm(history: list[dict[str, Any]]) -> None:
    for column, at_least in (("provider", 3), ("model", 8), ("actor", 6), ("workflow_id", 8)):
        assert len({r[column] for r in history}) >= at_least, column
    per_day = Counter(r["created_at"].date() for r in history)
    weekday = [n for d, n in per_day.items() if d.weekday() < 5]
    weekend = [n for d, n in per_day.items() if d.weekday() >= 5]
    assert sum(weekend) / len(weekend) < 0.6 * sum(weekday) / len(weekday)
    errors = [r for r in history if r["status"] == "error"]
    assert {r["http_status"] for r in errors} >= {429, 502, 402}


def test_the_same_seed_gives_the_same_history(catalog: Catalog) -> None:
    def run(seed: int) -> list[dict[str, Any]]:
        return list(generate_rows(days=2, rows=300, seed=seed, now=NOW, catalog=catalog))

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_several_worker_processes_write_the_same_history(engine: Engine, catalog: Catalog) -> None:
    """Each hour has its own random stream, so two processes write what one would."""
    result = write_demo_data(engine, days=2, rows=1500, seed=9, now=NOW, workers=2)
    expected = list(generate_rows(days=2, rows=1500, seed=9, now=NOW, catalog=catalog))
    assert (result.rows, result.calls) == (1500, sum(r["final_attempt"] for r in expected))
    table = LLMRequest.__table__
    with engine.connect() as conn:
        stored = conn.execute(select(table.c.request_id, table.c.attempt)).all()
    assert sorted(stored) == sorted((r["request_id"], r["attempt"]) for r in expected)
    assert_rollups_match_raw(engine)


def test_demo_rows_without_rollups_still_count_as_present(engine: Engine) -> None:
    write_demo_data(engine, days=1, rows=30, seed=1, now=NOW)
    with engine.begin() as conn:
        conn.execute(UsageHourly.__table__.delete())  # e.g. before a rebuild
    with pytest.raises(ConfigError, match="already holds demo data"):
        write_demo_data(engine, days=1, rows=30, seed=1, now=NOW)
