"""The hourly rollups `llm_usage_hourly` and `llm_usage_hourly_workflow`: kept up to date
with every audit batch, and rebuilt.

The two hold the same measures; the second has `workflow_id` ('' when missing) as one more
dimension, for the views that group or filter by workflow, and sums over workflows to the
first. Both are written from one aggregation, in the same transaction.

`apply_rows(conn, rows)` runs inside the transaction that inserted `rows` into `llm_requests`
(audit.py's `_insert_rows`), so a batch and its rollup increments commit or roll back together:
a retried batch that the dedup path skips is never counted twice. Each touched bucket gets one
upsert whose SET adds to the stored counters (`calls = llm_usage_hourly.calls + excluded.calls`),
which is what keeps several writer processes correct without reading first. Buckets are sorted
so concurrent writers lock them in the same order (no deadlock on PostgreSQL).

What the counters mean (one definition for every reader of the table):
- bucket: `created_at` truncated to the UTC hour; a NULL source, actor or workflow is ''.
- `calls`: final attempts (`final_attempt` true); `attempts`: rows; `fallback_calls`: final rows
  with `fallback` true. Rows written before 0005 (`final_attempt` NULL) count as final when they
  are the highest attempt of their `request_id`, and as a fallback when their provider differs
  from the provider of the lowest attempt.
- tokens and `cost_usd` sum every row; `cost_reported_usd` the rows with cost_source 'provider',
  `cost_estimated_usd` those with 'estimated'.
- latency/TTFT: sum, count of non-NULL values, and one count per histogram bucket (buckets.py).

`rebuild(engine, since=...)` recomputes whole UTC days from the raw rows in SQL, one transaction
per day. It never goes back past the day of the oldest raw row (and does nothing without raw
rows), so rollups whose raw rows were pruned (retention.py) stay as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    and_,
    case,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from ..db import unreachable
from ..schema import LLMRequest, UsageHourly, UsageHourlyWorkflow
from .buckets import BOUNDS_MS, BUCKETS, LATENCY_COLUMNS, TTFT_COLUMNS, bucket_index

__all__ = [
    "COUNTERS",
    "KEY",
    "WORKFLOW_KEY",
    "DayRebuilt",
    "aggregate",
    "aggregate_by_workflow",
    "apply_changes",
    "apply_rows",
    "rebuild",
    "rollup_totals",
]

R = LLMRequest.__table__
U = UsageHourly.__table__
W = UsageHourlyWorkflow.__table__
KEY = ("bucket_start", "provider", "model", "source", "actor", "status")
# The workflow rollup's key: KEY with workflow_id second (what `_coarse` drops again).
WORKFLOW_KEY = ("bucket_start", "workflow_id", *KEY[1:])
COUNTERS = (
    "calls",
    "attempts",
    "fallback_calls",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "cost_reported_usd",
    "cost_estimated_usd",
    "latency_ms_sum",
    "latency_count",
    "ttft_ms_sum",
    "ttft_count",
    *LATENCY_COLUMNS,
    *TTFT_COLUMNS,
)
_FLOATS = frozenset(
    {"cost_usd", "cost_reported_usd", "cost_estimated_usd", "latency_ms_sum", "ttft_ms_sum"}
)
_ZERO = tuple(0.0 if name in _FLOATS else 0 for name in COUNTERS)
_LAT0 = COUNTERS.index(LATENCY_COLUMNS[0])
_TTFT0 = COUNTERS.index(TTFT_COLUMNS[0])

# (last attempt, provider of the first attempt) per request_id, for rows without marks.
Chains = dict[str, tuple[int, str]]


# ---- aggregation in Python (the writer's path) ---------------------------------------------


def _hour(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(minute=0, second=0, microsecond=0)


def _marks(row: dict[str, Any], chains: Chains) -> tuple[bool, bool]:
    """(is this row its call's final attempt, did that call fall back)."""
    final = row.get("final_attempt")
    if final is not None:
        return bool(final), bool(final and row.get("fallback"))
    last, first_provider = chains.get(row["request_id"], (row["attempt"], row["provider"]))
    final = row["attempt"] >= last
    return final, final and row["provider"] != first_provider


# Offsets in COUNTERS of the token sums.
TOKEN_FIELDS = (
    (3, "input_tokens"),
    (4, "output_tokens"),
    (5, "cached_tokens"),
    (6, "reasoning_tokens"),
)


# A value the raw insert accepted but Python cannot add (numbers as text from a hand-written
# row) must not make the batch fail: a bad record is not an outage. Counted as the database
# would (numeric text as its number, anything else as nothing); `rebuild` recomputes in SQL.
def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        return 0


def _float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = value if type(value) is float else float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def aggregate(rows: Iterable[dict[str, Any]], chains: Chains | None = None) -> dict[tuple, list]:
    """Rows of `llm_requests` → {KEY: counters in COUNTERS order}."""
    return _coarse(aggregate_by_workflow(rows, chains))


def _coarse(buckets: dict[tuple, list]) -> dict[tuple, list]:
    """WORKFLOW_KEY buckets folded into KEY buckets (summed over workflows)."""
    out: dict[tuple, list] = {}
    for key, values in buckets.items():
        coarse = (key[0], *key[2:])
        acc = out.get(coarse)
        if acc is None:
            out[coarse] = list(values)
        else:
            for index, value in enumerate(values):
                acc[index] += value
    return out


def aggregate_by_workflow(
    rows: Iterable[dict[str, Any]], chains: Chains | None = None
) -> dict[tuple, list]:
    """Rows of `llm_requests` → {WORKFLOW_KEY: counters in COUNTERS order}."""
    chains = chains or {}
    out: dict[tuple, list] = {}
    for row in rows:
        key = (
            _hour(row["created_at"]),
            row.get("workflow_id") or "",
            row["provider"],
            row["model"],
            row.get("source") or "",
            row.get("actor") or "",
            row["status"],
        )
        acc = out.get(key)
        if acc is None:
            acc = out[key] = list(_ZERO)
        final, fallback = _marks(row, chains)
        acc[0] += final
        acc[1] += 1
        acc[2] += fallback
        for offset, name in TOKEN_FIELDS:
            tokens = row.get(name)
            if tokens:
                acc[offset] += tokens if type(tokens) is int else _int(tokens)
        cost = _float(row.get("cost_usd")) or 0.0
        acc[7] += cost
        source = row.get("cost_source")
        if source == "provider":
            acc[8] += cost
        elif source == "estimated":
            acc[9] += cost
        latency = _float(row.get("latency_ms"))
        if latency is not None:
            acc[10] += latency
            acc[11] += 1
            acc[_LAT0 + bucket_index(latency)] += 1
        ttft = _float(row.get("ttft_ms"))
        if ttft is not None:
            acc[12] += ttft
            acc[13] += 1
            acc[_TTFT0 + bucket_index(ttft)] += 1
    return out


def _chains(conn: Connection, request_ids: Sequence[str]) -> Chains:
    """Last attempt and first provider of each request, read from the table (batch included)."""
    found: Chains = {}
    for start in range(0, len(request_ids), 500):
        ids = request_ids[start : start + 500]
        bounds = (
            select(
                R.c.request_id,
                func.min(R.c.attempt).label("first"),
                func.max(R.c.attempt).label("last"),
            )
            .where(R.c.request_id.in_(ids))
            .group_by(R.c.request_id)
            .subquery()
        )
        query = select(bounds.c.request_id, bounds.c.last, R.c.provider).join(
            R, and_(R.c.request_id == bounds.c.request_id, R.c.attempt == bounds.c.first)
        )
        found.update({rid: (last, provider) for rid, last, provider in conn.execute(query)})
    return found


@cache
def _upsert(dialect: str, workflow: bool) -> Any:
    table, key = (W, WORKFLOW_KEY) if workflow else (U, KEY)
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={name: table.c[name] + stmt.excluded[name] for name in COUNTERS},
    )


def _write(conn: Connection, buckets: dict[tuple, list]) -> int:
    """Add WORKFLOW_KEY `buckets` to both rollups; returns the llm_usage_hourly rows touched."""
    if not buckets:
        return 0
    coarse = _coarse(buckets)
    # Sorted, and always llm_usage_hourly first: concurrent writers lock shared buckets in
    # the same order (no deadlock on PostgreSQL).
    for workflow, key, part in ((False, KEY, coarse), (True, WORKFLOW_KEY, buckets)):
        params = [
            {**dict(zip(key, bucket, strict=True)), **dict(zip(COUNTERS, values, strict=True))}
            for bucket, values in sorted(part.items())
        ]
        conn.execute(_upsert(conn.dialect.name, workflow), params)
    return len(coarse)


def apply_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Add `rows` (just inserted into llm_requests on `conn`) to the hourly rollup.

    Call it inside the inserting transaction. Returns the number of (llm_usage_hourly)
    buckets touched."""
    unmarked = sorted({r["request_id"] for r in rows if r.get("final_attempt") is None})
    chains = _chains(conn, unmarked) if unmarked else {}
    return _write(conn, aggregate_by_workflow(rows, chains))


def apply_changes(
    conn: Connection, before: Sequence[dict[str, Any]], after: Sequence[dict[str, Any]]
) -> int:
    """Move the rollup by what changed when rows `before` were updated in place to `after`
    (same rows, same order; e.g. a cost set by reconciliation), with the same atomic
    increments as `apply_rows`. Call it inside the transaction that updated the rows."""
    delta: dict[tuple, list] = {}
    for sign, rows in ((1, after), (-1, before)):
        for key, values in aggregate_by_workflow(rows).items():
            acc = delta.setdefault(key, list(_ZERO))
            for index, value in enumerate(values):
                acc[index] += sign * value
    changed = {key: values for key, values in delta.items() if any(values)}
    return _write(conn, changed)


# ---- rebuild from raw rows in SQL ----------------------------------------------------------


@dataclass(frozen=True)
class DayRebuilt:
    """One UTC day recomputed: `rows` raw rows read, `buckets` rollup rows written."""

    day: datetime
    rows: int
    buckets: int

    def to_json(self) -> dict[str, Any]:
        return {"day": self.day.date().isoformat(), "rows": self.rows, "buckets": self.buckets}


def _hour_sql(dialect: str) -> Any:
    # Constants as literal SQL so SELECT and GROUP BY render the same expression on PostgreSQL.
    if dialect == "postgresql":
        return func.date_trunc(literal_column("'hour'"), R.c.created_at, literal_column("'UTC'"))
    # SQLite keeps naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'.
    return func.strftime(literal_column("'%Y-%m-%d %H:00:00'"), R.c.created_at)


def _histogram_sql(column: Any) -> list[Any]:
    sums = []
    for index in range(BUCKETS):
        low = BOUNDS_MS[index - 1] if index else None
        high = BOUNDS_MS[index] if index < len(BOUNDS_MS) else None
        conditions = [column.is_not(None)]
        if low is not None:
            conditions.append(column > low)
        if high is not None:
            conditions.append(column <= high)
        sums.append(func.sum(case((and_(*conditions), 1), else_=0)))
    return sums


# How far apart the attempts of one call may be: they span seconds to minutes, so a day on
# either side bounds the search for an unmarked row's chain to an index range.
CHAIN_SPAN = timedelta(days=1)


def _marks_sql(start: datetime, end: datetime, unmarked: bool) -> tuple[Any, Any, Any]:
    """(FROM clause, is-final condition, is-fallback condition) for a day's rows."""
    marked_final = R.c.final_attempt.is_(True)
    marked_fallback = and_(marked_final, R.c.fallback.is_(True))
    if not unmarked:  # every row carries its marks: no chain lookup at all
        return R, marked_final, marked_fallback
    in_day = and_(R.c.created_at >= start, R.c.created_at < end)
    unmarked_ids = select(R.c.request_id).where(in_day, R.c.final_attempt.is_(None))
    near = and_(R.c.created_at >= start - CHAIN_SPAN, R.c.created_at < end + CHAIN_SPAN)
    bounds = (
        select(
            R.c.request_id,
            func.min(R.c.attempt).label("first"),
            func.max(R.c.attempt).label("last"),
        )
        .where(near, R.c.request_id.in_(unmarked_ids))
        .group_by(R.c.request_id)
        .subquery("bounds")
    )
    first = R.alias("first_row")
    chains = (
        select(bounds.c.request_id, bounds.c.last, first.c.provider.label("first_provider"))
        .join(
            first,
            and_(first.c.request_id == bounds.c.request_id, first.c.attempt == bounds.c.first),
        )
        .subquery("chains")
    )
    legacy = and_(R.c.final_attempt.is_(None), R.c.attempt == chains.c.last)
    final = or_(marked_final, legacy)
    fallback = or_(marked_fallback, and_(legacy, R.c.provider != chains.c.first_provider))
    return R.outerjoin(chains, chains.c.request_id == R.c.request_id), final, fallback


def _day_query(dialect: str, start: datetime, end: datetime, unmarked: bool) -> Select[Any]:
    in_day = and_(R.c.created_at >= start, R.c.created_at < end)
    source, final, fallback = _marks_sql(start, end, unmarked)

    def total(column: Any) -> Any:
        return func.coalesce(func.sum(column), 0)

    def where(condition: Any, column: Any) -> Any:
        return func.coalesce(func.sum(case((condition, column), else_=0)), 0)

    hour = _hour_sql(dialect).label("bucket_start")
    dims = [
        hour,
        func.coalesce(R.c.workflow_id, literal_column("''")).label("workflow_id"),
        R.c.provider,
        R.c.model,
        func.coalesce(R.c.source, literal_column("''")).label("source"),
        func.coalesce(R.c.actor, literal_column("''")).label("actor"),
        R.c.status,
    ]
    values = [
        func.sum(case((final, 1), else_=0)),
        func.count(),
        func.sum(case((fallback, 1), else_=0)),
        total(R.c.input_tokens),
        total(R.c.output_tokens),
        total(R.c.cached_tokens),
        total(R.c.reasoning_tokens),
        total(R.c.cost_usd),
        where(R.c.cost_source == "provider", R.c.cost_usd),
        where(R.c.cost_source == "estimated", R.c.cost_usd),
        total(R.c.latency_ms),
        func.count(R.c.latency_ms),
        total(R.c.ttft_ms),
        func.count(R.c.ttft_ms),
        *_histogram_sql(R.c.latency_ms),
        *_histogram_sql(R.c.ttft_ms),
    ]
    labelled = [v.label(name) for v, name in zip(values, COUNTERS, strict=True)]
    return select(*dims, *labelled).select_from(source).where(in_day).group_by(*dims)


def _rebuild_day(conn: Connection, start: datetime) -> DayRebuilt:
    end = start + timedelta(days=1)
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # Writers wait at their rollup upsert until this day is consistent again; their raw
        # rows are either committed (and read below) or not yet (and added after us).
        # Both tables, in the writers' order.
        conn.execute(text("LOCK TABLE llm_usage_hourly IN EXCLUSIVE MODE"))
        conn.execute(text("LOCK TABLE llm_usage_hourly_workflow IN EXCLUSIVE MODE"))
    # On SQLite the DELETE takes the write lock first, so the read below sees the latest rows.
    for table in (U, W):
        conn.execute(delete(table).where(table.c.bucket_start >= start, table.c.bucket_start < end))
    in_day = and_(R.c.created_at >= start, R.c.created_at < end)
    probe = select(R.c.id).where(in_day, R.c.final_attempt.is_(None)).limit(1)
    unmarked = conn.execute(probe).first() is not None
    buckets: dict[tuple, list] = {}
    rows = 0
    for found in conn.execute(_day_query(dialect, start, end, unmarked)).mappings():
        key = (_hour(found["bucket_start"]), *(found[name] for name in WORKFLOW_KEY[1:]))
        buckets[key] = [_number(name, found[name]) for name in COUNTERS]
        rows += int(found["attempts"])
    return DayRebuilt(day=start, rows=rows, buckets=_write(conn, buckets))


def _number(name: str, value: Any) -> float | int:
    return float(value or 0) if name in _FLOATS else int(value or 0)


def _day_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def rebuild(
    engine: Engine,
    *,
    since: timedelta,
    now: datetime | None = None,
    progress: Callable[[DayRebuilt], None] | None = None,
) -> list[DayRebuilt]:
    """Recompute the rollup for every UTC day from `now - since` to today, one transaction
    per day, calling `progress` after each. Days before the oldest raw row are left alone."""
    now = now or datetime.now(UTC)
    first = _day_start(now - since)
    try:
        with engine.connect() as conn:
            oldest = conn.execute(select(func.min(R.c.created_at))).scalar()
        if oldest is None:
            return []  # no raw rows (all pruned?): the rollup is all there is
        first = max(first, _day_start(oldest))
        done = []
        day = first
        while day <= now:
            with engine.begin() as conn:
                result = _rebuild_day(conn, day)
            done.append(result)
            if progress:
                progress(result)
            day += timedelta(days=1)
    except OperationalError as exc:
        raise unreachable(engine, exc) from None
    return done


def rollup_totals(
    conn: Connection, *, by_workflow: bool = False, **where: str
) -> dict[str, float | int]:
    """Sums of every counter over the rollup rows matching `where` (e.g. source="demo"), of
    llm_usage_hourly or, with `by_workflow`, of llm_usage_hourly_workflow."""
    table = W if by_workflow else U
    query = select(*(func.coalesce(func.sum(table.c[n]), 0).label(n) for n in COUNTERS))
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    found = conn.execute(query).mappings().one()
    return {name: _number(name, found[name]) for name in COUNTERS}
