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


def first_unencodable(value: Any, path: str) -> str | None:
    """The path (e.g. `messages[0].content`) of the first string under `value` holding a lone
    surrogate, which no HTTP body can carry; None when everything can be sent."""
    if isinstance(value, str):
        return path if _SURROGATES.search(value) else None
    if isinstance(value, dict):
        items: Any = ((f"{path}.{key}", item) for key, item in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    else:
        return None
    for child_path, child in items:
        found = first_unencodable(child, child_path)
        if found is not None:
            return found
    return None
