"""Read queries over `llm_requests` for the CLI and the console, aggregated in SQL.

Every query filters on an indexed `created_at` range; nothing loads the table into Python.

`recent_requests(...)` returns audit rows newest first, each a dict keyed by the
`llm_requests` column names (`id, request_id, attempt, created_at, provider, model,
model_used, generation_id, input_tokens, output_tokens, cached_tokens, reasoning_tokens,
cost_usd, cost_source, latency_ms, ttft_ms, status, http_status, error_type, error_message,
workflow_id, trace_id, source, actor`); `created_at` is a tz-aware UTC datetime.

`usage_summary(...)` returns one dict per group:
`{"group", "requests", "attempts", "input_tokens", "output_tokens", "cost_usd"}`.
- `group`: the UTC day as "YYYY-MM-DD" (`by="day"`, oldest first), the requested model
  (`by="model"`) or the provider name (`by="provider"`), the latter two by cost, highest first.
- `requests`: distinct calls (`request_id`) with at least one attempt in the group, so one call
  that fell back from provider A to B counts once for A and once for B, but once in a total.
- `attempts`: rows (the gateway writes one per upstream attempt).
- tokens and `cost_usd` sum over every row (failed attempts normally carry none).
(Kept for library callers; it reads raw rows.) `gatehouse usage` reads `usage_report(...)`,
which goes through `spend/queries.py` and the hourly rollup like the dashboards, with the
definitions written there: `requests` counts each call once, in the group of its final attempt.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Engine,
    String,
    and_,
    func,
    literal_column,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.exc import OperationalError

from .db import unreachable
from .errors import ConfigError
from .results import ATTEMPT_STATUSES
from .schema import LLMRequest
from .spend import queries
from .spend.periods import Period

GROUPINGS = ("day", "model", "provider")
USAGE_KEYS = ("group", "requests", "attempts", "input_tokens", "output_tokens", "cost_usd")
USAGE_GROUPINGS = ("day", "model", "provider", "source", "actor", "status", "workflow")
# Keys `usage --json` added with the rollup (after USAGE_KEYS, which never change).
USAGE_EXTRA_KEYS = (
    "cached_tokens",
    "reasoning_tokens",
    "errors",
    "fallbacks",
    "cost_per_call_usd",
    "p50_ms",
    "p95_ms",
)
_SPAN = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
T = LLMRequest.__table__


def parse_since(text: str) -> timedelta:
    """ "15m", "24h", "30d", "2w" → timedelta; ConfigError for anything else."""
    match = _SPAN.match(text.strip().lower())
    if not match:
        raise ConfigError(
            f"{text!r} is not a time span; use a whole number and a unit: 15m, 24h, 30d or 2w"
        )
    amount, unit = int(match[1]), _UNITS[match[2]]
    if amount == 0:
        raise ConfigError(f"{text!r} is an empty time span; give more than zero, e.g. 24h")
    try:
        return timedelta(**{unit: amount})
    except OverflowError:
        raise ConfigError(f"{text!r} is too long a time span; e.g. 365d") from None


def recent_requests(
    engine: Engine,
    *,
    since: timedelta | None = None,
    limit: int = 50,
    status: str | None = None,
    before: tuple[datetime, int] | None = None,
) -> list[dict[str, Any]]:
    """Audit rows, newest first: at most `limit`, optionally within `since` and of `status`.

    `before` is a keyset cursor `(created_at, id)` of the last row of the previous page: the
    page holds the rows that sort after it (older), so pages never skip or repeat a row."""
    if limit < 1:
        raise ConfigError(f"limit {limit} is too small; give 1 or more")
    if status is not None and status not in ATTEMPT_STATUSES:
        raise ConfigError(f"status {status!r} is unknown; use one of {', '.join(ATTEMPT_STATUSES)}")
    query = select(T).order_by(T.c.created_at.desc(), T.c.id.desc()).limit(limit)
    if since is not None:
        query = query.where(T.c.created_at >= _cutoff(since))
    if status is not None:
        query = query.where(T.c.status == status)
    if before is not None:
        created_at, row_id = before
        query = query.where(
            or_(T.c.created_at < created_at, and_(T.c.created_at == created_at, T.c.id < row_id))
        )
    return [dict(row) for row in _fetch(engine, query)]


def usage_summary(
    engine: Engine, *, since: timedelta, by: Literal["day", "model", "provider"]
) -> list[dict[str, Any]]:
    """Requests, attempts, tokens and cost per day, model or provider within `since`."""
    if by not in GROUPINGS:
        raise ConfigError(f"cannot group usage by {by!r}; use one of {', '.join(GROUPINGS)}")
    group = _group_column(engine.dialect.name, by).label("grp")
    cost = func.coalesce(func.sum(T.c.cost_usd), 0).label("cost_usd")
    query = (
        select(
            group,
            func.count(func.distinct(T.c.request_id)).label("requests"),
            func.count().label("attempts"),
            func.coalesce(func.sum(T.c.input_tokens), 0).label("input_tokens"),
            func.coalesce(func.sum(T.c.output_tokens), 0).label("output_tokens"),
            cost,
        )
        .where(T.c.created_at >= _cutoff(since))
        .group_by(group)
    )
    if by == "day":
        query = query.order_by(group)
    else:
        query = query.order_by(cost.desc(), literal_column("requests").desc(), group)
    return [
        {
            "group": row["grp"],
            "requests": int(row["requests"]),
            "attempts": int(row["attempts"]),
            "input_tokens": int(row["input_tokens"]),
            "output_tokens": int(row["output_tokens"]),
            "cost_usd": round(float(row["cost_usd"]), 10),
        }
        for row in _fetch(engine, query)
    ]


def usage_report(engine: Engine, period: Period, by: str) -> list[dict[str, Any]]:
    """`gatehouse usage` rows: USAGE_KEYS then USAGE_EXTRA_KEYS, per display-zone day (oldest
    first, days without traffic left out) or per group (by cost, highest first)."""
    if by not in USAGE_GROUPINGS:
        raise ConfigError(f"cannot group usage by {by!r}; use one of {', '.join(USAGE_GROUPINGS)}")
    if by == "day":
        s = queries.series(engine, period)
        named = [(day.isoformat(), s.total(day)) for day in s.buckets]
        named = [(name, usage) for name, usage in named if usage.attempts]
    else:
        named = [(g.name, g.usage) for g in queries.groups(engine, period, by)]
    return [_usage_json(name, usage) for name, usage in named]


def _usage_json(name: str, u: queries.Usage) -> dict[str, Any]:
    per_call = u.cost_per_call
    return {
        "group": name,
        "requests": u.calls,
        "attempts": u.attempts,
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cost_usd": round(u.cost_usd, 10),
        "cached_tokens": u.cached_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "errors": u.error_calls,
        "fallbacks": u.fallback_calls,
        "cost_per_call_usd": None if per_call is None else round(per_call, 10),
        "p50_ms": u.p50_ms,
        "p95_ms": u.p95_ms,
    }


def _group_column(dialect: str, by: str) -> ColumnElement[Any]:
    if by != "day":
        return T.c[by]
    return type_coerce(_utc_day(dialect), String)


def _utc_day(dialect: str) -> ColumnElement[Any]:
    """The UTC calendar day of `created_at` as 'YYYY-MM-DD' text, per dialect.

    Constants are literal SQL, not bound parameters: PostgreSQL would otherwise see the
    SELECT and GROUP BY expressions as different ($1 vs $3)."""
    if dialect == "postgresql":
        utc = func.timezone(literal_column("'UTC'"), T.c.created_at)
        return func.to_char(utc, literal_column("'YYYY-MM-DD'"))
    # SQLite keeps naive UTC text ('YYYY-MM-DD HH:MM:SS...'); date() takes its day.
    return func.date(T.c.created_at)


def _cutoff(since: timedelta) -> datetime:
    if since <= timedelta(0):
        raise ConfigError("the time span must be more than zero, e.g. 24h")
    return datetime.now(UTC) - since


def _fetch(engine: Engine, query: Any) -> list[Any]:
    try:
        with engine.connect() as conn:
            return list(conn.execute(query).mappings())
    except OperationalError as exc:
        raise unreachable(engine, exc) from None
