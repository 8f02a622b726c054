"""Widgets and formatting the spend pages share: the display zone, the range picker, filter
pickers, change deltas, and links into the Requests page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import streamlit as st
from sqlalchemy import Engine

from .. import settings
from ..spend import queries
from ..spend.periods import PRESETS, Period, days_between, local_day, preset
from ..spend.queries import Filters

ANY = "(any)"
NONE_TOKEN = "(none)"  # a missing source/actor/workflow in a link or picker
LIST_SEPARATOR = ","  # several values of one filter in a link or a Requests filter field
REQUESTS_URL = "/audit-log"  # ui/nav.py's url_path of pages/requests.py
# The query parameter of the Requests page for each grouping.
LINK_PARAMS = {
    "model": "model",
    "provider": "provider",
    "source": "source",
    "actor": "actor",
    "status": "status",
    "workflow": "workflow_id",
    "trace": "trace_id",
}


def zone() -> ZoneInfo:
    return settings.display_zone()


def now() -> datetime:
    return datetime.now(UTC)


def pick_period(prefix: str, *, default: str = "30d") -> Period:
    """The range picker: presets, or custom whole days in the display zone."""
    names = list(PRESETS)
    choice = st.selectbox(
        "Range", names, index=names.index(default), format_func=PRESETS.get, key=f"{prefix}_range"
    )
    tz, moment = zone(), now()
    if choice != "custom":
        return preset(choice, moment, tz)
    today = local_day(moment, tz)
    left, right = st.columns(2)
    first = left.date_input("From", value=today - timedelta(days=6), key=f"{prefix}_from")
    last = right.date_input("To", value=today, key=f"{prefix}_to")
    return days_between(first, last, tz)


def pick_filters(engine: Engine, period: Period, prefix: str) -> Filters:
    """One picker per rollup dimension (values seen in the range) and a workflow id field."""
    chosen: dict[str, Any] = {}
    columns = st.columns(len(queries.ROLLUP_GROUPINGS) + 1)
    seen = queries.dimension_values(engine, period)
    for column, name in zip(columns, queries.ROLLUP_GROUPINGS, strict=False):
        options = [v or NONE_TOKEN for v in seen[name]]
        key = f"{prefix}_filter_{name}"
        # Values picked for another range that this one lacks are dropped, not an error.
        if key in st.session_state:
            st.session_state[key] = [v for v in st.session_state[key] if v in options]
        picked = column.multiselect(name.capitalize(), options, key=key, placeholder=ANY)
        if picked:
            chosen[name] = tuple("" if p == NONE_TOKEN else p for p in picked)
    workflow = columns[-1].text_input("Workflow id", key=f"{prefix}_filter_workflow").strip()
    if workflow:
        chosen["workflow_id"] = workflow
    return Filters(**chosen)


def change_text(change: float | None) -> str | None:
    """A relative change for st.metric's delta: `+12.5%`, or None without a base."""
    return None if change is None else f"{change * 100:+.1f}%"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def requests_link(by: str, group: str, period: Period, filters: Filters | None = None) -> str:
    """The Requests page showing the rows of one group in the same range and filters."""
    params: dict[str, str] = {}
    for name, value in vars(filters or Filters()).items():
        if isinstance(value, tuple):
            params[name] = LIST_SEPARATOR.join(v or NONE_TOKEN for v in value)
        elif value is not None:
            params[name] = value or NONE_TOKEN
    params[LINK_PARAMS[by]] = group or NONE_TOKEN
    params["from"] = period.start.isoformat()
    params["to"] = period.end.isoformat()
    return f"{REQUESTS_URL}?{urlencode(params)}"
