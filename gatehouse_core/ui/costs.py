"""The Costs page's tables, CSV and what-if panel (charts are in ui/charts.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import streamlit as st

from ..catalog import CatalogEntry
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


def _signed(amount: float) -> str:
    text = format.usd(abs(amount))
    return f"+{text}" if amount > 0 else (f"−{text}" if amount < 0 else text)
