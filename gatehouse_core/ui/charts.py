"""Plotly figures for the spend pages, built from `spend.queries` results (no queries here).

Each builder returns a `go.Figure`; pages hand it to `st.plotly_chart`. Trace names are the
group names (or the measure), so a test can read the figure JSON and find each series.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import plotly.graph_objects as go

from ..spend.queries import Group, Series
from . import format

MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}


def label(name: str) -> str:
    """How a group shows: a missing source/actor/workflow is "(none)"."""
    return name if name else "(none)"


def _layout(fig: go.Figure, title: str, *, y: str | None = None, **extra: Any) -> go.Figure:
    fig.update_layout(
        title={"text": title},
        margin=MARGIN,
        legend={"orientation": "h", "y": -0.15},
        yaxis_title=y,
        **extra,
    )
    return fig


def _x(series: Series) -> list[Any]:
    return [b.isoformat() for b in series.buckets]


def _unit(series: Series) -> str:
    """'hour' for an hourly series (UTC datetimes), else 'day'."""
    return "hour" if series.buckets and isinstance(series.buckets[0], datetime) else "day"


def cost_stacked(series: Series) -> go.Figure:
    """Cost per day (or hour), one stacked bar trace per group."""
    fig = go.Figure(
        [go.Bar(name=label(g), x=_x(series), y=series.column(g, "cost_usd")) for g in series.groups]
    )
    return _layout(fig, f"Cost per {_unit(series)} by group", y="USD", barmode="stack")


def tokens(series: Series) -> go.Figure:
    """Input and output tokens per day (all groups together)."""
    x = _x(series)
    totals = [series.total(b) for b in series.buckets]
    fig = go.Figure(
        [
            go.Bar(name="Input tokens", x=x, y=[u.input_tokens for u in totals]),
            go.Bar(name="Output tokens", x=x, y=[u.output_tokens for u in totals]),
        ]
    )
    return _layout(fig, f"Tokens per {_unit(series)}", y="tokens", barmode="group")


def share(groups: Sequence[Group]) -> go.Figure:
    """Each group's part of the period's cost."""
    fig = go.Figure(
        go.Pie(
            labels=[label(g.name) for g in groups],
            values=[g.usage.cost_usd for g in groups],
            hole=0.45,
            sort=False,
        )
    )
    return _layout(fig, "Cost share")


def latency(series: Series) -> go.Figure:
    """p50 and p95 latency per day, from the histograms."""
    x = _x(series)
    totals = [series.total(b) for b in series.buckets]
    fig = go.Figure(
        [
            go.Scatter(name="p50", x=x, y=[u.p50_ms for u in totals], mode="lines+markers"),
            go.Scatter(name="p95", x=x, y=[u.p95_ms for u in totals], mode="lines+markers"),
        ]
    )
    return _layout(fig, "Latency p50 / p95", y="ms")


def rates(series: Series) -> go.Figure:
    """Error and fallback rate per day, as percentages of calls."""
    x = _x(series)
    totals = [series.total(b) for b in series.buckets]

    def percent(value: float | None) -> float | None:
        return None if value is None else round(value * 100, 4)

    fig = go.Figure(
        [
            go.Scatter(name="Error rate", x=x, y=[percent(u.error_rate) for u in totals]),
            go.Scatter(name="Fallback rate", x=x, y=[percent(u.fallback_rate) for u in totals]),
        ]
    )
    return _layout(fig, "Error and fallback rate", y="% of calls")


def sparkline(daily: Sequence[tuple[date, float]]) -> go.Figure:
    """The 30-day cost line of the Overview: no axes, just the shape and the hover."""
    fig = go.Figure(
        go.Scatter(
            name="Cost per day",
            x=[d.isoformat() for d, _ in daily],
            y=[c for _, c in daily],
            mode="lines",
            fill="tozeroy",
            hovertemplate="%{x}: $%{y:.2f}<extra></extra>",
        )
    )
    fig.update_layout(
        height=160,
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        xaxis={"visible": False},
        yaxis={"visible": False},
        showlegend=False,
    )
    return fig


def timeline(attempts: Sequence[dict[str, Any]]) -> go.Figure:
    """One call's attempts as bars from their start offset, as long as each took."""
    names = [f"#{a['attempt']} {a['provider']}" for a in attempts]
    fig = go.Figure(
        go.Bar(
            name="Attempts",
            y=names,
            x=[a["latency_ms"] or 0 for a in attempts],
            base=[a["offset_ms"] for a in attempts],
            orientation="h",
            text=[f"{a['status']} · {format.ms(a['latency_ms'])}" for a in attempts],
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Attempt timeline", height=120 + 40 * len(attempts), xaxis_title="ms")
