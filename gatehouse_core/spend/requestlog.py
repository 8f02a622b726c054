"""The audit log for browsing: keyset pages, one call's attempt chain, bounded CSV export.

Pages are newest first by `(created_at, id)` and continue from an opaque cursor (the last
row's pair), never OFFSET: a page costs the same at row 50 and at row 5,000,000, and rows that
arrive while someone pages do not shift or repeat what they see (new rows are newer than the
cursor). Reads use the (created_at, id) order the keyset index serves.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select
from sqlalchemy.exc import OperationalError

from ..db import unreachable
from ..errors import ConfigError
from ..results import ATTEMPT_STATUSES
from ..schema import LLMRequest

R = LLMRequest.__table__
COLUMNS = tuple(c.name for c in R.columns)
MAX_PAGE = 500
EXPORT_MAX_ROWS = 100_000
EXPORT_BATCH = 1_000


@dataclass(frozen=True)
class RequestFilters:
    """Equality filters on audit rows and a [start, end) time range; None = any.
    `""` for source/actor/workflow_id/trace_id/error_type means "missing"; a tuple of values
    for provider/model/status/source/actor means any of them."""

    start: datetime | None = None
    end: datetime | None = None
    provider: str | tuple[str, ...] | None = None
    model: str | tuple[str, ...] | None = None
    status: str | tuple[str, ...] | None = None
    source: str | tuple[str, ...] | None = None
    actor: str | tuple[str, ...] | None = None
    workflow_id: str | None = None
    trace_id: str | None = None
    error_type: str | None = None
    request_id: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):  # several values of a filter: a tuple (hashable)
            value = getattr(self, f.name)
            if isinstance(value, list | set | frozenset):
                object.__setattr__(self, f.name, tuple(sorted(value)))
        statuses = (self.status,) if isinstance(self.status, str) else self.status or ()
        for status in statuses:
            if status not in ATTEMPT_STATUSES:
                raise ConfigError(
                    f"status {status!r} is unknown; use one of {', '.join(ATTEMPT_STATUSES)}"
                )
        if self.start and self.end and self.end <= self.start:
            raise ConfigError("the time range ends before it starts; pick a later end")

    def conditions(self) -> list[Any]:
        where: list[Any] = []
        if self.start is not None:
            where.append(R.c.created_at >= self.start)
        if self.end is not None:
            where.append(R.c.created_at < self.end)
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("start", "end") or value is None:
                continue
            column = R.c[f.name]
            nullable = f.name not in ("provider", "model", "status", "request_id")
            wanted = (value,) if isinstance(value, str) else value
            exact = [v for v in wanted if v or not nullable]
            matches = [column == exact[0]] if len(exact) == 1 else [column.in_(exact)]
            if nullable and "" in wanted:
                matches = [or_(column.is_(None), column == "")] + (matches if exact else [])
            where.append(matches[0] if len(matches) == 1 else or_(*matches))
        return where


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next_cursor: str | None  # None on the last page


def encode_cursor(created_at: datetime, row_id: int) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        stamp, _, row_id = base64.urlsafe_b64decode(padded).decode().partition("|")
        moment = datetime.fromisoformat(stamp)
        if moment.tzinfo is None:
            raise ValueError(stamp)
        return moment, int(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ConfigError(
            "the page cursor is not one this console made; start again from the first page"
        ) from None


def page(
    engine: Engine,
    filters: RequestFilters | None = None,
    *,
    after: str | None = None,
    limit: int = 50,
) -> Page:
    """Up to `limit` rows older than the cursor `after` (from the newest when None)."""
    if not 1 <= limit <= MAX_PAGE:
        raise ConfigError(f"page size {limit} is out of range; give 1 to {MAX_PAGE}")
    query = _ordered((filters or RequestFilters()).conditions(), after).limit(limit + 1)
    rows = _fetch(engine, query)
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return Page(rows, cursor)


def count(engine: Engine, filters: RequestFilters | None = None, *, cap: int = 10_000) -> int:
    """How many rows match, counting at most `cap` (so a count never scans millions)."""
    inner = select(R.c.id).where(*(filters or RequestFilters()).conditions()).limit(cap)
    (row,) = _fetch(engine, select(func.count().label("n")).select_from(inner.subquery()))
    return int(row["n"])


def call_attempts(engine: Engine, request_id: str) -> list[dict[str, Any]]:
    """Every attempt of one call, in order. Rows are written when an attempt ends, so each
    gets `started_at` (= created_at − latency) and `offset_ms` from the first attempt's start."""
    query = select(R).where(R.c.request_id == request_id).order_by(R.c.attempt, R.c.id)
    rows = _fetch(engine, query)
    if not rows:
        raise ConfigError(f"no call with request id {request_id!r} in the audit log")
    for row in rows:
        row["started_at"] = row["created_at"] - timedelta(milliseconds=row["latency_ms"] or 0)
    first = min(row["started_at"] for row in rows)
    for row in rows:
        row["offset_ms"] = round((row["started_at"] - first).total_seconds() * 1000, 1)
    return rows


def export_csv(
    engine: Engine,
    filters: RequestFilters | None = None,
    *,
    max_rows: int = EXPORT_MAX_ROWS,
    batch: int = EXPORT_BATCH,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[str]:
    """CSV text of the matching rows, newest first, read in keyset batches of `batch` rows and
    stopped after `max_rows` (a last line says so). `on_progress(rows_so_far)` after each batch."""
    yield _csv_line(COLUMNS)
    conditions = (filters or RequestFilters()).conditions()
    written, cursor = 0, None
    while written < max_rows:
        size = min(batch, max_rows - written)
        rows = _fetch(engine, _ordered(conditions, cursor).limit(size))
        if not rows:
            return
        yield "".join(_csv_line([_cell(row[c]) for c in COLUMNS]) for row in rows)
        written += len(rows)
        cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"])
        if on_progress:
            on_progress(written)
        if len(rows) < size:
            return
    if _fetch(engine, _ordered(conditions, cursor).limit(1)):
        yield _csv_line([f"# stopped after {max_rows} rows; narrow the filters for the rest"])


def _ordered(conditions: list[Any], after: str | None) -> Any:
    query = select(R).where(*conditions)
    if after is not None:
        moment, row_id = decode_cursor(after)
        query = query.where(
            or_(R.c.created_at < moment, and_(R.c.created_at == moment, R.c.id < row_id))
        )
    return query.order_by(R.c.created_at.desc(), R.c.id.desc())


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return "" if value is None else value


def _csv_line(values: Any) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


def _fetch(engine: Engine, query: Any) -> list[Any]:
    try:
        with engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]
    except OperationalError as exc:
        raise unreachable(engine, exc) from None
