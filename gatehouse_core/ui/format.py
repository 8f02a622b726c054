"""How the console writes money, tokens, durations and times (pure functions, no streamlit)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

PER_MILLION = 1_000_000
MESSAGE_CHARS = 300  # the most of any one message the console shows


def usd(amount: float | None) -> str:
    """A cost: `$1.23` from a cent up; below that two significant digits (`$0.000012`,
    `$0.0000000034`), so a tiny cost never reads `$0.` or `$0`; `—` when unknown."""
    if amount is None:
        return "—"
    if amount == 0:
        return "$0"
    if abs(amount) >= 0.01:
        return f"${amount:,.2f}"
    sign = "-" if amount < 0 else ""
    digits = max(2, -math.floor(math.log10(abs(amount))) + 1)  # two significant digits
    return f"{sign}${abs(amount):.{digits}f}".rstrip("0")


def clip(text: str, limit: int = MESSAGE_CHARS) -> str:
    """Shorten text shown in a message: its start and end, with the number of characters
    left out, so a 5,000-character value cannot fill the page but the fix stays readable."""
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 3
    return f"{text[:head]}…[{len(text) - head - tail:,} characters]…{text[-tail:]}"


def per_million(price_per_token: float | None) -> str:
    """A per-token price as dollars per million tokens (`$3.00 / 1M`), `free`, or `—`."""
    if price_per_token is None:
        return "—"
    if price_per_token == 0:
        return "free"
    value = price_per_token * PER_MILLION
    return f"${value:,.2f}" if value >= 0.01 else f"${value:.4f}"


def per_million_value(price_per_token: float | None) -> float | None:
    """Dollars per million tokens as a number (for sortable table columns)."""
    return None if price_per_token is None else round(price_per_token * PER_MILLION, 6)


def tokens(count: int | None) -> str:
    if count is None:
        return "—"
    if count >= 1_000_000:
        return f"{count / 1_000_000:.1f}M"
    if count >= 10_000:
        return f"{count / 1000:.0f}k"
    return f"{count:,}"


def context_length(count: int | None) -> str:
    """A context window: `128k`, `1M`, `—`."""
    if not count:
        return "—"
    if count >= 1_000_000:
        return f"{count / 1_000_000:g}M"
    return f"{count / 1000:g}k" if count >= 1000 else str(count)


def ms(value: float | None) -> str:
    """A duration in milliseconds: `850 ms`, `2.4 s`, `—`."""
    if value is None:
        return "—"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def when(moment: datetime | None) -> str:
    """A UTC timestamp to the minute, `—` when absent."""
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """`just now`, `5 min ago`, `3 h ago`, `2 d ago`, or `never`."""
    if moment is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} d ago"
