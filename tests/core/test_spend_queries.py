"""Dashboard queries over the hourly rollups (raw rows for trace), on both databases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

from gatehouse_core.db import make_engine
from gatehouse_core.errors import ConfigError
from gatehouse_core.spend import queries
from gatehouse_core.spend.buckets import bucket_index, percentile
from gatehouse_core.spend.periods import Period, days_between, preset
from gatehouse_core.spend.queries import Filters
from tests.spend_rows import request_row, store

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
WEEK = Period(datetime(2026, 11, 10, tzinfo=UTC), datetime(2026, 11, 17, tzinfo=UTC), UTC_ZONE)
DAY1 = datetime(2026, 11, 10, 9, tzinfo=UTC)
DAY2 = datetime(2026, 11, 12, 14, tzinfo=UTC)
LATE = datetime(2026, 11, 10, 23, 30, tzinfo=UTC)  # already 11 November in Berlin
BEFORE = datetime(2026, 11, 5, 8, tzinfo=UTC)  # the previous week

# Costs are binary fractions so sums are exact on SQLite and PostgreSQL alike.
ROWS = [
    # r1 failed on alpha, then beta answered it: one call, in beta's group, a fallback.
    request_row("r1", DAY1, 1, status="error", http_status=503, final_attempt=False,
                input_tokens=None, output_tokens=None, cost_usd=None, latency_ms=30.0),
    request_row("r1", DAY1, 2, provider="beta", model="m/two", fallback=True, cost_usd=1.0,
                input_tokens=200, output_tokens=20, latency_ms=900.0, workflow_id="wf-a"),
    request_row("r2", DAY1, latency_ms=120.0, ttft_ms=40.0, source="api", actor="svc",
                workflow_id="wf-a"),
    request_row("r3", DAY2, cost_usd=2.0, input_tokens=1000, cached_tokens=400,
                output_tokens=100, latency_ms=2500.0, workflow_id="wf-b", trace_id="t-1"),
    request_row("r4", DAY2, status="error", http_status=500, cost_usd=None, input_tokens=None,
                output_tokens=None, latency_ms=80.0),
    request_row("r5", LATE, cost_usd=0.25, input_tokens=10, output_tokens=1, latency_ms=300.0),
    request_row("old", BEFORE, cost_usd=4.0, input_tokens=50, output_tokens=5, latency_ms=700.0),
]  # fmt: skip


@pytest.fixture
def engine(db_url: str) -> Engine:
    engine = make_engine(db_url)
    store(engine, ROWS)
    yield engine
    engine.dispose()


def test_totals_count_calls_once_attempts_per_row_and_sum_cost(engine: Engine) -> None:
    usage = queries.totals(engine, WEEK)
    assert (usage.calls, usage.attempts, usage.error_calls, usage.fallback_calls) == (5, 6, 1, 1)
    assert usage.cost_usd == 3.75
    assert (usage.input_tokens, usage.output_tokens, usage.cached_tokens) == (1310, 131, 400)
    assert usage.error_rate == 0.2 and usage.fallback_rate == 0.2


def test_change_is_against_the_previous_period_of_equal_length(engine: Engine) -> None:
    comparison = queries.compare(engine, WEEK)
    assert comparison.previous.cost_usd == 4.0 and comparison.previous.calls == 1
    assert comparison.change("cost_usd") == pytest.approx(-0.0625)
    assert comparison.change("calls") == 4.0
    assert comparison.change("error_rate") is None  # no errors before: no base to compare


def test_groups_by_provider_put_the_call_in_its_final_attempts_group(engine: Engine) -> None:
    found = {g.name: g for g in queries.groups(engine, WEEK, "provider")}
    assert [g.name for g in queries.groups(engine, WEEK, "provider")] == ["alpha", "beta"]
    alpha, beta = found["alpha"].usage, found["beta"].usage
    assert (alpha.calls, alpha.attempts, alpha.cost_usd) == (4, 5, 2.75)
    assert (beta.calls, beta.attempts, beta.fallback_calls, beta.cost_usd) == (1, 1, 1, 1.0)
    assert found["alpha"].share == pytest.approx(2.75 / 3.75)


def test_top_n_and_groups_by_status_source_and_actor(engine: Engine) -> None:
    assert [g.name for g in queries.groups(engine, WEEK, "model", limit=1)] == ["m/one"]
    status = {g.name: g.usage.calls for g in queries.groups(engine, WEEK, "status")}
    assert status == {"ok": 4, "error": 1}
    source = {g.name: g.usage.calls for g in queries.groups(engine, WEEK, "source")}
    assert source == {"": 4, "api": 1}
    actor = queries.groups(engine, WEEK, "actor", Filters(actor="svc"))
    assert [(g.name, g.usage.calls, g.usage.cost_usd) for g in actor] == [("svc", 1, 0.5)]


def test_percentiles_come_from_the_histograms(engine: Engine) -> None:
    usage = queries.totals(engine, WEEK)
    latencies = [30.0, 900.0, 120.0, 2500.0, 80.0, 300.0]
    counts = [0] * 16
    for ms in latencies:
        counts[bucket_index(ms)] += 1
    assert usage.latency_hist == tuple(counts)
    assert usage.p50_ms == percentile(counts, 0.5) == 200.0
    assert usage.p95_ms == percentile(counts, 0.95) == pytest.approx(2700.0)


def test_daily_series_fills_every_day_and_groups(engine: Engine) -> None:
    s = queries.series(engine, WEEK, by="model")
    assert s.buckets == [date(2026, 11, d) for d in range(10, 17)]
    assert s.groups == ["m/one", "m/two"]
    assert s.column("m/one", "cost_usd") == [0.75, 0, 2.0, 0, 0, 0, 0]
    assert s.column("m/two", "calls") == [1, 0, 0, 0, 0, 0, 0]


def test_days_begin_at_midnight_of_the_display_time_zone(engine: Engine) -> None:
    utc_days = queries.daily_costs(
        engine, days_between(date(2026, 11, 10), date(2026, 11, 11), UTC_ZONE)
    )
    berlin = days_between(date(2026, 11, 10), date(2026, 11, 11), BERLIN)
    assert berlin.start == datetime(2026, 11, 9, 23, tzinfo=UTC)
    assert utc_days == [(date(2026, 11, 10), 1.75), (date(2026, 11, 11), 0.0)]
    assert queries.daily_costs(engine, berlin) == [
        (date(2026, 11, 10), 1.5),
        (date(2026, 11, 11), 0.25),
    ]


def test_a_half_hour_zone_counts_the_boundary_hour_in_the_day_it_starts(db_url: str) -> None:
    engine = make_engine(db_url)
    kolkata = ZoneInfo("Asia/Kolkata")  # UTC+5:30: local midnight is 18:30 UTC
    store(engine, [request_row("k", datetime(2026, 11, 10, 18, 40, tzinfo=UTC), cost_usd=1.0)])
    days = days_between(date(2026, 11, 10), date(2026, 11, 11), kolkata)
    # 18:40 UTC is 00:10 on the 11th in Kolkata, but its bucket (18:00 UTC) starts on the 10th.
    assert queries.daily_costs(engine, days) == [
        (date(2026, 11, 10), 1.0),
        (date(2026, 11, 11), 0.0),
    ]
    engine.dispose()


def test_hourly_series_lists_utc_hours(engine: Engine) -> None:
    day = Period(
        datetime(2026, 11, 10, 8, tzinfo=UTC), datetime(2026, 11, 10, 11, tzinfo=UTC), UTC_ZONE
    )
    s = queries.series(engine, day, step="hour")
    assert s.buckets == [datetime(2026, 11, 10, h, tzinfo=UTC) for h in (8, 9, 10)]
    assert [s.total(b).attempts for b in s.buckets] == [0, 3, 0]


def test_series_folds_groups_beyond_the_top_into_other(engine: Engine) -> None:
    s = queries.series(engine, WEEK, by="model", top=1)
    assert s.groups == ["m/one", queries.OTHER]
    assert sum(s.column(queries.OTHER, "cost_usd")) == 1.0


def test_grouping_by_workflow_reads_the_workflow_rollup(engine: Engine) -> None:
    found = {g.name: g.usage for g in queries.groups(engine, WEEK, "workflow")}
    assert set(found) == {"", "wf-a", "wf-b"}
    assert (found["wf-a"].calls, found["wf-a"].attempts, found["wf-a"].cost_usd) == (2, 2, 1.5)
    assert found["wf-a"].fallback_calls == 1
    assert (found["wf-b"].calls, found["wf-b"].cost_usd, found["wf-b"].cached_tokens) == (
        1,
        2.0,
        400,
    )
    # r1's failed first attempt has no workflow: it is an attempt in "", not a call.
    assert (found[""].calls, found[""].attempts, found[""].error_calls) == (2, 3, 1)
    assert queries.totals(engine, WEEK, Filters(workflow_id="wf-a")).latency_hist == tuple(
        1 if i in (bucket_index(900.0), bucket_index(120.0)) else 0 for i in range(16)
    )
    narrow = Period(DAY2, DAY2 + timedelta(hours=1), UTC_ZONE)
    assert [g.name for g in queries.groups(engine, narrow, "workflow")] == ["wf-b", ""]
    # A workflow filter with a rollup filter beside it, and a series by workflow in SQL days.
    both = Filters(workflow_id="wf-a", provider="alpha")
    assert (
        queries.totals(engine, WEEK, both).calls,
        queries.totals(engine, WEEK, both).cost_usd,
    ) == (
        1,
        0.5,
    )
    s = queries.series(engine, WEEK, by="workflow")
    assert sum(s.column("wf-b", "cost_usd")) == 2.0 and s.get(date(2026, 11, 12), "wf-b").calls == 1


def test_raw_and_rollup_agree_on_the_same_range(engine: Engine) -> None:
    rollup = queries.totals(engine, WEEK)
    raw = sum((g.usage for g in queries.groups(engine, WEEK, "trace")), queries.Usage())
    assert raw == rollup
    by_workflow = sum((g.usage for g in queries.groups(engine, WEEK, "workflow")), queries.Usage())
    assert by_workflow == rollup
    for g in queries.groups(engine, WEEK, "workflow"):  # each workflow: its rollup == its raw rows
        raw_filter = Filters(workflow_id=g.name, trace_id=("", "t-1"))  # a trace filter reads raw
        assert queries.totals(engine, WEEK, raw_filter) == g.usage


def test_distinct_values_list_a_dimension_in_the_range(engine: Engine) -> None:
    assert queries.distinct_values(engine, WEEK, "provider") == ["alpha", "beta"]
    assert queries.distinct_values(engine, WEEK, "source") == ["", "api"]
    every = queries.dimension_values(engine, WEEK)
    assert set(every) == set(queries.ROLLUP_GROUPINGS)
    for name, values in every.items():
        assert values == queries.distinct_values(engine, WEEK, name)
    narrow = Period(DAY2, DAY2 + timedelta(hours=1), UTC_ZONE)
    assert queries.dimension_values(engine, narrow)["status"] == ["error", "ok"]


def test_empty_range_gives_zero_usage_and_no_groups(engine: Engine) -> None:
    empty = Period(datetime(2020, 1, 1, tzinfo=UTC), datetime(2020, 1, 2, tzinfo=UTC), UTC_ZONE)
    assert queries.totals(engine, empty) == queries.Usage()
    assert queries.groups(engine, empty, "model") == []
    assert queries.totals(engine, empty).p95_ms is None


def test_unknown_grouping_is_a_clear_error(engine: Engine) -> None:
    with pytest.raises(ConfigError, match="cannot group by 'week'; use one of model, provider"):
        queries.groups(engine, WEEK, "week")


def test_presets_start_at_local_midnight_and_month_starts() -> None:
    now = datetime(2026, 11, 18, 15, 20, tzinfo=UTC)
    assert preset("today", now, BERLIN).start == datetime(2026, 11, 17, 23, tzinfo=UTC)
    assert preset("7d", now, UTC_ZONE).start == datetime(2026, 11, 12, tzinfo=UTC)
    assert preset("month", now, UTC_ZONE).start == datetime(2026, 11, 1, tzinfo=UTC)
    last = preset("last_month", now, BERLIN)
    assert (last.start, last.end) == (
        datetime(2026, 9, 30, 22, tzinfo=UTC),  # 1 October, summer time
        datetime(2026, 10, 31, 23, tzinfo=UTC),  # 1 November, winter time
    )
    assert WEEK.previous() == Period(datetime(2026, 11, 3, tzinfo=UTC), WEEK.start, UTC_ZONE)


def test_a_range_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ConfigError, match="the last day .* is before the first day"):
        days_between(date(2026, 11, 2), date(2026, 11, 1), UTC_ZONE)


def test_today_at_the_stroke_of_midnight_is_an_empty_period(engine: Engine) -> None:
    midnight = datetime(2026, 11, 12, tzinfo=UTC)
    today = preset("today", midnight, UTC_ZONE)
    assert today.length == timedelta(0) and today.days() == []
    assert queries.compare(engine, today).current == queries.Usage()
    with pytest.raises(ConfigError, match="ends .* before it starts"):
        Period(midnight, midnight - timedelta(hours=1), UTC_ZONE)


def test_raw_grouping_counts_marked_and_unmarked_calls_alike(db_url: str) -> None:
    """Rows from before 0005 (final_attempt NULL) are counted once per request id; marked
    rows are counted as final rows, without a DISTINCT over the range."""
    engine = make_engine(db_url)
    legacy = dict(final_attempt=None, fallback=None, trace_id="t-old")
    store(
        engine,
        [
            request_row("L1", DAY1, 1, status="error", http_status=502, cost_usd=None, **legacy),
            request_row("L1", DAY1, 2, **legacy),
            request_row("L2", DAY2, 1, status="error", http_status=500, cost_usd=None, **legacy),
            request_row("M1", DAY1, 1, status="error", final_attempt=False, trace_id="t-old"),
            request_row("M1", DAY1, 2, trace_id="t-old"),
            request_row("M2", DAY2, 1, status="error", http_status=500, trace_id="t-old"),
        ],
    )
    (group,) = queries.groups(engine, WEEK, "trace")
    assert (group.usage.calls, group.usage.attempts) == (4, 6)
    # M1's failed first attempt is not a failed call; M2's final attempt is, and so is L2.
    assert group.usage.error_calls >= 2 and group.usage.fallback_calls == 0
    engine.dispose()


@pytest.mark.parametrize("by", ["model", "workflow", "trace"])
def test_groups_without_percentiles_keep_every_other_figure(engine: Engine, by: str) -> None:
    full = queries.groups(engine, WEEK, by)
    lean = queries.groups(engine, WEEK, by, percentiles=False)
    assert [g.name for g in lean] == [g.name for g in full]
    for a, b in zip(full, lean, strict=True):
        assert (b.usage.calls, b.usage.cost_usd, b.usage.input_tokens, b.share) == (
            a.usage.calls,
            a.usage.cost_usd,
            a.usage.input_tokens,
            a.share,
        )
        assert b.usage.p50_ms is None and not any(b.usage.latency_hist)
    assert any(a.usage.p50_ms is not None for a in full)
    days = queries.daily_costs(engine, WEEK)
    assert sum(cost for _, cost in days) == queries.totals(engine, WEEK).cost_usd


@pytest.mark.parametrize("by", [None, "model", "workflow", "trace"])
def test_a_series_without_ttft_keeps_the_latency_histogram(engine: Engine, by: str | None) -> None:
    full = queries.series(engine, WEEK, by=by, step="hour" if by == "trace" else "day")
    lean = queries.series(engine, WEEK, by=by, step="hour" if by == "trace" else "day", ttft=False)
    assert lean.groups == full.groups and lean.buckets == full.buckets
    for key, usage in full.values.items():
        assert lean.values[key].latency_hist == usage.latency_hist
        assert lean.values[key].cost_usd == usage.cost_usd and not any(lean.values[key].ttft_hist)
    assert any(any(u.ttft_hist) for u in full.values.values())


def test_a_one_day_series_groups_by_that_day(engine: Engine) -> None:
    """A single day's series still groups in SQL (a bare constant would be a column position)."""
    day = days_between(date(2026, 11, 12), date(2026, 11, 12), UTC_ZONE)
    s = queries.series(engine, day, by="model", step="day")
    assert s.buckets == [date(2026, 11, 12)]
    assert s.total(date(2026, 11, 12)).cost_usd == 2.0
    assert queries.daily_costs(engine, day) == [(date(2026, 11, 12), 2.0)]


def test_postgres_aggregations_get_memory_to_hash_in_for_their_transaction_only(
    postgres_url: str,
) -> None:
    """Under the default 4 MB work_mem PostgreSQL sorted a 30-day series on disk."""
    engine = make_engine(postgres_url)
    (row,) = queries._fetch(engine, select(func.current_setting("work_mem").label("mem")))
    assert row["mem"] == "32MB"
    with engine.connect() as conn:  # the same pooled connection, a new transaction
        assert conn.execute(select(func.current_setting("work_mem"))).scalar_one() != "32MB"
    engine.dispose()
