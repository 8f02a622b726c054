"""Retention of raw audit rows: delete old `llm_requests` rows in bounded batches, keep rollups.

`prune(engine, older_than=...)` deletes rows from UTC days that began before `now -
older_than` (whole days, so a day's raw rows are either all there or all gone, and `rollups
rebuild` never recomputes a half-pruned day), one transaction per batch so writers are never
held up for long. The hourly rollups are not touched: charts over pruned months still work.

`prune_if_due(engine)` is what a long-running process (the console) calls, e.g. hourly from a
background thread: with `GATEHOUSE_AUDIT_RETENTION_DAYS` set it prunes at most once a day
across every process sharing the database (the last run is recorded in `system_settings`
under `audit_retention`); unset, it does nothing. It takes as long as the pruning, so call it
off the request path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import OperationalError

from .. import settings
from ..db import unreachable
from ..schema import LLMRequest
from .claims import claim

__all__ = ["PruneProgress", "PruneResult", "prune", "prune_if_due", "retention_days"]

R = LLMRequest.__table__
MARKER_KEY = "audit_retention"
BATCH_ROWS = 10_000


@dataclass(frozen=True)
class PruneProgress:
    """After each batch: rows deleted so far out of the rows older than the cutoff."""

    deleted: int
    total: int


@dataclass(frozen=True)
class PruneResult:
    """`cutoff`: rows created before it were deleted; `deleted`: how many."""

    cutoff: datetime
    deleted: int

    def to_json(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff.isoformat(), "deleted": self.deleted}


def cutoff_for(older_than: timedelta, now: datetime | None = None) -> datetime:
    """The start of the UTC day `older_than` before `now`: rows before it are pruned."""
    moment = (now or datetime.now(UTC)).astimezone(UTC) - older_than
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def prune(
    engine: Engine,
    *,
    older_than: timedelta,
    now: datetime | None = None,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[PruneProgress], None] | None = None,
) -> PruneResult:
    """Delete raw audit rows older than `older_than` (whole UTC days) in batches."""
    cutoff = cutoff_for(older_than, now)
    old = R.c.created_at < cutoff
    try:
        with engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(R).where(old)).scalar_one()
        deleted = 0
        # Bounded: rows only become older, so `total` plus rows that crossed the cutoff while
        # we ran is all there is; the extra rounds cover late spill imports.
        for _ in range(total // batch_rows + 3):
            batch = select(R.c.id).where(old).order_by(R.c.created_at, R.c.id).limit(batch_rows)
            with engine.begin() as conn:
                gone = conn.execute(delete(R).where(R.c.id.in_(batch.scalar_subquery()))).rowcount
            deleted += gone
            if progress:
                progress(PruneProgress(deleted=deleted, total=max(total, deleted)))
            if gone < batch_rows:
                break
    except OperationalError as exc:
        raise unreachable(engine, exc) from None
    return PruneResult(cutoff=cutoff, deleted=deleted)


def retention_days(env: Mapping[str, str] | None = None) -> int | None:
    """GATEHOUSE_AUDIT_RETENTION_DAYS, or None (keep everything)."""
    return settings.get_positive_int("GATEHOUSE_AUDIT_RETENTION_DAYS", env)


def prune_if_due(
    engine: Engine,
    *,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
    every: timedelta = timedelta(days=1),
) -> PruneResult | None:
    """Prune per GATEHOUSE_AUDIT_RETENTION_DAYS unless some process did so within `every`.

    None when retention is off or not due. The run is claimed first with one conditional
    UPDATE, so of several processes asking at once exactly one prunes. Raises
    DatabaseUnavailable (a GatehouseError) when the database cannot be reached."""
    days = retention_days(env)
    if days is None:
        return None
    now = (now or datetime.now(UTC)).astimezone(UTC)
    try:
        claimed = _claim(engine, now, every, days)
    except OperationalError as exc:
        raise unreachable(engine, exc) from None
    return prune(engine, older_than=timedelta(days=days), now=now) if claimed else None


def _claim(engine: Engine, now: datetime, every: timedelta, days: int) -> bool:
    return claim(
        engine,
        MARKER_KEY,
        due=lambda updated_at: updated_at <= now - every,
        now=now,
        value={"last_run_at": now.isoformat(), "retention_days": days},
        description="When audit rows were last pruned (GATEHOUSE_AUDIT_RETENTION_DAYS)",
        actor="retention",
    )
