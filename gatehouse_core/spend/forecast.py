"""Month-to-date spend and the month-end forecast, in the display time zone.

Method (the one the dashboards show): the daily run-rate is the mean cost of the trailing 7
*complete* local days (yesterday and the six days before it), and the forecast is
month-to-date + run-rate × the days left in the month (today's remaining hours included, as a
fraction). A weekday-aware rate (Mondays like past Mondays) was not adopted: nothing here shows
it is better, and on a short history it amplifies single spikes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from .periods import Period, day_start, local_day, month_start, next_month
from .queries import Filters, daily_costs, totals

WINDOW_DAYS = 7
METHOD = f"mean daily cost of the last {WINDOW_DAYS} complete days × days left in the month"


@dataclass(frozen=True)
class Forecast:
    month: date  # first day of the month
    month_to_date_usd: float
    today_usd: float
    trailing: list[tuple[date, float]]  # the complete days the run-rate is taken from
    run_rate_usd_per_day: float
    days_left: float
    forecast_usd: float
    method: str = METHOD


def project(month_to_date: float, trailing_costs: list[float], days_left: float) -> float:
    """month-to-date + mean(trailing) × days_left (the arithmetic, separately testable)."""
    rate = sum(trailing_costs) / len(trailing_costs) if trailing_costs else 0.0
    return month_to_date + rate * max(days_left, 0.0)


def month_forecast(
    engine: Engine, now: datetime, zone: ZoneInfo, filters: Filters | None = None
) -> Forecast:
    """This month's spend so far and where it ends at the trailing run-rate."""
    today = local_day(now, zone)
    first = month_start(today)
    to_date = _cost(engine, day_start(first, zone), now, zone, filters)
    today_cost = _cost(engine, day_start(today, zone), now, zone, filters)
    window = Period(
        day_start(today - timedelta(days=WINDOW_DAYS), zone), day_start(today, zone), zone
    )
    trailing = daily_costs(engine, window, filters)
    days_left = (day_start(next_month(today), zone) - now).total_seconds() / 86400
    costs = [cost for _, cost in trailing]
    rate = sum(costs) / len(costs) if costs else 0.0
    return Forecast(
        month=first,
        month_to_date_usd=to_date,
        today_usd=today_cost,
        trailing=trailing,
        run_rate_usd_per_day=rate,
        days_left=days_left,
        forecast_usd=project(to_date, costs, days_left),
    )


def _cost(
    engine: Engine, start: datetime, end: datetime, zone: ZoneInfo, filters: Filters | None
) -> float:
    if end <= start:
        return 0.0
    return round(totals(engine, Period(start, end, zone), filters).cost_usd, 10)
