"""The Requests page: filters (also from a link's query parameters), keyset paging state,
the rows table, one call's attempt chain, and the bounded CSV export."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import streamlit as st
from sqlalchemy import Engine

from ..errors import ConfigError
from ..results import ATTEMPT_STATUSES
from ..spend import requestlog
from ..spend.periods import PRESETS, preset
from ..spend.requestlog import RequestFilters
from . import charts, format
from .spend import ANY, LIST_SEPARATOR, NONE_TOKEN, now, zone

PAGE_SIZE = 50
TEXT_FILTERS = {
    "provider": "Provider",
    "model": "Model",
    "source": "Source",
    "actor": "Actor",
    "workflow_id": "Workflow id",
    "trace_id": "Trace id",
    "error_type": "Error type",
}
# Names take several values (ids, which may hold commas, one exact value).
LIST_FILTERS = frozenset({"provider", "model", "source", "actor"})
RANGES = {"all": "All time", **{k: v for k, v in PRESETS.items() if k != "custom"}}
LINKED = "linked"
_PAGES_KEY = "requests_pages"  # the cursors of the pages seen so far (None = the newest)
_SEEN_KEY = "requests_filters_seen"
_LINK_KEY = "requests_link_applied"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def apply_link(params: Mapping[str, str]) -> tuple[datetime, datetime] | None:
    """Fill the filter widgets from a link's query parameters, once per distinct link;
    returns the link's time range, if it has a valid one."""
    signature = tuple(sorted(params.items()))
    if st.session_state.get(_LINK_KEY) != signature:
        st.session_state[_LINK_KEY] = signature
        for name in TEXT_FILTERS:
            if name in params:
                st.session_state[f"requests_{name}"] = params[name]
        if "status" in params:
            linked = params["status"].split(LIST_SEPARATOR)
            st.session_state["requests_status"] = [v for v in linked if v in ATTEMPT_STATUSES]
        if "from" in params:
            st.session_state["requests_range"] = LINKED
    try:
        return datetime.fromisoformat(params["from"]), datetime.fromisoformat(params["to"])
    except (KeyError, ValueError):
        return None


def pick_filters(linked: tuple[datetime, datetime] | None) -> RequestFilters:
    ranges = {**({LINKED: "From the link"} if linked else {}), **RANGES}
    if st.session_state.get("requests_range") not in ranges:
        st.session_state["requests_range"] = "7d"
    cols = st.columns(4)
    choice = cols[0].selectbox("Range", list(ranges), format_func=ranges.get, key="requests_range")
    status = cols[1].multiselect(
        "Status", list(ATTEMPT_STATUSES), key="requests_status", placeholder=ANY
    )
    values: dict[str, Any] = {}
    boxes = [*cols[2:], *st.columns(4), *st.columns(4)]
    for box, (name, label) in zip(boxes, TEXT_FILTERS.items(), strict=False):
        several = name in LIST_FILTERS
        text = box.text_input(
            label,
            key=f"requests_{name}",
            help="several values: separate them with commas" if several else None,
        ).strip()
        if text:
            values[name] = _field_value(text, several)
    if choice == LINKED and linked:
        values["start"], values["end"] = linked
    elif choice != "all":
        period = preset(choice, now(), zone())
        values["start"], values["end"] = period.start, period.end
    if status:
        values["status"] = tuple(status)
    return RequestFilters(**values)


def _field_value(text: str, several: bool) -> str | tuple[str, ...]:
    """A filter field's text: one exact value, or for names a comma-separated list of them."""
    parts = [p.strip() for p in text.split(LIST_SEPARATOR)] if several else [text]
    parts = ["" if p == NONE_TOKEN else p for p in parts if p]
    return parts[0] if len(parts) == 1 else tuple(parts)


def signature() -> tuple[Any, ...]:
    """What the user chose (not the instants a preset resolves to, which move with the
    clock): paging and a prepared export stay valid until a filter changes."""
    keys = ["requests_range", "requests_status", *(f"requests_{n}" for n in TEXT_FILTERS)]
    return (*(st.session_state.get(k) for k in keys), st.session_state.get(_LINK_KEY))


def current_cursor() -> str | None:
    """The cursor of the page on show; back to the newest page when the filters changed."""
    if st.session_state.get(_SEEN_KEY) != signature():
        st.session_state[_SEEN_KEY] = signature()
        st.session_state[_PAGES_KEY] = [None]
    return st.session_state[_PAGES_KEY][-1]


def page_number() -> int:
    return len(st.session_state.get(_PAGES_KEY, [None]))


def older(cursor: str) -> None:
    st.session_state[_PAGES_KEY].append(cursor)


def newer() -> None:
    if len(st.session_state[_PAGES_KEY]) > 1:
        st.session_state[_PAGES_KEY].pop()


def rows(found: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "Time": r["created_at"].astimezone(zone()).strftime("%Y-%m-%d %H:%M:%S"),
            "Provider": r["provider"],
            "Model": r["model"],
            "Status": r["status"],
            "HTTP": r["http_status"],
            "Attempt": r["attempt"],
            "Tokens in": r["input_tokens"],
            "Tokens out": r["output_tokens"],
            "Cost": format.usd(r["cost_usd"]),
            "Latency": format.ms(r["latency_ms"]),
            "Error": r["error_type"] or "",
            "Source": r["source"] or "",
            "Actor": r["actor"] or "",
            "Workflow": r["workflow_id"] or "",
            "Request id": r["request_id"],
        }
        for r in found
    ]


def attempt_rows(attempts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "#": a["attempt"],
            "Starts at": f"+{format.ms(a['offset_ms'])}",
            "Provider": a["provider"],
            "Model": a["model"],
            "Model used": a["model_used"] or "",
            "Status": a["status"],
            "HTTP": a["http_status"],
            "Latency": format.ms(a["latency_ms"]),
            "Tokens in / out": f"{format.tokens(a['input_tokens'])} / "
            f"{format.tokens(a['output_tokens'])}",
            "Cost": format.usd(a["cost_usd"]),
            "Error": " · ".join(x for x in (a["error_type"], a["error_message"]) if x),
        }
        for a in attempts
    ]


def render_call(engine: Engine, request_id: str) -> None:
    attempts = requestlog.call_attempts(engine, request_id)
    final = attempts[-1]
    shown_id = request_id if _REQUEST_ID.fullmatch(request_id) else "(unusual id)"
    st.markdown(
        f"**Call `{shown_id}`** · {len(attempts)} attempt{'s' if len(attempts) != 1 else ''} · "
        f"ended **{final['status']}** on {final['provider']} · "
        f"{format.usd(sum(a['cost_usd'] or 0 for a in attempts))}"
    )
    st.dataframe(attempt_rows(attempts), key="requests_attempts", hide_index=True, width="stretch")
    st.plotly_chart(charts.timeline(attempts), key="requests_timeline", width="stretch")


def export(engine: Engine, filters: RequestFilters) -> str:
    """The filtered rows as CSV (at most EXPORT_MAX_ROWS), with a progress bar."""
    total = requestlog.count(engine, filters, cap=requestlog.EXPORT_MAX_ROWS)
    bar = st.progress(0.0, text=f"Exporting {total:,} rows…")

    def progress(done: int) -> None:
        bar.progress(min(done / total, 1.0) if total else 1.0, text=f"{done:,} of {total:,} rows")

    text = "".join(requestlog.export_csv(engine, filters, on_progress=progress))
    bar.empty()
    return text


def request_id_param(params: Mapping[str, str]) -> str | None:
    """The `request_id` of a link. Only id characters pass: the value ends up in Markdown, and
    a crafted link must not smuggle in an image or a link (nothing of it is echoed back)."""
    value = (params.get("request_id") or "").strip()
    if value and not _REQUEST_ID.fullmatch(value):
        raise ConfigError(
            "the request id in the link is not one GateHouse writes; open the call from the table"
        )
    return value or None
