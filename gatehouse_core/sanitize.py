"""Caller and upstream text made safe for an audit row and a log line.

A lone surrogate (from `json.loads` of `"\\ud800"`, or a shell argument that is not UTF-8) cannot
be encoded for the database or a log file, and a NUL byte is refused by PostgreSQL; both would
turn one call's row into an audit failure. The gateway cleans every text field at its edge and
caps it to the `llm_requests` column it lands in (lengths read from schema.py).
"""

from __future__ import annotations

import re
from typing import Any

from .schema import LLMRequest

REPLACEMENT = "\ufffd"
_SURROGATES = re.compile("[\ud800-\udfff]")


def column_length(name: str) -> int | None:
    """The declared length of an `llm_requests` text column (None: unbounded or not text)."""
    column = LLMRequest.__table__.columns.get(name)
    return getattr(column.type, "length", None) if column is not None else None


def clean_text(value: str, limit: int | None = None) -> str:
    """Lone surrogates replaced by U+FFFD, NUL removed, cut to `limit` characters."""
    text = _SURROGATES.sub(REPLACEMENT, value).replace("\x00", "")
    return text if limit is None else text[:limit]


def clean_field(name: str, value: Any) -> Any:
    """`value` cleaned for the `llm_requests` column `name`; non-strings pass through."""
    if not isinstance(value, str):
        return value
    return clean_text(value, column_length(name))


def clean_row(row: dict[str, Any]) -> dict[str, Any]:
    """Every text value of an audit row cleaned for its column."""
    return {name: clean_field(name, value) for name, value in row.items()}
