"""What the Costs page shows of `reconciliations`: drift per day and provider, and the last day
reconciled. The rows are written by `spend/reconcile.py`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError

from ..db import unreachable
from ..schema import Reconciliation
from .periods import Period

__all__ = ["DayDrift", "drift_by_day", "drift_pct", "drift_usd", "reconciled_through"]

T = Reconciliation.__table__


@dataclass(frozen=True)
class DayDrift:
    """One day × provider, summed over models: drift = OpenRouter's figure − ours."""

    day: date
    provider: str
    ours_usd: float
    openrouter_usd: float
    corrected_generations: int
    checked_at: datetime

    @property
    def drift_usd(self) -> float:
        return drift_usd(self.ours_usd, self.openrouter_usd)

    @property
    def drift_pct(self) -> float | None:
        return drift_pct(self.ours_usd, self.openrouter_usd)


def drift_usd(ours_usd: float, openrouter_usd: float) -> float:
    """OpenRouter's figure − ours, to the 10 decimals money is kept in."""
    return round(openrouter_usd - ours_usd, 10)


def drift_pct(ours_usd: float, openrouter_usd: float) -> float | None:
    """The drift relative to OpenRouter's figure, in % to 4 places; None when it billed nothing."""
    if not openrouter_usd:
        return None
    return round(drift_usd(ours_usd, openrouter_usd) / openrouter_usd * 100, 4)


def drift_by_day(engine: Engine, period: Period) -> list[DayDrift]:
    """The stored reconciliations of the period's local days, newest day first."""
    days = period.days()
    query = (
        select(
            T.c.day,
            T.c.provider,
            func.sum(T.c.ours_usd),
            func.sum(T.c.openrouter_usd),
            func.sum(T.c.corrected_generations),
            func.max(T.c.checked_at),
        )
        .where(T.c.day >= days[0], T.c.day <= days[-1])
        .group_by(T.c.day, T.c.provider)
        .order_by(T.c.day.desc(), T.c.provider)
    )
    try:
        with engine.connect() as conn:
            found = conn.execute(query).all()
    except OperationalError as exc:
        raise unreachable(engine, exc) from None
    return [
        DayDrift(
            day=row[0],
            provider=row[1],
            ours_usd=float(row[2] or 0),
            openrouter_usd=float(row[3] or 0),
            corrected_generations=int(row[4] or 0),
            checked_at=row[5],  # max() keeps the column's type: an aware UTC datetime
        )
        for row in found
    ]


def reconciled_through(engine: Engine) -> date | None:
    """The latest day any provider was reconciled, or None before the first run."""
    try:
        with engine.connect() as conn:
            return conn.execute(select(func.max(T.c.day))).scalar()
    except OperationalError as exc:
        raise unreachable(engine, exc) from None
