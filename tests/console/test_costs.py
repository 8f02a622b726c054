"""The Costs page: charts, the groups table and its CSV, links to Requests, what-if, roles."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert
from streamlit.testing.v1 import AppTest

from gatehouse_core.db import make_engine
from gatehouse_core.schema import Reconciliation
from tests.console.spend_helpers import download, figure, traces
from tests.spend_rows import known_dataset, store


@pytest.fixture
def history() -> None:
    store(make_engine(), known_dataset(datetime.now(UTC)))


def open_costs(app_as: Callable[[str], AppTest], role: str = "viewer") -> AppTest:
    at = app_as(role).switch_page("pages/costs.py").run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_every_role_sees_cost_per_day_stacked_by_model(
    history: None, app_as: Callable[[str], AppTest], role: str
) -> None:
    at = open_costs(app_as, role)
    assert [t.value for t in at.title] == ["Costs"]
    cost = traces(at, "costs_chart_cost")
    assert set(cost) == {"m/one", "m/two"}
    assert all(t["type"] == "bar" for t in cost.values())
    assert sum(cost["m/one"]["y"]) == 2.75 and sum(cost["m/two"]["y"]) == 1.0
    assert len(cost["m/one"]["x"]) == 30  # every day of the range, empty ones too


def test_the_other_charts_hold_tokens_share_latency_and_rates(
    history: None, app_as: Callable[[str], AppTest]
) -> None:
    at = open_costs(app_as)
    tokens = traces(at, "costs_chart_tokens")
    assert sum(tokens["Input tokens"]["y"]) == 100 + 300 + 100 + 1000
    assert sum(tokens["Output tokens"]["y"]) == 10 + 30 + 10 + 100
    (pie,) = traces(at, "costs_chart_share").values()
    assert dict(zip(pie["labels"], pie["values"], strict=True)) == {"m/one": 2.75, "m/two": 1.0}
    assert set(traces(at, "costs_chart_latency")) == {"p50", "p95"}
    rates = traces(at, "costs_chart_rates")
    assert set(rates) == {"Error rate", "Fallback rate"}
    assert max(v for v in rates["Fallback rate"]["y"] if v is not None) == 50.0  # 1 of 2 calls


def test_groups_table_links_to_requests_and_downloads_as_csv(
    history: None, app_as: Callable[[str], AppTest]
) -> None:
    at = open_costs(app_as)
    table = at.dataframe[0].value
    assert list(table["Model"]) == ["m/one", "m/two"]
    assert list(table["Calls"]) == [4, 1]
    assert table["Requests"][0].startswith("/audit-log?model=m%2Fone&from=")
    rows = list(csv.DictReader(io.StringIO(download(at, "costs_csv").decode())))
    assert [(r["Model"], r["Calls"], r["Cost"], r["Share"]) for r in rows] == [
        ("m/one", "4", "2.75", "73.33"),
        ("m/two", "1", "1.0", "26.67"),
    ]
    assert "Requests" not in rows[0]


def test_grouping_by_provider_and_workflow(history: None, app_as: Callable[[str], AppTest]) -> None:
    at = open_costs(app_as)
    at = at.selectbox(key="costs_by").set_value("provider").run()
    assert set(traces(at, "costs_chart_cost")) == {"alpha", "beta"}
    at = at.selectbox(key="costs_by").set_value("workflow").run()
    table = at.dataframe[0].value
    assert dict(zip(table["Workflow"], table["Calls"], strict=True)) == {"(none)": 4, "wf-1": 1}


def test_a_filter_narrows_every_figure(history: None, app_as: Callable[[str], AppTest]) -> None:
    at = open_costs(app_as)
    at = at.multiselect(key="costs_filter_source").set_value(["api"]).run()
    assert not at.exception
    assert list(at.dataframe[0].value["Model"]) == ["m/one"]
    assert sum(traces(at, "costs_chart_cost")["m/one"]["y"]) == 0.25


def test_a_filter_takes_several_values_and_the_link_carries_them(
    history: None, app_as: Callable[[str], AppTest]
) -> None:
    at = open_costs(app_as)
    assert at.multiselect(key="costs_filter_source").options == ["(none)", "api"]
    at = at.multiselect(key="costs_filter_source").set_value(["api", "(none)"]).run()
    table = at.dataframe[0].value
    assert dict(zip(table["Model"], table["Cost"], strict=True)) == {"m/one": 2.75, "m/two": 1.0}
    at = at.multiselect(key="costs_filter_status").set_value(["error"]).run()
    table = at.dataframe[0].value
    assert list(table["Model"]) == ["m/one"] and list(table["Attempts"]) == [2]
    assert "source=api%2C%28none%29&status=error&model=m%2Fone" in table["Requests"][0]
    at = at.multiselect(key="costs_filter_status").set_value([]).run()
    at = at.multiselect(key="costs_filter_model").set_value(["m/two"]).run()
    assert list(at.dataframe[0].value["Model"]) == ["m/two"]


def test_whatif_reprices_the_range_on_another_model(
    history: None, app_as: Callable[[str], AppTest]
) -> None:
    at = open_costs(app_as)
    at = at.selectbox(key="costs_whatif_model").set_value("anthropic/claude-sonnet-4").run()
    assert not at.exception
    whatif = at.dataframe[1].value
    assert list(whatif["Model"]) == ["m/one", "m/two"]
    # m/one: 1,200 in and 120 out at $3 / $15 per million: 0.0036 + 0.0018.
    assert whatif["On anthropic/claude-sonnet-4"][0] == "$0.0054"
    labels = [m.label for m in at.metric]
    assert "On anthropic/claude-sonnet-4" in labels and "Month-end forecast" in labels


def test_an_empty_range_says_so(app_as: Callable[[str], AppTest]) -> None:
    at = open_costs(app_as)
    assert [i.value for i in at.info] == ["No calls in this range."]


def test_custom_days_and_a_reversed_range(history: None, app_as: Callable[[str], AppTest]) -> None:
    at = open_costs(app_as)
    at = at.selectbox(key="costs_range").set_value("custom").run()
    today = datetime.now(UTC).date()
    at = at.date_input(key="costs_from").set_value(today).run()
    at = at.date_input(key="costs_to").set_value(today).run()
    assert list(at.dataframe[0].value["Calls"]) == [1]  # only today's call
    at = at.date_input(key="costs_from").set_value(today.replace(year=today.year + 1)).run()
    assert not at.exception
    assert at.error[0].value.startswith(f"the last day ({today}) is before the first day")


def test_costs_on_postgresql(postgres_url: str, app_as: Callable[[str], AppTest]) -> None:
    store(make_engine(postgres_url), known_dataset(datetime.now(UTC)))
    at = open_costs(app_as)
    assert sum(traces(at, "costs_chart_cost")["m/one"]["y"]) == 2.75
    assert list(at.dataframe[0].value["Calls"]) == [4, 1]


def test_today_is_charted_per_hour(history: None, app_as: Callable[[str], AppTest]) -> None:
    at = open_costs(app_as)
    at = at.selectbox(key="costs_range").set_value("today").run()
    chart = figure(at, "costs_chart_cost")
    assert chart["layout"]["title"]["text"] == "Cost per hour by group"
    (trace,) = chart["data"]
    assert trace["name"] == "m/one" and sum(trace["y"]) == 0.5
    assert all(x.endswith("+00:00") for x in trace["x"])  # UTC hour buckets


def _reconciled(day: date, provider: str, model: str, ours: float, theirs: float) -> dict:
    return {
        "day": day,
        "provider": provider,
        "model": model,
        "ours_usd": ours,
        "openrouter_usd": theirs,
        "ours_requests": 1,
        "openrouter_requests": 1,
        "drift_usd": theirs - ours,
        "drift_pct": None,
        "corrected_generations": 1 if model == "m/one" else 0,
        "timezone": "UTC",
        "checked_at": datetime.now(UTC),
    }


def test_drift_panel_shows_each_day_and_provider_with_reconciled_through(
    history: None, app_as: Callable[[str], AppTest]
) -> None:
    at = open_costs(app_as)
    assert "Not reconciled yet" in " ".join(c.value for c in at.caption)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    engine = make_engine()
    with engine.begin() as conn:
        conn.execute(
            insert(Reconciliation),
            [
                _reconciled(yesterday, "alpha", "m/one", 1.0, 1.5),
                _reconciled(yesterday, "alpha", "m/two", 0.5, 0.5),
                _reconciled(yesterday - timedelta(days=1), "beta", "m/one", 2.0, 1.6),
                _reconciled(yesterday - timedelta(days=90), "beta", "m/one", 9.0, 9.0),
            ],
        )
    at = at.run()
    assert not at.exception, at.exception
    assert f"Reconciled through {yesterday:%Y-%m-%d}" in [c.value for c in at.caption]
    table = at.dataframe[-1].value  # the drift table is the last one on the page
    assert list(table["Day"]) == [str(yesterday), str(yesterday - timedelta(days=1))]
    assert list(table["Provider"]) == ["alpha", "beta"]
    assert list(table["Ours"]) == [1.5, 2.0]
    assert list(table["OpenRouter"]) == [2.0, 1.6]
    assert list(table["Drift"]) == pytest.approx([0.5, -0.4])
    assert list(table["Drift %"]) == pytest.approx([25.0, -25.0])
    assert list(table["Corrected"]) == [1, 1]
