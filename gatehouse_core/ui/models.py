"""Table rows for the Models page and the Playground's model picker (no secrets: cacheable)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


def author(entry: CatalogEntry) -> str:
    """Who made the model: the part of its id before the slash (`anthropic`)."""
    return entry.id.partition("/")[0] if "/" in entry.id else "—"


def is_free(entry: CatalogEntry) -> bool:
    return entry.prompt_price == 0 and entry.completion_price == 0 and not entry.request_price


@dataclass(frozen=True)
class Filters:
    """The Models page's filters; empty/None means "any"."""

    free_only: bool = False
    authors: Sequence[str] = ()
    sources: Sequence[str] = ()
    min_context: int | None = None
    max_input_per_million: float | None = None
    max_output_per_million: float | None = None

    def keeps(self, entry: CatalogEntry) -> bool:
        return (
            (not self.free_only or is_free(entry))
            and (not self.authors or author(entry) in self.authors)
            and (not self.sources or entry.source in self.sources)
            and _at_least(entry.context_length, self.min_context)
            and _at_most(entry.prompt_per_million, self.max_input_per_million)
            and _at_most(entry.completion_per_million, self.max_output_per_million)
        )


def _at_least(value: float | None, bound: float | None) -> bool:
    return bound is None or (value is not None and value >= bound)


def _at_most(value: float | None, bound: float | None) -> bool:
    """An unknown price never passes a price limit: it could be anything."""
    return bound is None or (value is not None and value <= bound)


def filtered(found: Iterable[CatalogEntry], filters: Filters) -> list[CatalogEntry]:
    return [e for e in found if filters.keeps(e)]


def row(entry: CatalogEntry) -> dict[str, Any]:
    return {
        "Model id": entry.id,
        "Name": entry.name,
        "Author": author(entry),
        "Context": entry.context_length,
        "Input $/1M": entry.prompt_per_million,
        "Output $/1M": entry.completion_per_million,
        "Free": "free" if is_free(entry) else "",
        "Source": entry.source,
        "Last refreshed": entry.refreshed_at,
    }


ROW_PX, MAX_TABLE_PX = 35, 21 * 35 + 3  # header and 20 rows


def table_height(rows: int) -> int:
    """Tall enough for up to ~20 rows (not a 10-row box); past that the table scrolls."""
    return min(ROW_PX * (rows + 1) + 3, MAX_TABLE_PX)


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
