"""Time ranges in the display time zone (`GATEHOUSE_TIMEZONE`), as UTC instants for the queries.

Storage is UTC and the rollup's buckets are UTC hours. A day or month of the display zone is
the half-open UTC range from its local midnight to the next one; an hour bucket belongs to the
local day its start falls in. For whole-hour offsets that is exact. For zones with a 30- or
45-minute offset (Asia/Kolkata, Australia/Adelaide) a local day starts in the middle of a UTC
hour: that hour's traffic is counted in the day its bucket starts in, so a day's figures can be
off by up to the boundary hour's traffic. (Raw-table groupings, workflow and trace, bound the
range by the exact instant and also put each row in the day its UTC hour starts in.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..errors import ConfigError

PRESETS: dict[str, str] = {
    "today": "Today",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "month": "This month",
    "last_month": "Last month",
    "custom": "Custom",
}


@dataclass(frozen=True)
class Period:
    """A half-open UTC range [start, end) and the zone its days are shown in."""

    start: datetime
    end: datetime
    zone: ZoneInfo

    def __post_init__(self) -> None:
        # An empty period is allowed ("today" at the stroke of midnight); a reversed one is not.
        if self.end < self.start:
            raise ConfigError(
                f"the range ends ({self.end:%Y-%m-%d %H:%M}) before it starts "
                f"({self.start:%Y-%m-%d %H:%M}); pick an end after the start"
            )

    @property
    def length(self) -> timedelta:
        return self.end - self.start

    def previous(self) -> Period:
        """The period of equal length just before this one (for "change vs previous")."""
        return Period(self.start - self.length, self.start, self.zone)

    def days(self) -> list[date]:
        """Every local day the period touches, oldest first."""
        first = local_day(self.start, self.zone)
        last = local_day(self.end - timedelta(microseconds=1), self.zone)
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    """The calendar day of a UTC instant in the display zone."""
    return moment.astimezone(zone).date()


def day_start(day: date, zone: ZoneInfo) -> datetime:
    """Local midnight of `day` as a UTC instant (DST-safe: zoneinfo resolves the offset)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(day: date) -> date:
    first = month_start(day)
    return (first + timedelta(days=32)).replace(day=1)


def days_between(first: date, last: date, zone: ZoneInfo) -> Period:
    """Whole local days `first`..`last`, both included."""
    if last < first:
        raise ConfigError(
            f"the last day ({last}) is before the first day ({first}); give the earlier date first"
        )
    return Period(day_start(first, zone), day_start(last + timedelta(days=1), zone), zone)


def preset(name: str, now: datetime, zone: ZoneInfo) -> Period:
    """A named range ending now (or, for last month, at this month's start)."""
    today = local_day(now, zone)
    if name == "today":
        return Period(day_start(today, zone), now, zone)
    if name in ("7d", "30d"):
        first = today - timedelta(days=int(name[:-1]) - 1)
        return Period(day_start(first, zone), now, zone)
    if name == "month":
        return Period(day_start(month_start(today), zone), now, zone)
    if name == "last_month":
        this_month = month_start(today)
        last = month_start(this_month - timedelta(days=1))
        return Period(day_start(last, zone), day_start(this_month, zone), zone)
    names = ", ".join(n for n in PRESETS if n != "custom")
    raise ConfigError(f"unknown range {name!r}; use one of {names} or give dates")


def parse_date(text: str, flag: str) -> date:
    """A `YYYY-MM-DD` date from the CLI; ConfigError naming the flag otherwise."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"{flag} {text!r} is not a date; use YYYY-MM-DD, e.g. 2026-11-01"
        ) from None
