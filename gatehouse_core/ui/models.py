"""Table rows for the Models page and the Playground's model picker (no secrets: cacheable)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from ..catalog import RECOMMENDED_MODELS, CatalogEntry
from . import format, state

CATALOG_TTL_SECONDS = 60


@st.cache_data(ttl=CATALOG_TTL_SECONDS, show_spinner=False)
def _entries(url: str, search: str) -> list[CatalogEntry]:
    return state.catalog().list(search or None)


def entries(search: str = "") -> list[CatalogEntry]:
    """Catalog entries matching `search` (cached for a minute; cleared by a refresh)."""
    return _entries(state.database_url(), search.strip())


def forget() -> None:
    """Drop cached catalog reads (after a refresh)."""
    _entries.clear()


def row(entry: CatalogEntry) -> dict[str, Any]:
    return {
        "Model id": entry.id,
        "Name": entry.name,
        "Context": entry.context_length,
        "Input $/1M": entry.prompt_per_million,
        "Output $/1M": entry.completion_per_million,
        "Source": entry.source,
        "Last refreshed": entry.refreshed_at,
    }


COLUMN_CONFIG = {
    "Context": st.column_config.NumberColumn(format="compact", help="Context window in tokens"),
    "Input $/1M": st.column_config.NumberColumn(
        format="$%.3f", help="USD per million input tokens"
    ),
    "Output $/1M": st.column_config.NumberColumn(
        format="$%.3f", help="USD per million output tokens"
    ),
    "Last refreshed": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
}


def recommended_rows(known: dict[str, CatalogEntry]) -> list[dict[str, Any]]:
    """The recommended-models-by-use-case table, with prices from the catalog when known."""
    rows = []
    for rec in RECOMMENDED_MODELS:
        entry = known.get(rec["model_id"])
        rows.append(
            {
                "Use case": rec["use_case"],
                "Model id": rec["model_id"],
                "Why": rec["why"],
                "Input $/1M": format.per_million(entry.prompt_price) if entry else "—",
                "Output $/1M": format.per_million(entry.completion_price) if entry else "—",
                "Context": format.context_length(entry.context_length) if entry else "—",
            }
        )
    return rows


def picker_label(entry: CatalogEntry) -> str:
    """`Name (id) — $3.00 in / $15.00 out per 1M · 200k ctx` for the Playground's picker."""
    name = f"{entry.name} ({entry.id})" if entry.name != entry.id else entry.id
    return (
        f"{name} — {format.per_million(entry.prompt_price)} in / "
        f"{format.per_million(entry.completion_price)} out per 1M · "
        f"{format.context_length(entry.context_length)} ctx"
    )
