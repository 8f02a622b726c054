"""The Overview page: every role's home, with month-to-date, forecast, today and the 7-day view."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from streamlit.testing.v1 import AppTest

from gatehouse_core.db import make_engine
from tests.console.spend_helpers import figure
from tests.spend_rows import known_dataset, store

NOW = datetime.now(UTC)
ROWS = known_dataset(NOW)


@pytest.fixture
def history() -> None:
    store(make_engine(), ROWS)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_every_role_lands_on_the_overview(
    history: None, app_as: Callable[[str], AppTest], role: str
) -> None:
    at = app_as(role)
    assert not at.exception
    assert [t.value for t in at.title] == ["Overview"]
    shown = metrics(at)
    assert shown["Today"] == "$0.50"
    assert shown["Calls"] == "5"
    assert shown["Error rate"] == "20.0%"
    assert shown["Fallback rate"] == "20.0%"


def test_month_to_date_and_forecast(history: None, app_as: Callable[[str], AppTest]) -> None:
    at = app_as("viewer")
    month_start = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    to_date = sum(r["cost_usd"] or 0 for r in ROWS if r["created_at"] >= month_start)
    (label,) = [m for m in metrics(at) if m.startswith("Spend ")]
    assert label == f"Spend {NOW:%B} to date"
    assert metrics(at)[label] == f"${to_date:,.2f}"
    assert "Month-end forecast" in metrics(at)


def test_sparkline_covers_30_days_and_the_top_tables_rank_by_cost(
    history: None, app_as: Callable[[str], AppTest]
) -> None:
    at = app_as("viewer")
    (line,) = figure(at, "overview_sparkline")["data"]
    assert len(line["x"]) == 30
    assert sum(line["y"]) == 3.75
    assert line["x"][-1] == NOW.date().isoformat()
    models, providers = at.dataframe[0].value, at.dataframe[1].value
    assert list(models["Model"]) == ["m/one", "m/two"]
    assert list(models["Cost"]) == ["$2.75", "$1.00"]
    assert list(providers["Provider"]) == ["alpha", "beta"]


def test_an_empty_database_shows_zeros_not_errors(app_as: Callable[[str], AppTest]) -> None:
    at = app_as("viewer")
    assert not at.exception and not at.error
    assert metrics(at)["Today"] == "$0"
    assert metrics(at)["Error rate"] == "—"
    assert [i.value for i in at.info] == ["No calls in the last 30 days."] * 2
    assert "No calls in the last 24 hours." in [c.value for c in at.caption]


def test_a_bad_time_zone_setting_is_explained(
    app_as: Callable[[str], AppTest], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEHOUSE_TIMEZONE", "Nowhere/Town")
    at = app_as("viewer")
    assert not at.exception
    assert "GATEHOUSE_TIMEZONE='Nowhere/Town' is not an IANA time zone" in at.error[0].value


def test_provider_health_covers_the_last_24_hours(
    history: None, app_as: Callable[[str], AppTest]
) -> None:
    at = app_as("viewer")
    health = at.dataframe[2].value  # after the two top-5 tables
    assert list(health["Provider"]) == ["alpha"]  # only today's call is that recent
    assert (health["Calls"][0], health["Failed calls"][0]) == (1, "0.0%")
