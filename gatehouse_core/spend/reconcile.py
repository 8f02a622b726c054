"""Reconciliation with OpenRouter's ledger: our spend per day × provider × model against the
analytics API of the provider's *management* key, stored in `reconciliations`.

For each provider with a management key and each local day (GATEHOUSE_TIMEZONE, as
`periods.py` cuts them) one `POST /analytics/query` asks for `total_usage` and
`request_count` by `model` over exactly that day's UTC range, so no UTC-day folding is needed.
For days inside OpenRouter's 31-day window for per-generation dimensions a second query asks
for `total_usage` by `generation_id`: generations it billed that we hold as failed, incomplete
(cut, cancelled, timed out) or at $0 get its cost with `cost_source = 'reconciled'`, and the
hourly rollup moves by the same delta in the same transaction (`rollups.apply_changes`), so
dashboards and budgets count them. Our side is read from `llm_usage_hourly` after that
correction: every attempt's cost, requests = attempts other than `rejected` (never sent),
demo rows left out (never billed).

Models: OpenRouter reports a model's permaslug (often the id plus a date, e.g.
`openai/gpt-4.1-2025-04-14`); it is counted under our model id when it is that id or the id
followed by `-`. A model only one side knows gets a row with 0 on the other side.

Errors: no management key, a refused key (401) or a key that is not a management key (403)
stop the run with what to do; a day the ledger cannot answer (408, 429, 5xx, timeout) is
reported for that day and the others go on. The key is sent only in the Authorization
header, to a host the provider rules allow, without following redirects; it never appears in
results, messages or logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
from sqlalchemy import Connection, Engine, and_, case, delete, func, insert, select, update
from sqlalchemy.exc import OperationalError

from .. import settings
from ..db import transaction, unreachable
from ..errors import ConfigError, GatehouseError
from ..hosts import host_error
from ..registry import Registry
from ..schema import LLMRequest, Reconciliation, UsageHourly, utcnow
from ..telemetry import scrub
from . import drift
from .claims import claim
from .periods import day_start, local_day
from .rollups import apply_changes

__all__ = [
    "DayResult",
    "DriftRow",
    "LedgerError",
    "Ledger",
    "providers_with_management_key",
    "reconcile",
    "reconcile_yesterday_if_due",
]

log = logging.getLogger("gatehouse.reconcile")

R = LLMRequest.__table__
U = UsageHourly.__table__
T = Reconciliation.__table__
QUERY_PATH = "/analytics/query"
TIMEOUT = httpx2.Timeout(30.0, connect=5.0)  # analytics queries take seconds; never forever
GENERATION_WINDOW = timedelta(days=31)  # OpenRouter serves generation_id for 31-day ranges
ROW_LIMIT = 10_000  # the most rows one analytics query returns
# Rows whose recorded cost may be short of the bill: never answered in full, or $0.
CORRECTABLE_STATUSES = ("error", "incomplete")
NOT_SENT_STATUS = "rejected"
UNBILLED_SOURCE = "demo"
# A billed generation may be logged a little before/after the day's edge on either side.
MATCH_MARGIN = timedelta(hours=1)
RECONCILED = "reconciled"
NO_KEY_HINT = (
    "set one with `gatehouse providers set-management-key NAME --api-key-stdin` (an "
    "OpenRouter management key: https://openrouter.ai/settings/management-keys)"
)


class LedgerError(GatehouseError):
    """OpenRouter's ledger could not be read; the message says why and what to do."""


@dataclass(frozen=True)
class DriftRow:
    """One day × provider × model: our figures, OpenRouter's, and the drift (theirs − ours)."""

    day: date
    provider: str
    model: str
    ours_usd: float
    openrouter_usd: float
    ours_requests: int
    openrouter_requests: int
    corrected_generations: int = 0

    @property
    def drift_usd(self) -> float:
        return drift.drift_usd(self.ours_usd, self.openrouter_usd)

    @property
    def drift_pct(self) -> float | None:
        return drift.drift_pct(self.ours_usd, self.openrouter_usd)

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "provider": self.provider,
            "model": self.model,
            "ours_usd": round(self.ours_usd, 10),
            "openrouter_usd": round(self.openrouter_usd, 10),
            "drift_usd": self.drift_usd,
            "drift_pct": self.drift_pct,
            "ours_requests": self.ours_requests,
            "openrouter_requests": self.openrouter_requests,
            "corrected_generations": self.corrected_generations,
        }


@dataclass(frozen=True)
class DayResult:
    """One day of one provider: its rows, or why the ledger could not be read for it."""

    day: date
    provider: str
    rows: tuple[DriftRow, ...] = ()
    generations_checked: bool = False  # False outside OpenRouter's 31-day window
    error: str | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def corrected_generations(self) -> int:
        return sum(r.corrected_generations for r in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "provider": self.provider,
            "ok": self.ok,
            "error": self.error,
            "generations_checked": self.generations_checked,
            "corrected_generations": self.corrected_generations,
            "ours_usd": round(sum(r.ours_usd for r in self.rows), 10),
            "openrouter_usd": round(sum(r.openrouter_usd for r in self.rows), 10),
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True)
class _Answer:
    rows: list[dict[str, Any]]
    truncated: bool


class Ledger:
    """OpenRouter's analytics API for one management key (httpx2, bounded, no redirects)."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        key: str,
        *,
        transport: httpx2.BaseTransport | None = None,
    ):
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._key = key
        self._client = httpx2.Client(timeout=TIMEOUT, follow_redirects=False, transport=transport)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def by_model(self, start: datetime, end: datetime) -> _Answer:
        return self._query(
            {"metrics": ["total_usage", "request_count"], "dimensions": ["model"]}, start, end
        )

    def by_generation(self, start: datetime, end: datetime) -> _Answer:
        return self._query(
            {"metrics": ["total_usage"], "dimensions": ["generation_id"]}, start, end
        )

    def _query(self, body: dict[str, Any], start: datetime, end: datetime) -> _Answer:
        body = {
            **body,
            "time_range": {"start": _iso(start), "end": _iso(end)},
            "limit": ROW_LIMIT,
        }
        try:
            response = self._client.post(
                self.base_url + QUERY_PATH,
                json=body,
                headers={"Authorization": f"Bearer {self._key}"},
            )
        except httpx2.TimeoutException:
            raise _DayFailed(
                f"OpenRouter's analytics API did not answer within {TIMEOUT.read:g} s; "
                "try again later"
            ) from None
        except httpx2.HTTPError as exc:
            raise _DayFailed(
                f"could not reach {self.base_url} ({type(exc).__name__}); check the "
                "provider's base URL and the network"
            ) from None
        if response.status_code != 200:
            raise self._refusal(response)
        try:
            payload = response.json()
            data = payload["data"]
            rows = [r for r in data["data"] if isinstance(r, Mapping)]
            truncated = bool((data.get("metadata") or {}).get("truncated"))
        except (ValueError, KeyError, TypeError):
            raise _DayFailed(
                "OpenRouter's analytics API answered with an unexpected body (not "
                "{data: {data: [...]}}); is the base URL OpenRouter's?"
            ) from None
        return _Answer(rows, truncated)

    def _refusal(self, response: httpx2.Response) -> GatehouseError:
        status = response.status_code
        name = self.provider
        detail = _message(response)
        if status == 401:
            return LedgerError(
                f"OpenRouter refused the management key of {name} (401: {detail}); it may be "
                f"revoked or mistyped. Store a valid one with `gatehouse providers "
                f"set-management-key {name} --api-key-stdin`."
            )
        if status == 403:
            return LedgerError(
                f"The key stored as the management key of {name} is not an OpenRouter "
                f"management key (403: {detail}); create one at "
                "https://openrouter.ai/settings/management-keys and store it with "
                f"`gatehouse providers set-management-key {name} --api-key-stdin`."
            )
        if status in (301, 302, 303, 307, 308):
            return LedgerError(
                f"OpenRouter's analytics API at {self.base_url} answered with a redirect "
                f"(HTTP {status}); GateHouse does not follow it with the key. Check the "
                "provider's base URL."
            )
        hints = {
            408: "the query timed out on OpenRouter's side; try again later",
            429: "OpenRouter rate-limits analytics queries (64 per minute); try again later",
        }
        hint = hints.get(status, "try again later" if status >= 500 else "")
        return _DayFailed(
            f"OpenRouter's analytics API answered HTTP {status}: {detail}"
            + (f" ({hint})" if hint else "")
        )


class _DayFailed(GatehouseError):
    """This day could not be read; the next one may be."""


def providers_with_management_key(registry: Registry) -> list[str]:
    return [v.name for v in registry.providers() if v.management_key is not None]


def reconcile(
    engine: Engine,
    registry: Registry,
    days: Iterable[date],
    *,
    zone: ZoneInfo | None = None,
    providers: Iterable[str] | None = None,
    now: datetime | None = None,
    env: Mapping[str, str] | None = None,
    transport: httpx2.BaseTransport | None = None,
    progress: Callable[[DayResult], None] | None = None,
) -> list[DayResult]:
    """Reconcile `days` (local days of `zone`) for `providers` (default: every provider with
    a management key). Results are stored in `reconciliations` (a day re-run replaces its
    rows) and returned. Raises LedgerError when a key is missing or refused."""
    zone = zone or settings.display_zone(env)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    names = list(providers) if providers is not None else providers_with_management_key(registry)
    if not names:
        raise LedgerError(f"No provider has a management key; {NO_KEY_HINT}")
    wanted = sorted(set(days))
    results: list[DayResult] = []
    refused: list[LedgerError] = []
    for name in names:
        try:
            # A refused key ends this provider's run at its first query; the next provider
            # (another account) may still be read. Only when every provider fails is it raised.
            with _ledger(registry, name, env, transport) as ledger:
                for day in wanted:
                    result = _reconcile_day(engine, ledger, day, zone, now)
                    results.append(result)
                    if progress:
                        progress(result)
        except LedgerError as exc:
            refused.append(exc)
            done = {r.day for r in results if r.provider == name}
            results += [DayResult(d, name, error=str(exc)) for d in wanted if d not in done]
    if len(refused) == len(names):
        raise refused[0]  # the caller reports it (CLI line, housekeeping warning)
    for exc in refused:
        log.warning("reconciliation stopped for one provider: %s", exc)
    return results


def _ledger(
    registry: Registry,
    name: str,
    env: Mapping[str, str] | None,
    transport: httpx2.BaseTransport | None,
) -> Ledger:
    view = registry.get(name)
    key = registry.management_key(name)
    if key is None:
        raise LedgerError(f"The provider {name} has no management key; {NO_KEY_HINT}")
    refused = host_error(view.config.base_url, env, resolve=transport is None)
    if refused:
        raise LedgerError(f"Not sending the management key of {name}: {refused}")
    return Ledger(name, view.config.base_url, key, transport=transport)


def _reconcile_day(
    engine: Engine, ledger: Ledger, day: date, zone: ZoneInfo, now: datetime
) -> DayResult:
    start, end = day_start(day, zone), day_start(day + timedelta(days=1), zone)
    warnings: list[str] = []
    try:
        models = ledger.by_model(start, end)
        billed: dict[str, float] | None = None
        if start >= now - GENERATION_WINDOW:
            generations = ledger.by_generation(start, end)
            billed = _billed(generations.rows)
            if generations.truncated:
                warnings.append("per-generation rows were truncated at 10,000; some not checked")
    except _DayFailed as exc:
        log.warning("reconciliation of %s for %s failed: %s", ledger.provider, day, exc)
        return DayResult(day, ledger.provider, error=str(exc))
    if models.truncated:
        warnings.append("OpenRouter truncated the per-model rows; its totals are partial")
    theirs = _their_models(models.rows)
    corrected: dict[str, int] = {}
    # Write-locked (SQLite BEGIN IMMEDIATE, PostgreSQL advisory lock): two runs of the same
    # day cannot both read a row as uncorrected and move its rollup bucket twice.
    with transaction(engine, write_lock=True) as session:
        conn = session.connection()
        if billed:
            corrected = _correct(conn, ledger.provider, start, end, billed)
        ours = _our_models(conn, ledger.provider, start, end)
        rows = _drift_rows(day, ledger.provider, ours, theirs, corrected)
        _store(conn, day, ledger.provider, rows, zone)
    return DayResult(
        day,
        ledger.provider,
        rows=tuple(rows),
        generations_checked=billed is not None,
        warnings=tuple(warnings),
    )


def _billed(rows: list[dict[str, Any]]) -> dict[str, float]:
    billed = {}
    for row in rows:
        generation, cost = row.get("generation_id"), _number(row.get("total_usage"))
        if isinstance(generation, str) and generation and cost > 0:
            billed[generation] = cost
    return billed


def _their_models(rows: list[dict[str, Any]]) -> dict[str, tuple[float, int]]:
    out: dict[str, tuple[float, int]] = {}
    for row in rows:
        model = row.get("model")
        if not isinstance(model, str) or not model:
            continue
        usd, count = out.get(model, (0.0, 0))
        out[model] = (
            usd + _number(row.get("total_usage")),
            count + int(_number(row.get("request_count"))),
        )
    return out


def _correct(
    conn: Connection, provider: str, start: datetime, end: datetime, billed: dict[str, float]
) -> dict[str, int]:
    """Set OpenRouter's cost on our rows of its billed generations that we hold as failed,
    incomplete or $0; the rollup moves by the same delta. Returns corrections per model."""
    short = R.c.status.in_(CORRECTABLE_STATUSES) | R.c.cost_usd.is_(None) | (R.c.cost_usd == 0)
    query = select(R).where(
        R.c.provider == provider,
        R.c.created_at >= start - MATCH_MARGIN,
        R.c.created_at < end + MATCH_MARGIN,
        R.c.generation_id.is_not(None),
        R.c.status != NOT_SENT_STATUS,
        short,
    )
    before: list[dict[str, Any]] = []
    after: list[dict[str, Any]] = []
    for row in conn.execute(query).mappings():
        cost = billed.get(row["generation_id"])
        if cost is None or (row["cost_source"] == RECONCILED and _same(row["cost_usd"], cost)):
            continue
        before.append(dict(row))
        after.append({**row, "cost_usd": cost, "cost_source": RECONCILED})
    for row in after:
        conn.execute(
            update(R)
            .where(R.c.id == row["id"])
            .values(cost_usd=row["cost_usd"], cost_source=RECONCILED)
        )
    apply_changes(conn, before, after)
    counts: dict[str, int] = {}
    for row in after:
        counts[row["model"]] = counts.get(row["model"], 0) + 1
    return counts


def _our_models(
    conn: Connection, provider: str, start: datetime, end: datetime
) -> dict[str, tuple[float, int]]:
    sent = func.sum(case((U.c.status != NOT_SENT_STATUS, U.c.attempts), else_=0))
    query = (
        select(U.c.model, func.coalesce(func.sum(U.c.cost_usd), 0), func.coalesce(sent, 0))
        .where(
            U.c.provider == provider,
            U.c.bucket_start >= start,
            U.c.bucket_start < end,
            U.c.source != UNBILLED_SOURCE,
        )
        .group_by(U.c.model)
    )
    return {model: (float(usd or 0), int(n or 0)) for model, usd, n in conn.execute(query)}


def _drift_rows(
    day: date,
    provider: str,
    ours: dict[str, tuple[float, int]],
    theirs: dict[str, tuple[float, int]],
    corrected: dict[str, int],
) -> list[DriftRow]:
    merged: dict[str, list[float]] = {m: [usd, n, 0.0, 0] for m, (usd, n) in ours.items()}
    for their_model, (usd, n) in theirs.items():
        model = _our_name(their_model, ours)
        acc = merged.setdefault(model, [0.0, 0, 0.0, 0])
        acc[2] += usd
        acc[3] += n
    return [
        DriftRow(
            day=day,
            provider=provider,
            model=model,
            ours_usd=round(v[0], 10),
            openrouter_usd=round(v[2], 10),
            ours_requests=int(v[1]),
            openrouter_requests=int(v[3]),
            corrected_generations=corrected.get(model, 0),
        )
        for model, v in sorted(merged.items())
        if any(v) or corrected.get(model)
    ]


def _our_name(their_model: str, ours: Mapping[str, Any]) -> str:
    """Our model id for OpenRouter's permaslug: itself, or the longest id it extends by '-'."""
    if their_model in ours:
        return their_model
    candidates = [m for m in ours if their_model.startswith(m + "-")]
    return max(candidates, key=len) if candidates else their_model


def _store(
    conn: Connection, day: date, provider: str, rows: list[DriftRow], zone: ZoneInfo
) -> None:
    """Replace the day's rows of this provider (a model gone since the last run goes too)."""
    conn.execute(delete(T).where(and_(T.c.day == day, T.c.provider == provider)))
    if not rows:
        return
    checked_at = utcnow()
    conn.execute(
        insert(T),
        [
            {
                "day": r.day,
                "provider": r.provider,
                "model": r.model,
                "ours_usd": r.ours_usd,
                "openrouter_usd": r.openrouter_usd,
                "ours_requests": r.ours_requests,
                "openrouter_requests": r.openrouter_requests,
                "drift_usd": r.drift_usd,
                "drift_pct": r.drift_pct,
                "corrected_generations": r.corrected_generations,
                "timezone": zone.key,
                "checked_at": checked_at,
            }
            for r in rows
        ],
    )


# ---- which days ----------------------------------------------------------------------------


def days_for(
    *, day: date | None = None, since: str | None = None, now: datetime, zone: ZoneInfo
) -> list[date]:
    """`--day D` → [D]; `--since Nd` → the N complete local days ending yesterday; neither →
    yesterday."""
    today = local_day(now, zone)
    if day is not None:
        if day > today:
            raise ConfigError(f"--day {day} is in the future; give a past day")
        return [day]
    count = 1 if since is None else _days(since)
    return [today - timedelta(days=n) for n in range(count, 0, -1)]


def _days(since: str) -> int:
    text = since.strip().lower()
    if not (text.endswith("d") and text[:-1].isdigit() and 1 <= int(text[:-1]) <= 366):
        raise ConfigError(f"--since {since!r} is not a number of days; use e.g. 7d (1d to 366d)")
    return int(text[:-1])


# ---- a running console: yesterday, once a day ----------------------------------------------

MARKER_KEY = "reconcile_daily"


def reconcile_yesterday_if_due(
    engine: Engine,
    registry: Registry,
    *,
    env: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> list[DayResult] | None:
    """Reconcile yesterday once per local day across every process sharing the database;
    None when no provider has a management key or another process already did today.
    The day is claimed before the ledger is asked, so a failed run is retried the next day
    (or by hand: `gatehouse reconcile`)."""
    if not providers_with_management_key(registry):
        return None
    zone = settings.display_zone(env)
    now = (now or datetime.now(UTC)).astimezone(UTC)
    today = local_day(now, zone)
    try:
        claimed = _claim(engine, now, day_start(today, zone))
    except OperationalError as exc:
        raise unreachable(engine, exc) from None
    if not claimed:
        return None
    yesterday = today - timedelta(days=1)
    return reconcile(engine, registry, [yesterday], zone=zone, now=now, env=env)


def _claim(engine: Engine, now: datetime, today_start: datetime) -> bool:
    """True for the one process that claims today's run (see `claims.claim`)."""
    return claim(
        engine,
        MARKER_KEY,
        due=lambda updated_at: updated_at < today_start,
        now=now,
        value={"last_run_at": now.isoformat()},
        description="When the console last reconciled with OpenRouter's ledger",
        actor="reconcile",
    )


# ---- helpers -------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value: Any) -> float:
    """Counts come back as strings, costs as numbers, unused metrics as null (§9.2)."""
    if isinstance(value, bool) or value is None:
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _same(a: Any, b: float) -> bool:
    return a is not None and abs(float(a) - b) < 1e-10


def _message(response: httpx2.Response) -> str:
    try:
        error = response.json().get("error") or {}
        text = str(error.get("message") or "")
    except (ValueError, AttributeError):
        text = ""
    text = scrub(text or response.reason_phrase or "no message")
    return text if len(text) <= 200 else text[:199] + "…"
