"""The Costs page's tables, CSV, what-if and drift panels (charts are in ui/charts.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import streamlit as st

from ..catalog import CatalogEntry
from ..spend.drift import DayDrift
from ..spend.periods import Period
from ..spend.queries import Filters, Group
from ..spend.whatif import WhatIf
from . import charts, format
from .spend import requests_link

GROUP_BY = {
    "model": "Model",
    "provider": "Provider",
    "source": "Source",
    "actor": "Actor",
    "workflow": "Workflow",
    "status": "Status",
}
TOP_IN_CHARTS = 8
TABLE_COLUMNS = {
    "Requests": st.column_config.LinkColumn(
        "Requests", display_text="open", help="The audit rows of this group, same range"
    ),
    "Cost": st.column_config.NumberColumn(format="$%.4f"),
    "Cost per call": st.column_config.NumberColumn(format="$%.6f"),
    "Share": st.column_config.NumberColumn(format="%.1f%%"),
}


def step_for(period: Period) -> str:
    """Hourly bars for ranges of up to two days (today, a custom single day), else daily."""
    return "hour" if period.length <= timedelta(days=2) else "day"


def group_rows(
    groups: Sequence[Group], by: str, period: Period, filters: Filters
) -> list[dict[str, Any]]:
    """The groups' table: calls, tokens, cost, cost per call, share, and a Requests link."""
    return [
        {
            GROUP_BY[by]: charts.label(g.name),
            "Calls": g.usage.calls,
            "Attempts": g.usage.attempts,
            "Input tokens": g.usage.input_tokens,
            "Output tokens": g.usage.output_tokens,
            "Cost": round(g.usage.cost_usd, 6),
            "Cost per call": None
            if g.usage.cost_per_call is None
            else round(g.usage.cost_per_call, 8),
            "Share": None if g.share is None else round(g.share * 100, 2),
            "Requests": requests_link(by, g.name, period, filters),
        }
        for g in groups
    ]


def rows_csv(rows: Sequence[dict[str, Any]], *, drop: Sequence[str] = ("Requests",)) -> str:
    """The table as CSV text (links left out: they only work inside the console)."""
    if not rows:
        return ""
    names = [name for name in rows[0] if name not in drop]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def whatif_rows(result: WhatIf, by: str) -> list[dict[str, Any]]:
    return [
        {
            GROUP_BY[by]: charts.label(r.group),
            "Calls": r.calls,
            "Actual": format.usd(r.actual_usd),
            f"On {result.model}": format.usd(r.whatif_usd),
            "Difference": _signed(r.difference_usd),
        }
        for r in result.rows
    ]


def whatif_label(entry: CatalogEntry) -> str:
    return (
        f"{entry.id} — {format.per_million(entry.prompt_price)} in / "
        f"{format.per_million(entry.completion_price)} out per 1M"
    )


def render_whatif(result: WhatIf, by: str) -> None:
    cols = st.columns(3)
    cols[0].metric("Actual cost", format.usd(result.actual_usd))
    cols[1].metric(f"On {result.model}", format.usd(result.whatif_usd))
    cols[2].metric("Difference", _signed(result.difference_usd))
    st.dataframe(
        whatif_rows(result, by), key="costs_whatif_table", hide_index=True, width="stretch"
    )


DRIFT_COLUMNS = {
    "Ours": st.column_config.NumberColumn(format="$%.4f", help="Recorded by GateHouse"),
    "OpenRouter": st.column_config.NumberColumn(format="$%.4f", help="OpenRouter's ledger"),
    "Drift": st.column_config.NumberColumn(format="$%.4f", help="OpenRouter − ours"),
    "Drift %": st.column_config.NumberColumn(format="%.2f%%", help="Of OpenRouter's figure"),
    "Corrected": st.column_config.NumberColumn(
        help="Billed calls we held as failed or $0, set to OpenRouter's cost"
    ),
}
NOT_RECONCILED = (
    "Not reconciled yet: store an OpenRouter management key (`gatehouse providers "
    "set-management-key NAME --api-key-stdin`) and run `gatehouse reconcile`; a running "
    "console then reconciles yesterday once a day."
)


def drift_rows(drift: Sequence[DayDrift]) -> list[dict[str, Any]]:
    return [
        {
            "Day": d.day.isoformat(),
            "Provider": d.provider,
            "Ours": round(d.ours_usd, 6),
            "OpenRouter": round(d.openrouter_usd, 6),
            "Drift": round(d.drift_usd, 6),
            "Drift %": None if d.drift_pct is None else round(d.drift_pct, 2),
            "Corrected": d.corrected_generations,
        }
        for d in drift
    ]


def render_drift(drift: Sequence[DayDrift], through: date | None) -> None:
    """Drift per day and provider against OpenRouter's ledger, with "reconciled through"."""
    st.subheader("Drift against OpenRouter")
    if through is None:
        st.caption(NOT_RECONCILED)
        return
    st.caption(f"Reconciled through {through:%Y-%m-%d}")
    if not drift:
        st.info("No reconciled day in this range.", icon=":material/info:")
        return
    st.dataframe(
        drift_rows(drift),
        key="costs_drift_table",
        hide_index=True,
        width="stretch",
        column_config=DRIFT_COLUMNS,
    )


def _signed(amount: float) -> str:
    text = format.usd(abs(amount))
    return f"+{text}" if amount > 0 else (f"−{text}" if amount < 0 else text)
