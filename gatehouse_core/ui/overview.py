"""The Overview page's data and layout: big numbers first, readable across a meeting room."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy import Engine

from ..spend import queries
from ..spend.alerts import Alerts, FiredAlert
from ..spend.budget_rules import BudgetRule, BudgetStore
from ..spend.forecast import Forecast, month_forecast
from ..spend.periods import Period, preset
from ..spend.queries import Comparison, Group
from . import charts, format
from .spend import change_text, percent

TOP = 5
ALERTS_SHOWN = 5


@dataclass(frozen=True)
class Overview:
    forecast: Forecast
    today: Comparison  # today so far vs the same length before it
    week: Comparison  # the last 7 days vs the 7 before
    top_models: list[Group]
    top_providers: list[Group]
    daily: list[tuple[date, float]]  # the last 30 days
    health: list[Group]  # per provider, the last 24 hours
    budgets: list[BudgetRule] = field(default_factory=list)
    alerts: list[FiredAlert] = field(default_factory=list)  # unacknowledged first, then recent

    @property
    def global_budget(self) -> BudgetRule | None:
        return next((b for b in self.budgets if b.scope == "global"), None)


def load(engine: Engine, now: datetime, zone: ZoneInfo) -> Overview:
    month = preset("30d", now, zone)
    return Overview(
        budgets=BudgetStore(engine).list_rules(),
        alerts=_alerts(engine),
        forecast=month_forecast(engine, now, zone),
        today=queries.compare(engine, preset("today", now, zone)),
        week=queries.compare(engine, preset("7d", now, zone)),
        top_models=queries.groups(engine, month, "model", limit=TOP, percentiles=False),
        top_providers=queries.groups(engine, month, "provider", limit=TOP, percentiles=False),
        daily=queries.daily_costs(engine, month),
        health=queries.groups(engine, Period(now - timedelta(hours=24), now, zone), "provider"),
    )


def render(view: Overview) -> None:
    f = view.forecast
    cols = st.columns(3)
    cols[0].metric(
        f"Spend {f.month:%B} to date",
        format.usd(f.month_to_date_usd),
        help="Cost of every attempt since the first of the month (GATEHOUSE_TIMEZONE).",
    )
    cols[1].metric(
        "Month-end forecast",
        format.usd(f.forecast_usd),
        delta=f"{format.usd(f.run_rate_usd_per_day)} / day",
        delta_color="off",
        help=f"Month to date + {f.method}.",
    )
    cols[2].metric(
        "Today",
        format.usd(f.today_usd),
        delta=change_text(view.today.change("cost_usd")),
        delta_color="inverse",
        help="Today so far, against the same length of time just before it.",
    )
    _budget_line(view)
    st.caption("Last 7 days, each against the 7 days before")
    week, now = view.week, view.week.current
    cols = st.columns(5)
    cols[0].metric("Calls", f"{now.calls:,}", delta=change_text(week.change("calls")))
    cols[1].metric(
        "Error rate",
        percent(now.error_rate),
        delta=change_text(week.change("error_rate")),
        delta_color="inverse",
    )
    cols[2].metric(
        "Fallback rate",
        percent(now.fallback_rate),
        delta=change_text(week.change("fallback_rate")),
        delta_color="inverse",
    )
    cols[3].metric(
        "Latency p50",
        format.ms(now.p50_ms),
        delta=change_text(week.change("p50_ms")),
        delta_color="inverse",
    )
    cols[4].metric(
        "Latency p95",
        format.ms(now.p95_ms),
        delta=change_text(week.change("p95_ms")),
        delta_color="inverse",
    )
    st.subheader("Cost per day, last 30 days")
    st.plotly_chart(charts.sparkline(view.daily), key="overview_sparkline", width="stretch")
    left, right = st.columns(2)
    with left:
        st.subheader("Top models by cost (30 days)")
        _top_table(view.top_models, "Model", "overview_top_models")
    with right:
        st.subheader("Top providers by cost (30 days)")
        _top_table(view.top_providers, "Provider", "overview_top_providers")
    _alerts_list(view.alerts)
    st.subheader("Provider health (last 24 hours)")
    if view.health:
        st.dataframe(
            health_rows(view.health), key="overview_health", hide_index=True, width="stretch"
        )
    else:
        st.caption("No calls in the last 24 hours.")


def health_rows(groups: list[Group]) -> list[dict[str, object]]:
    """Per provider: calls answered there, attempts sent, and how those went."""
    return [
        {
            "Provider": g.name,
            "Calls": g.usage.calls,
            "Attempts": g.usage.attempts,
            "Failed calls": percent(g.usage.error_rate),
            "Fallback answers": percent(g.usage.fallback_rate),
            "p95": format.ms(g.usage.p95_ms),
        }
        for g in groups
    ]


def _top_table(groups: list[Group], title: str, key: str) -> None:
    if not groups:
        st.info("No calls in the last 30 days.", icon=":material/info:")
        return
    rows = [
        {
            title: charts.label(g.name),
            "Cost": format.usd(g.usage.cost_usd),
            "Share": percent(g.share),
            "Calls": g.usage.calls,
        }
        for g in groups
    ]
    st.dataframe(rows, key=key, hide_index=True, width="stretch")


def _alerts(engine: Engine) -> list[FiredAlert]:
    alerts = Alerts(engine)
    open_ = alerts.unacknowledged(ALERTS_SHOWN)
    seen = {a.id for a in open_}
    rest = [a for a in alerts.recent(ALERTS_SHOWN) if a.id not in seen]
    return (open_ + rest)[:ALERTS_SHOWN]


def budget_readout(month_to_date: float, forecast: float, limit: float) -> tuple[str, str, str]:
    """(value, delta, forecast line) of the global budget's readout."""
    used = month_to_date / limit
    ahead = forecast / limit
    if forecast > limit:
        verdict = f"over the budget by {format.usd(forecast - limit)}"
    else:
        verdict = f"{format.usd(limit - forecast)} under the budget"
    return (
        f"{format.usd(month_to_date)} of {format.usd(limit)}",
        f"{used:.0%} used",
        f"Month-end forecast {format.usd(forecast)} = {ahead:.0%} of the budget, {verdict}.",
    )


def _budget_line(view: Overview) -> None:
    """The global budget against month-to-date spend and the forecast (once budgets exist)."""
    rule = view.global_budget
    if rule is None:
        if view.budgets:
            st.caption(
                f"{len(view.budgets)} scoped budget(s), no global budget: see Budgets & alerts."
            )
        return
    f = view.forecast
    value, delta, line = budget_readout(f.month_to_date_usd, f.forecast_usd, rule.monthly_usd)
    left, right = st.columns([1, 2], vertical_alignment="center")
    left.metric(
        "Global budget",
        value,
        delta=delta,
        delta_color="inverse" if f.month_to_date_usd >= rule.monthly_usd else "off",
        help=f"Monthly limit, action {rule.action}. Month-to-date spend from the rollup.",
    )
    with right:
        st.progress(min(f.month_to_date_usd / rule.monthly_usd, 1.0), text=delta)
        over = f.forecast_usd > rule.monthly_usd
        (st.warning if over else st.caption)(line)


def _alerts_list(alerts: list[FiredAlert]) -> None:
    if not alerts:
        return
    st.subheader("Alerts")
    st.dataframe(
        [
            {
                "Fired": f"{a.fired_at:%Y-%m-%d %H:%M}",
                "Alert": a.text,
                "Acknowledged": "yes" if a.acknowledged_at else "no",
            }
            for a in alerts
        ],
        key="overview_alerts",
        hide_index=True,
        width="stretch",
    )
