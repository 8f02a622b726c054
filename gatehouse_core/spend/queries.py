"""Every dashboard aggregation, in one place: the console pages and `gatehouse usage` read these.

Definitions (the one place they are written down):
- **calls**: calls counted once, in the group of their final attempt (`calls` of the rollup,
  i.e. rows with `final_attempt` true); **attempts**: audit rows.
- **error rate**: calls whose final status is not `ok` ÷ calls; **fallback rate**:
  `fallback_calls` ÷ calls (answered or failed on a provider other than the first tried).
- **cost**: the sum of `cost_usd` over every attempt (failed attempts normally cost nothing).
- **p50/p95**: from the 16-bucket histograms (`spend/buckets.py`), interpolated in the bucket.

Model, provider, source, actor and status groupings read the hourly rollup
(`llm_usage_hourly`); grouping or filtering by workflow reads its twin with `workflow_id` as
one more dimension (`llm_usage_hourly_workflow`, 0009). An hour bucket counts when its start
lies in the range, so ranges are whole UTC hours. Grouping or filtering by `trace_id`, which
no rollup keeps (one value per call or so), reads `llm_requests` bounded by the exact range
(calls there = final rows; rows written before 0005 carry no final mark and count once per
request).
Everything is summed in SQL and folded into display-zone days in Python, so SQLite and
PostgreSQL give identical results whatever the session time zone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Engine,
    and_,
    case,
    func,
    literal_column,
    select,
    text,
    true,
)
from sqlalchemy.exc import OperationalError

from ..db import unreachable
from ..errors import ConfigError
from ..schema import LLMRequest, UsageHourly, UsageHourlyWorkflow
from .buckets import BOUNDS_MS, BUCKETS, LATENCY_COLUMNS, TTFT_COLUMNS, percentile
from .periods import Period, day_start, local_day

U = UsageHourly.__table__
W = UsageHourlyWorkflow.__table__
R = LLMRequest.__table__

ROLLUP_GROUPINGS = ("model", "provider", "source", "actor", "status")
WORKFLOW_GROUPINGS = ("workflow",)  # llm_usage_hourly_workflow
RAW_GROUPINGS = ("trace",)  # no rollup: llm_requests
GROUPINGS = (*ROLLUP_GROUPINGS, *WORKFLOW_GROUPINGS, *RAW_GROUPINGS)
OTHER = "(other)"
NONE = ""  # a missing source/actor/workflow/trace, as the rollup stores it

_RAW_COLUMNS = {"workflow": "workflow_id", "trace": "trace_id"}
_COUNTERS = (
    "calls",
    "attempts",
    "fallback_calls",
    "error_calls",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "latency_count",
    "ttft_count",
)
_FLOATS = ("cost_usd", "cost_reported_usd", "cost_estimated_usd", "latency_ms_sum", "ttft_ms_sum")
_HISTOGRAMS = (*LATENCY_COLUMNS, *TTFT_COLUMNS)
_ZERO_COLUMN = literal_column("0")
_CALLS_INDEX = _COUNTERS.index("calls")
_COST_INDEX = len(_COUNTERS) + _FLOATS.index("cost_usd")
Step = Literal["hour", "day"]
_HOUR = timedelta(hours=1)
_MAX_HOURS = 24 * 93  # an hourly series is for short ranges; a quarter is the cap


@dataclass(frozen=True)
class Usage:
    """Summed measures of a set of calls; add two with `+`."""

    calls: int = 0
    attempts: int = 0
    fallback_calls: int = 0
    error_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    latency_count: int = 0
    ttft_count: int = 0
    cost_usd: float = 0.0
    cost_reported_usd: float = 0.0
    cost_estimated_usd: float = 0.0
    latency_ms_sum: float = 0.0
    ttft_ms_sum: float = 0.0
    latency_hist: tuple[int, ...] = field(default=(0,) * BUCKETS)
    ttft_hist: tuple[int, ...] = field(default=(0,) * BUCKETS)

    def __add__(self, other: Usage) -> Usage:
        return _usage([a + b for a, b in zip(_vector_of(self), _vector_of(other), strict=True)])

    @property
    def error_rate(self) -> float | None:
        return self.error_calls / self.calls if self.calls else None

    @property
    def fallback_rate(self) -> float | None:
        return self.fallback_calls / self.calls if self.calls else None

    @property
    def cost_per_call(self) -> float | None:
        return self.cost_usd / self.calls if self.calls else None

    @property
    def p50_ms(self) -> float | None:
        return percentile(self.latency_hist, 0.5)

    @property
    def p95_ms(self) -> float | None:
        return percentile(self.latency_hist, 0.95)

    @property
    def ttft_p50_ms(self) -> float | None:
        return percentile(self.ttft_hist, 0.5)

    @property
    def avg_latency_ms(self) -> float | None:
        return self.latency_ms_sum / self.latency_count if self.latency_count else None

    def to_json(self) -> dict[str, Any]:
        """The sums and the derived rates, for `--json` output and CSV downloads."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.endswith("_hist")}
        for name in ("error_rate", "fallback_rate", "cost_per_call", "p50_ms", "p95_ms"):
            data[name] = getattr(self, name)
        return data


@dataclass(frozen=True)
class Filters:
    """Equality filters; None = any value, "" = missing (no source, actor, workflow, trace),
    a tuple = any of those values (an empty tuple matches nothing)."""

    provider: str | tuple[str, ...] | None = None
    model: str | tuple[str, ...] | None = None
    source: str | tuple[str, ...] | None = None
    actor: str | tuple[str, ...] | None = None
    status: str | tuple[str, ...] | None = None
    workflow_id: str | tuple[str, ...] | None = None
    trace_id: str | tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for f in fields(self):  # a list from a caller becomes a tuple: hashable, cacheable
            value = getattr(self, f.name)
            if isinstance(value, list | set | frozenset):
                object.__setattr__(self, f.name, tuple(sorted(value)))

    @property
    def needs_raw(self) -> bool:
        return self.trace_id is not None

    @property
    def needs_workflow(self) -> bool:
        return self.workflow_id is not None


@dataclass(frozen=True)
class Comparison:
    """A period's usage next to the period of equal length before it."""

    current: Usage
    previous: Usage

    def change(self, measure: str) -> float | None:
        """Relative change of a measure or rate (0.25 = +25 %); None when there is no base."""
        now, before = getattr(self.current, measure), getattr(self.previous, measure)
        if now is None or before is None or before == 0:
            return None
        return (now - before) / before


@dataclass(frozen=True)
class Group:
    name: str
    usage: Usage
    share: float | None  # of the period's cost


@dataclass(frozen=True)
class Series:
    """Usage per time bucket (a local `date` per day, a UTC `datetime` per hour) and group."""

    buckets: list[Any]
    groups: list[str]
    values: dict[tuple[Any, str], Usage]

    def get(self, bucket: Any, group: str) -> Usage:
        return self.values.get((bucket, group), Usage())

    def column(self, group: str, measure: str) -> list[Any]:
        return [getattr(self.get(b, group), measure) for b in self.buckets]

    def total(self, bucket: Any) -> Usage:
        return sum((self.get(bucket, g) for g in self.groups), Usage())


# ---- public queries --------------------------------------------------------------------


def totals(engine: Engine, period: Period, filters: Filters | None = None) -> Usage:
    """Everything in the period (after filters) summed."""
    folded: dict[str, list[float]] = {}
    for _, _, vector in _aggregate(engine, period, filters or Filters(), by=None, step=None):
        _fold(folded, "", vector)
    return _usage(folded[""]) if folded else Usage()


def compare(engine: Engine, period: Period, filters: Filters | None = None) -> Comparison:
    """The period's totals and those of the period of equal length just before it."""
    return Comparison(totals(engine, period, filters), totals(engine, period.previous(), filters))


def groups(
    engine: Engine,
    period: Period,
    by: str,
    filters: Filters | None = None,
    *,
    limit: int | None = None,
    percentiles: bool = True,
) -> list[Group]:
    """Usage per group, by cost (then calls, then name); the top `limit` when given.
    `percentiles=False` leaves the latency histograms empty (a third of the work at scale)."""
    _check_grouping(by)
    folded: dict[str, list[float]] = {}
    rows = _aggregate(
        engine, period, filters or Filters(), by=by, step=None, histograms=_wanted(percentiles)
    )
    for name, _, vector in rows:
        _fold(folded, name, vector)
    per_group = {name: _usage(vector) for name, vector in folded.items()}
    total_cost = sum(u.cost_usd for u in per_group.values())
    ranked = sorted(
        per_group.items(), key=lambda item: (-item[1].cost_usd, -item[1].calls, item[0])
    )
    if limit is not None:
        ranked = ranked[:limit]
    return [Group(n, u, u.cost_usd / total_cost if total_cost else None) for n, u in ranked]


def series(
    engine: Engine,
    period: Period,
    *,
    by: str | None = None,
    step: Step = "day",
    filters: Filters | None = None,
    top: int | None = None,
    percentiles: bool = True,
    ttft: bool = True,
) -> Series:
    """Usage per day (display zone) or UTC hour, per group; beyond the `top` groups by cost
    everything is folded into "(other)". Every bucket of the period is listed, empty or not.
    `ttft=False` leaves the time-to-first-token histogram empty (a chart of latency alone)."""
    if by is not None:
        _check_grouping(by)
    if step not in ("hour", "day"):
        raise ConfigError(f"cannot step a series by {step!r}; use hour or day")
    filters = filters or Filters()
    in_sql_days = step == "day" and not _needs_raw(by, filters)
    rows = _aggregate(
        engine,
        period,
        filters,
        by=by,
        step="day" if in_sql_days else "hour",
        histograms=_wanted(percentiles, ttft),
    )
    keep = _top_names(rows, top)
    folded: dict[tuple[Any, str], list[float]] = {}
    days: dict[datetime, date] = {}  # one zone conversion per hour, not per row
    for name, hour, vector in rows:
        if step == "day" and not in_sql_days:
            bucket = days.get(hour) or days.setdefault(hour, local_day(hour, period.zone))
        else:
            bucket = hour
        group = name if keep is None or name in keep else OTHER
        _fold(folded, (bucket, group), vector)
    values = {key: _usage(vector) for key, vector in folded.items()}
    names = sorted({g for _, g in values}, key=lambda g: (g == OTHER, g))
    buckets = period.days() if step == "day" else _hours(period)
    return Series(buckets, names or ([] if by else [""]), values)


def daily_costs(
    engine: Engine, period: Period, filters: Filters | None = None
) -> list[tuple[date, float]]:
    """(local day, cost) for every day of the period, oldest first."""
    s = series(engine, period, filters=filters, percentiles=False)
    return [(day, round(s.total(day).cost_usd, 10)) for day in s.buckets]


def distinct_values(engine: Engine, period: Period, dimension: str) -> list[str]:
    """The values a rollup dimension takes in the period (for filter pickers)."""
    if dimension not in ROLLUP_GROUPINGS:
        raise ConfigError(
            f"no value list for {dimension!r}; use one of {', '.join(ROLLUP_GROUPINGS)}"
        )
    column = U.c[dimension]
    query = (
        select(column)
        .where(U.c.bucket_start >= period.start, U.c.bucket_start < period.end)
        .group_by(column)
        .order_by(column)
    )
    return [row[dimension] for row in _fetch(engine, query)]


def dimension_values(engine: Engine, period: Period) -> dict[str, list[str]]:
    """Every rollup dimension's values in the period, from one query (the filter pickers)."""
    columns = [U.c[name] for name in ROLLUP_GROUPINGS]
    query = (
        select(*columns)
        .where(U.c.bucket_start >= period.start, U.c.bucket_start < period.end)
        .distinct()  # PostgreSQL plans this as one hash; a GROUP BY of five texts took 2×
    )
    seen: dict[str, set[str]] = {name: set() for name in ROLLUP_GROUPINGS}
    for row in _fetch(engine, query):
        for name in ROLLUP_GROUPINGS:
            seen[name].add(row[name])
    return {name: sorted(values) for name, values in seen.items()}


# ---- the two sources ---------------------------------------------------------------------


def _aggregate(
    engine: Engine,
    period: Period,
    filters: Filters,
    *,
    by: str | None,
    step: Step | None,
    histograms: Sequence[str] = _HISTOGRAMS,
) -> list[tuple[str, Any, list[float]]]:
    """(group name, bucket or None, usage) rows from the rollup or, when needed, raw rows.
    The bucket is a UTC hour, or with step "day" (rollup only) a local `date`. Histogram
    columns not in `histograms` come back as zeros (not summed)."""
    if _needs_raw(by, filters):
        if step == "day":
            raise ValueError("raw rows are stepped by hour; fold them into days")
        return _from_raw(engine, period, filters, by, step, histograms)
    return _from_rollup(engine, period, filters, by, step, histograms)


def _wanted(percentiles: bool, ttft: bool = True) -> tuple[str, ...]:
    """The histogram columns a caller needs summed."""
    if not percentiles:
        return ()
    return _HISTOGRAMS if ttft else LATENCY_COLUMNS


def _needs_raw(by: str | None, filters: Filters) -> bool:
    return by in RAW_GROUPINGS or filters.needs_raw


def _local_days(column: Any, period: Period) -> tuple[ColumnElement[Any], list[date]]:
    """The index of the local day each hour bucket starts in, as SQL (a CASE over the day
    boundaries, computed here with the zone's rules, so DST and half-hour zones come out the
    same on every database), and the days it indexes. Rows are already inside the period."""
    days = period.days()
    # Always a CASE, also for one day: a bare constant in GROUP BY is a column position.
    whens = [
        (column < day_start(day + timedelta(days=1), period.zone), literal_column(str(i)))
        for i, day in enumerate(days)
    ]
    return case(*whens, else_=literal_column(str(len(days) - 1))), days


def _from_rollup(
    engine: Engine,
    period: Period,
    filters: Filters,
    by: str | None,
    step: Step | None,
    histograms: Sequence[str] = _HISTOGRAMS,
) -> list[tuple[str, datetime | None, list[float]]]:
    by_workflow = by in WORKFLOW_GROUPINGS or filters.needs_workflow
    table = W if by_workflow else U  # the small table unless workflow is asked for
    filtered = (*ROLLUP_GROUPINGS, "workflow_id") if by_workflow else ROLLUP_GROUPINGS
    keys: list[ColumnElement[Any]] = []
    if by is not None:
        keys.append(table.c[_RAW_COLUMNS.get(by, by)].label("grp"))
    days: list[date] = []
    if step == "day":
        day_index, days = _local_days(table.c.bucket_start, period)
        keys.append(day_index.label("hour"))
    elif step is not None:
        keys.append(table.c.bucket_start.label("hour"))
    not_ok = table.c.status != "ok"
    measures = [
        *(_sum(table.c[name]).label(name) for name in _COUNTERS if name != "error_calls"),
        _sum(case((not_ok, table.c.calls), else_=0)).label("error_calls"),
        *(_sum(table.c[name]).label(name) for name in _FLOATS),
        *(
            _sum(table.c[name]).label(name) if name in histograms else _ZERO_COLUMN.label(name)
            for name in _HISTOGRAMS
        ),
    ]
    where = [table.c.bucket_start >= period.start, table.c.bucket_start < period.end]
    for name in filtered:
        value = getattr(filters, name)
        if value is not None:
            where.append(_matches(table.c[name], value))
    query = select(*keys, *measures).where(*where)
    if keys:
        query = query.group_by(*keys)
    rows = [_row(row, by, step) for row in _fetch(engine, query)]
    if step == "day":
        return [(name, days[int(index)], vector) for name, index, vector in rows]
    return rows


def _matches(column: Any, value: str | tuple[str, ...]) -> ColumnElement[bool]:
    """One value, or any of several (a multi-select filter)."""
    return column == value if isinstance(value, str) else column.in_(value)


def _from_raw(
    engine: Engine,
    period: Period,
    filters: Filters,
    by: str | None,
    step: Step | None,
    histograms: Sequence[str] = _HISTOGRAMS,
) -> list[tuple[str, datetime | None, list[float]]]:
    keys: list[ColumnElement[Any]] = []
    if by is not None:
        keys.append(_raw_column(by).label("grp"))
    if step is not None:
        keys.append(_raw_hour(engine.dialect.name).label("hour"))
    one = literal_column("1")
    marked, unmarked = R.c.final_attempt.is_(True), R.c.final_attempt.is_(None)
    failed = R.c.status != "ok"

    def calls(condition: Any) -> ColumnElement[Any]:
        # Marked final rows are counted as rows; only rows from before 0005 (unmarked) need the
        # DISTINCT over request ids, which is a sort over every row of the range otherwise.
        return _sum(case((and_(marked, condition), one), else_=0)) + func.count(
            func.distinct(case((and_(unmarked, condition), R.c.request_id)))
        )

    measures = [
        calls(true()).label("calls"),
        func.count().label("attempts"),
        _sum(case((and_(marked, R.c.fallback.is_(True)), one), else_=0)).label("fallback_calls"),
        calls(failed).label("error_calls"),
        *(
            _sum(R.c[n]).label(n)
            for n in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")
        ),
        func.count(R.c.latency_ms).label("latency_count"),
        func.count(R.c.ttft_ms).label("ttft_count"),
        _sum(R.c.cost_usd).label("cost_usd"),
        _sum(case((R.c.cost_source == "provider", R.c.cost_usd), else_=0)).label(
            "cost_reported_usd"
        ),
        _sum(case((R.c.cost_source == "estimated", R.c.cost_usd), else_=0)).label(
            "cost_estimated_usd"
        ),
        _sum(R.c.latency_ms).label("latency_ms_sum"),
        _sum(R.c.ttft_ms).label("ttft_ms_sum"),
        *(
            summed if name in histograms else _ZERO_COLUMN.label(name)
            for summed, name in zip(
                (
                    *_raw_histogram(R.c.latency_ms, LATENCY_COLUMNS),
                    *_raw_histogram(R.c.ttft_ms, TTFT_COLUMNS),
                ),
                _HISTOGRAMS,
                strict=True,
            )
        ),
    ]
    where = [R.c.created_at >= period.start, R.c.created_at < period.end]
    for name in (*ROLLUP_GROUPINGS, "workflow_id", "trace_id"):
        value = getattr(filters, name)
        if value is not None:
            where.append(_matches(_raw_column(name), value))
    query = select(*keys, *measures).where(*where)
    if keys:
        query = query.group_by(*keys)
    rows = []
    for row in _fetch(engine, query):
        name, hour, usage = _row(row, by, None)
        if step is not None:
            hour = datetime.strptime(row["hour"], "%Y-%m-%d %H").replace(tzinfo=UTC)
        rows.append((name, hour, usage))
    return rows


def _raw_column(name: str) -> ColumnElement[Any]:
    column = R.c[_RAW_COLUMNS.get(name, name)]
    if name in ("model", "provider", "status"):
        return column
    return func.coalesce(column, literal_column("''"))


def _raw_hour(dialect: str) -> ColumnElement[Any]:
    """The UTC hour of `created_at` as 'YYYY-MM-DD HH' text (constants inline: PostgreSQL
    must see the SELECT and GROUP BY expressions as the same)."""
    if dialect == "postgresql":
        utc = func.timezone(literal_column("'UTC'"), R.c.created_at)
        return func.to_char(utc, literal_column("'YYYY-MM-DD HH24'"))
    return func.strftime(literal_column("'%Y-%m-%d %H'"), R.c.created_at)


def _raw_histogram(column: Any, names: Sequence[str]) -> list[ColumnElement[Any]]:
    """Counts per histogram bucket, with the bounds of spend/buckets.py (bisect_left)."""
    out = []
    one = literal_column("1")
    for index, name in enumerate(names):
        conditions = []
        if index > 0:
            conditions.append(column > literal_column(repr(float(BOUNDS_MS[index - 1]))))
        if index < len(BOUNDS_MS):
            conditions.append(column <= literal_column(repr(float(BOUNDS_MS[index]))))
        out.append(_sum(case((and_(column.is_not(None), *conditions), one), else_=0)).label(name))
    return out


# ---- helpers -----------------------------------------------------------------------------


def _sum(expression: Any) -> ColumnElement[Any]:
    return func.coalesce(func.sum(expression), 0)


def _row(row: Any, by: str | None, step: Step | None) -> tuple[str, datetime | None, list[float]]:
    """(group, hour, measures as a flat vector in `_VECTOR` order) of one result row; vectors
    are folded with plain additions and become a Usage once per group (fast at 10⁴ rows)."""
    vector = [*(int(row[n] or 0) for n in _COUNTERS), *(float(row[n] or 0) for n in _FLOATS)]
    vector += [int(row[c] or 0) for c in _HISTOGRAMS]
    name = "" if by is None else (row["grp"] or NONE)
    return name, (row["hour"] if step is not None else None), vector


def _fold(into: dict[Any, list[float]], key: Any, vector: list[float]) -> None:
    current = into.get(key)
    into[key] = vector if current is None else [a + b for a, b in zip(current, vector, strict=True)]


def _usage(vector: list[float]) -> Usage:
    scalars = len(_COUNTERS) + len(_FLOATS)
    return Usage(
        *vector[:scalars],  # type: ignore[arg-type]
        latency_hist=tuple(int(v) for v in vector[scalars : scalars + BUCKETS]),
        ttft_hist=tuple(int(v) for v in vector[scalars + BUCKETS :]),
    )


def _vector_of(usage: Usage) -> list[float]:
    return [
        *(getattr(usage, n) for n in (*_COUNTERS, *_FLOATS)),
        *usage.latency_hist,
        *usage.ttft_hist,
    ]


def _top_names(rows: Iterable[tuple[str, Any, list[float]]], top: int | None) -> set[str] | None:
    if top is None:
        return None
    cost: dict[str, tuple[float, int]] = {}
    for name, _, vector in rows:
        c, n = cost.get(name, (0.0, 0))
        cost[name] = (c + vector[_COST_INDEX], n + int(vector[_CALLS_INDEX]))
    ranked = sorted(cost, key=lambda n: (-cost[n][0], -cost[n][1], n))
    return set(ranked[:top])


def _hours(period: Period) -> list[datetime]:
    """The UTC hour buckets whose start lies in the period (capped at `_MAX_HOURS`)."""
    start = period.start.replace(minute=0, second=0, microsecond=0)
    if start < period.start:
        start += _HOUR
    hours: list[datetime] = []
    while start < period.end and len(hours) < _MAX_HOURS:
        hours.append(start)
        start += _HOUR
    return hours


def _check_grouping(by: str) -> None:
    if by not in GROUPINGS:
        raise ConfigError(f"cannot group by {by!r}; use one of {', '.join(GROUPINGS)}")


# A dashboard aggregation hashes up to a few thousand groups of ~50 sums each; with
# PostgreSQL's default 4 MB work_mem the planner sorts them on disk instead (a 30-day series
# by model at 10M rows: 197 ms with an external merge, 111 ms hashed in memory).
_WORK_MEM = text("SET LOCAL work_mem = '32MB'")


def _fetch(engine: Engine, query: Any) -> list[Any]:
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(_WORK_MEM)  # for this transaction only
            return list(conn.execute(query).mappings())
    except OperationalError as exc:
        raise unreachable(engine, exc) from None
