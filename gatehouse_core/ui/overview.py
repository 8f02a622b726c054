"""The Overview page's data and layout: big numbers first, readable across a meeting room."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy import Engine

from ..spend import queries
from ..spend.forecast import Forecast, month_forecast
from ..spend.periods import Period, preset
from ..spend.queries import Comparison, Group
from . import charts, format
from .spend import change_text, percent

TOP = 5


@dataclass(frozen=True)
class Overview:
    forecast: Forecast
    today: Comparison  # today so far vs the same length before it
    week: Comparison  # the last 7 days vs the 7 before
    top_models: list[Group]
    top_providers: list[Group]
    daily: list[tuple[date, float]]  # the last 30 days
    health: list[Group]  # per provider, the last 24 hours


def load(engine: Engine, now: datetime, zone: ZoneInfo) -> Overview:
    month = preset("30d", now, zone)
    return Overview(
        forecast=month_forecast(engine, now, zone),
        today=queries.compare(engine, preset("today", now, zone)),
        week=queries.compare(engine, preset("7d", now, zone)),
        top_models=queries.groups(engine, month, "model", limit=TOP),
        top_providers=queries.groups(engine, month, "provider", limit=TOP),
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
