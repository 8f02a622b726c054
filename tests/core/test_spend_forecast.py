"""Month-to-date, the month-end forecast and what-if repricing on a hand-made data set."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine

from gatehouse_core.catalog import Catalog, CatalogEntry
from gatehouse_core.db import make_engine
from gatehouse_core.errors import ConfigError
from gatehouse_core.spend import queries
from gatehouse_core.spend.forecast import month_forecast, project
from gatehouse_core.spend.periods import Period
from gatehouse_core.spend.whatif import reprice
from tests.spend_rows import request_row, store

UTC_ZONE = ZoneInfo("UTC")
NOW = datetime(2026, 11, 18, 12, tzinfo=UTC)  # 12.5 days before 1 December


def rows() -> list[dict]:
    out = [
        request_row("october", datetime(2026, 10, 31, 12, tzinfo=UTC), cost_usd=100.0),
        request_row("early", datetime(2026, 11, 2, 12, tzinfo=UTC), cost_usd=10.0),
        request_row("today", datetime(2026, 11, 18, 9, tzinfo=UTC), cost_usd=0.5),
    ]
    # The trailing 7 complete days, 11–17 November, cost 1, 2, … 7 (mean 4).
    for n, day in enumerate(range(11, 18), start=1):
        out.append(request_row(f"d{day}", datetime(2026, 11, day, 10, tzinfo=UTC), cost_usd=n))
    return out


@pytest.fixture
def engine(db_url: str) -> Engine:
    engine = make_engine(db_url)
    store(engine, rows())
    yield engine
    engine.dispose()


def test_forecast_is_month_to_date_plus_the_trailing_run_rate(engine: Engine) -> None:
    f = month_forecast(engine, NOW, UTC_ZONE)
    assert f.month == date(2026, 11, 1)
    assert f.month_to_date_usd == 38.5  # 10 + (1+…+7) + 0.5; October excluded
    assert f.today_usd == 0.5
    assert f.trailing == [(date(2026, 11, d), float(d - 10)) for d in range(11, 18)]
    assert f.run_rate_usd_per_day == 4.0
    assert f.days_left == 12.5
    assert f.forecast_usd == 38.5 + 4.0 * 12.5


def test_forecast_follows_the_display_time_zone(engine: Engine) -> None:
    # In Honolulu (UTC-10) it is 18 November 02:00; 31 October 12:00 UTC is still October there,
    # and the 2 a.m. local "today" holds nothing yet.
    f = month_forecast(engine, NOW, ZoneInfo("Pacific/Honolulu"))
    assert (f.month_to_date_usd, f.today_usd) == (38.5, 0.0)
    assert f.trailing[-1] == (date(2026, 11, 17), 7.5)  # 17 Nov 10:00 (7) and 18 Nov 09:00 UTC


def test_project_without_history_is_just_month_to_date() -> None:
    assert project(12.0, [], 10.0) == 12.0
    assert project(12.0, [2.0, 4.0], 0.5) == 13.5


SMALL = CatalogEntry(
    id="cheap/model", name="Cheap", context_length=None, prompt_price=1e-6,
    completion_price=4e-6, cache_read_price=2.5e-7, request_price=0.001, source="test",
    refreshed_at=None,
)  # fmt: skip


def test_whatif_reprices_prompt_cache_read_and_completion_separately(engine: Engine) -> None:
    period = Period(datetime(2026, 11, 1, tzinfo=UTC), NOW, UTC_ZONE)
    store(
        engine,
        [request_row("cached", datetime(2026, 11, 3, 5, tzinfo=UTC), model="m/two",
                     input_tokens=1000, cached_tokens=600, output_tokens=50, cost_usd=0.25)],
    )  # fmt: skip
    result = reprice(queries.groups(engine, period, "model"), SMALL, SMALL.id)
    by_group = {r.group: r for r in result.rows}
    two = by_group["m/two"]
    assert two.prompt_usd == pytest.approx(400 * 1e-6)
    assert two.cache_read_usd == pytest.approx(600 * 2.5e-7)
    assert two.completion_usd == pytest.approx(50 * 4e-6)
    assert two.request_usd == pytest.approx(0.001)
    assert two.difference_usd == pytest.approx(two.whatif_usd - 0.25)
    one = by_group["m/one"]  # 9 calls of 100 in / 10 out each
    assert one.calls == 9 and one.actual_usd == 38.5
    assert one.whatif_usd == pytest.approx(9 * (100 * 1e-6 + 10 * 4e-6 + 0.001))
    assert result.actual_usd == 38.75
    assert result.difference_usd == pytest.approx(result.whatif_usd - 38.75)


def test_whatif_with_catalog_prices_and_unknown_models(engine: Engine) -> None:
    catalog = Catalog(engine)
    groups = queries.groups(
        engine, Period(datetime(2026, 11, 1, tzinfo=UTC), NOW, UTC_ZONE), "model"
    )
    sonnet = reprice(
        groups, catalog.entry("anthropic/claude-sonnet-4"), "anthropic/claude-sonnet-4"
    )
    assert sonnet.whatif_usd == pytest.approx(9 * (100 * 3e-6 + 10 * 15e-6))
    with pytest.raises(ConfigError, match="not in the model catalog"):
        reprice(groups, catalog.entry("no/such-model"), "no/such-model")
    variable = CatalogEntry(**{**SMALL.__dict__, "prompt_price": None})
    with pytest.raises(ConfigError, match="no fixed price"):
        reprice(groups, variable, "cheap/model")
