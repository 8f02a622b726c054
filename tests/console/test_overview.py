"""The Overview page: every role's home, with month-to-date, forecast, today and the 7-day view."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from gatehouse_core.db import make_engine
from gatehouse_core.spend.alerts import Alerts
from gatehouse_core.spend.budget_rules import BudgetStore, make_rule
from gatehouse_core.ui.format import usd
from gatehouse_core.ui.overview import budget_readout
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


# ---- budgets and alerts ------------------------------------------------------------------


def test_the_global_budget_line_against_month_to_date_and_forecast(
    history: None, app_as: Callable[[str], AppTest]
) -> None:
    BudgetStore(make_engine()).set(make_rule("global", None, 2.0), actor="seed")
    at = app_as("viewer")
    month_start = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    to_date = sum(r["cost_usd"] or 0 for r in ROWS if r["created_at"] >= month_start)
    assert metrics(at)["Global budget"] == f"{usd(to_date)} of $2.00"
    (budget,) = [m for m in at.metric if m.label == "Global budget"]
    assert budget.proto.delta == f"{to_date / 2.0:.0%} used"
    (bar,) = at.get("progress")
    # st.progress keeps whole percent by truncating (int(ratio * 100)), unlike the rounded text.
    assert bar.proto.value == int(min(to_date / 2.0, 1.0) * 100)
    forecast = metrics(at)["Month-end forecast"]
    lines = [c.value for c in at.caption] + [w.value for w in at.warning]
    assert any(line.startswith(f"Month-end forecast {forecast} = ") for line in lines)


def test_budget_readout_arithmetic() -> None:
    assert budget_readout(3.0, 12.0, 10.0) == (
        "$3.00 of $10.00",
        "30% used",
        "Month-end forecast $12.00 = 120% of the budget, over the budget by $2.00.",
    )
    assert budget_readout(1.0, 4.0, 10.0)[2].endswith("$6.00 under the budget.")


def test_no_budget_line_without_a_global_budget(
    history: None, app_as: Callable[[str], AppTest]
) -> None:
    assert "Global budget" not in metrics(app_as("viewer"))
    BudgetStore(make_engine()).set(make_rule("provider", "alpha", 5.0), actor="seed")
    at = app_as("operator")
    assert "Global budget" not in metrics(at)
    assert any("1 scoped budget(s), no global budget" in c.value for c in at.caption)


def test_alerts_listed_unacknowledged_first(app_as: Callable[[str], AppTest]) -> None:
    alerts = Alerts(make_engine())
    start = NOW.replace(minute=0, second=0, microsecond=0)
    seen = alerts.fire("hourly_spend", "hourly_spend", 50, 60, start - timedelta(hours=1), start,
                       "seen one")  # fmt: skip
    alerts.fire("hourly_spend", "hourly_spend", 50, 70, start, NOW, "open one")
    assert seen is not None
    alerts.acknowledge(seen.id, actor="seed")
    at = app_as("viewer")
    listed = [f for f in at.dataframe if "Acknowledged" in f.value.columns]
    (table,) = listed
    assert list(table.value["Alert"]) == ["open one", "seen one"]
    assert list(table.value["Acknowledged"]) == ["no", "yes"]
