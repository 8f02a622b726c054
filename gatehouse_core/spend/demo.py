"""Demo data: realistic audit history for trying the cost pages, and its clean removal.

`write_demo_data(engine, days=30, rows=N, seed=S)` writes exactly N `llm_requests` rows over
the last `days` days through the audit writer's own insert (`audit._insert_rows`, which also
maintains the hourly rollup), in batches of multi-row INSERTs, one transaction each.

What the history looks like: a few teams (services and people, each with workflows and its
own model mix) calling models from the offline catalog at their catalog prices through three
providers; a daily rhythm peaking in the European/US afternoon, quiet weekends, slow growth
over the period, three spikes (one a runaway batch loop), and one provider incident of a few
hours. Failed attempts are real attempt chains: rate limits and 5xx retried on the same
provider, then a fallback to the next provider, each row marked with `final_attempt` and
`fallback` as the gateway marks them.

Every demo row has `source = 'demo'` (the name is reserved for this): `delete_demo_data`
deletes those raw rows in id-range batches and the rollup rows of source 'demo', which hold
exactly their contributions because source is a rollup dimension.
"""

from __future__ import annotations

import bisect
import itertools
import math
import multiprocessing
import random
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.exc import OperationalError

from ..audit import COLUMNS, _insert_rows
from ..catalog import Catalog
from ..db import unreachable
from ..errors import ConfigError
from ..schema import LLMRequest, UsageHourly, UsageHourlyWorkflow

__all__ = [
    "DEMO_SOURCE",
    "DemoDeleted",
    "DemoProgress",
    "DemoResult",
    "delete_demo_data",
    "generate_rows",
    "write_demo_data",
]

DEMO_SOURCE = "demo"
MAX_DAYS = 3660
MAX_ROWS = 100_000_000
R = LLMRequest.__table__
U = UsageHourly.__table__
W = UsageHourlyWorkflow.__table__

PROVIDERS = ("openrouter-main", "openrouter-eu", "openrouter-batch")


@dataclass(frozen=True)
class Team:
    """Who calls, for what, with which models (weights), and how big their prompts are."""

    actors: tuple[str, ...]
    workflows: tuple[str, ...]
    models: tuple[tuple[str, float], ...]
    weight: float
    input_mu: float  # lognormal parameters of prompt and completion tokens
    output_mu: float
    provider: str = "openrouter-main"


TEAMS = (
    Team(
        ("svc-support-bot",),
        ("support-triage", "support-reply"),
        (("anthropic/claude-haiku-4.5", 0.6), ("openai/gpt-4o-mini", 0.4)),
        weight=0.40,
        input_mu=7.0,
        output_mu=5.0,
    ),
    Team(
        ("alice", "bob", "carol", "dmitri"),
        ("code-review", "pr-summary", "ide-chat"),
        (("anthropic/claude-sonnet-4.5", 0.55), ("openai/gpt-5", 0.3), ("qwen/qwen3-coder", 0.15)),
        weight=0.25,
        input_mu=8.3,
        output_mu=6.0,
    ),
    Team(
        ("svc-analytics",),
        ("ticket-tagging", "sentiment-daily"),
        (("google/gemini-2.5-flash", 0.7), ("google/gemini-2.5-flash-lite", 0.3)),
        weight=0.20,
        input_mu=6.5,
        output_mu=3.5,
        provider="openrouter-eu",
    ),
    Team(
        ("erin", "farid"),
        ("research-notes", "contract-review"),
        (
            ("anthropic/claude-opus-4.5", 0.3),
            ("google/gemini-2.5-pro", 0.4),
            ("openai/o4-mini", 0.3),
        ),
        weight=0.10,
        input_mu=9.0,
        output_mu=6.5,
    ),
    Team(
        ("svc-batch",),
        ("nightly-backfill",),
        (("deepseek/deepseek-chat", 0.7), ("meta-llama/llama-3.3-70b-instruct", 0.3)),
        weight=0.05,
        input_mu=7.5,
        output_mu=5.5,
        provider="openrouter-batch",
    ),
)
REASONING = frozenset({"openai/gpt-5", "openai/o4-mini"})
# (weight, http status, error type, message, latency ms, decision) as policy.py decides them:
# rate limits, 5xx and timeouts are retried on the same provider, a 402 falls back at once.
FAILURES = (
    (0.45, 429, "rate_limited", "Rate limit exceeded: free-models-per-min", 120.0, "retry"),
    (0.22, 502, "provider_unavailable", "Upstream provider returned 502", 900.0, "retry"),
    (0.13, 503, "service_unavailable", "No instances available", 400.0, "retry"),
    (0.08, None, "timeout", "Request timed out", 120_000.0, "retry"),
    (0.12, 402, "payment_required", "Insufficient credits on this key", 80.0, "fallback"),
)
BAD_REQUEST = (0.0, 400, "bad_request", "max_tokens exceeds the model's context", 60.0, "fail")
RETRIES_PER_PROVIDER = 2


@dataclass(frozen=True)
class DemoProgress:
    written: int
    total: int


@dataclass(frozen=True)
class DemoResult:
    rows: int
    calls: int
    seed: int
    start: datetime
    end: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "calls": self.calls,
            "seed": self.seed,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


@dataclass(frozen=True)
class DemoDeleted:
    rows: int
    buckets: int

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "buckets": self.buckets}


# ---- the shape of the history ------------------------------------------------------------


def _hour_weights(start: datetime, hours: int, rng: random.Random) -> list[float]:
    """Relative traffic per hour: daily curve × weekday × growth, with three spikes."""
    weights = []
    for h in range(hours):
        moment = start + timedelta(hours=h)
        daily = 0.12 + math.exp(-(((moment.hour - 14) / 4.0) ** 2))
        weekday = 1.0 if moment.weekday() < 5 else 0.3
        growth = 1.0 + 0.3 * h / max(hours - 1, 1)
        weights.append(daily * weekday * growth * rng.uniform(0.85, 1.15))
    for h in rng.sample(range(hours), k=min(3, hours)):
        weights[h] *= rng.uniform(4.0, 8.0)
    return weights


def _row_budgets(total: int, weights: list[float]) -> list[int]:
    """`total` rows split by weight, summing exactly to `total` (largest remainders)."""
    scale = total / sum(weights)
    exact = [w * scale for w in weights]
    budgets = [int(x) for x in exact]
    short = total - sum(budgets)
    order = sorted(range(len(exact)), key=lambda i: exact[i] - budgets[i], reverse=True)
    for i in order[:short]:
        budgets[i] += 1
    return budgets


def _cumulative(weights: Iterable[float]) -> list[float]:
    return list(itertools.accumulate(weights))


class _Generator:
    """Attempt chains from one random stream per hour; `rows_for_hour` yields its budget.

    Hot loop for 10⁷ rows: weights are cumulative lists picked with bisect, lognormals come
    from one gauss each, rows start as a copy of a template dict."""

    def __init__(self, plan: _Plan, catalog: Catalog):
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.catalog = catalog
        self.calls = 0
        self.template = dict.fromkeys(COLUMNS)
        self.team_cum = _cumulative(t.weight for t in TEAMS)
        self.models = [
            ([m for m, _ in t.models], _cumulative(w for _, w in t.models)) for t in TEAMS
        ]
        self.providers = [[t.provider, *(p for p in PROVIDERS if p != t.provider)] for t in TEAMS]
        self.failure_cum = _cumulative(f[0] for f in FAILURES)

    def _pick(self, cum: list[float]) -> int:
        return bisect.bisect(cum, self.rng.random() * cum[-1])

    def _lognormal(self, mu: float, sigma: float) -> float:
        return math.exp(mu + sigma * self.rng.gauss())

    def rows_for_hour(self, hour: int) -> Iterator[dict[str, Any]]:
        """Exactly the hour's budget of rows. Each hour has its own random stream, so any
        split of the hours between processes writes the same history."""
        plan = self.plan
        rng = self.rng = random.Random(plan.seed * 100_003 + hour)  # hours < 100_003
        self.calls = 0
        at = plan.start + timedelta(hours=hour)
        budget = plan.budgets[hour]
        offsets = sorted(rng.random() * 3600 for _ in range(budget))
        left = budget
        while left > 0:
            when = at + timedelta(seconds=offsets[budget - left])
            chain = self._call(hour, when, left)
            left -= len(chain)
            yield from chain

    def _call(self, hour: int, when: datetime, room: int) -> list[dict[str, Any]]:
        rng = self.rng
        index = len(TEAMS) - 1 if hour == self.plan.runaway else self._pick(self.team_cum)
        team = TEAMS[index]
        names, cum = self.models[index]
        base = {
            "request_id": f"demo-{self.plan.seed}-{hour}-{self.calls}",
            "model": names[self._pick(cum)],
            "source": DEMO_SOURCE,
            "actor": team.actors[int(rng.random() * len(team.actors))],
            "workflow_id": team.workflows[int(rng.random() * len(team.workflows))],
            "trace_id": f"demo-trace-{rng.getrandbits(48):012x}" if rng.random() < 0.3 else None,
        }
        self.calls += 1
        providers = self.providers[index]
        incident = self.plan.incident
        in_incident = incident[0] <= hour < incident[1]
        rows: list[dict[str, Any]] = []
        if rng.random() < 0.004:  # the request itself is bad: no retry, the call fails
            rows.append(self._failure(BAD_REQUEST, base, providers[0], 1, when))
            return self._mark(rows, providers[0])
        for provider in providers:
            fail_p = 0.45 if in_incident and provider == incident[2] else 0.04
            for _ in range(RETRIES_PER_PROVIDER + 1):
                if len(rows) + 1 >= room or rng.random() >= fail_p:
                    rows.append(self._answer(team, base, provider, len(rows) + 1, when))
                    return self._mark(rows, providers[0])
                failure = FAILURES[self._pick(self.failure_cum)]
                rows.append(self._failure(failure, base, provider, len(rows) + 1, when))
                when += timedelta(milliseconds=rows[-1]["latency_ms"] + 250)
                if failure[5] == "fallback":
                    break
        rows[-1]["error_message"] += " (all providers failed)"
        return self._mark(rows, providers[0])

    def _mark(self, rows: list[dict[str, Any]], first: str) -> list[dict[str, Any]]:
        for row in rows:
            row["final_attempt"] = False
            row["fallback"] = False
        rows[-1]["final_attempt"] = True
        rows[-1]["fallback"] = rows[-1]["provider"] != first
        return rows

    def _row(self, base: dict[str, Any], provider: str, attempt: int, when: datetime) -> dict:
        row = self.template.copy()
        row.update(base)
        row["provider"] = provider
        row["attempt"] = attempt
        row["created_at"] = when
        row["cost_source"] = "unknown"
        return row

    def _failure(
        self, failure: tuple, base: dict, provider: str, attempt: int, when: datetime
    ) -> dict:
        _, status, kind, message, latency, _decision = failure
        row = self._row(base, provider, attempt, when)
        row["status"] = "error"
        row["http_status"] = status
        row["error_type"] = kind
        row["error_message"] = message
        row["latency_ms"] = round(latency * (0.7 + 0.6 * self.rng.random()), 2)
        return row

    def _answer(self, team: Team, base: dict, provider: str, attempt: int, when: datetime) -> dict:
        rng = self.rng
        model = base["model"]
        prompt = max(1, int(self._lognormal(team.input_mu, 0.7)))
        completion = max(1, int(self._lognormal(team.output_mu, 0.6)))
        cached = int(prompt * (0.2 + 0.7 * rng.random())) if rng.random() < 0.35 else 0
        reasoning = int(completion * (0.5 + 2.5 * rng.random())) if model in REASONING else 0
        completion += reasoning  # reasoning tokens are billed as output
        cut = rng.random() < 0.006  # a stream the caller abandoned: partial output
        if cut:
            completion = max(1, completion // 3)
        cost = self.catalog.estimate_cost(model, prompt, completion, cached)
        ttft = self._lognormal(6.3, 0.5) if rng.random() < 0.6 else None  # streamed
        latency = (ttft or self._lognormal(6.0, 0.4)) + completion * (8 + 17 * rng.random())
        row = self._row(base, provider, attempt, when)
        row["status"] = "incomplete" if cut else "ok"
        row["http_status"] = 200
        row["model_used"] = model
        row["generation_id"] = f"gen-{base['request_id']}"
        row["input_tokens"] = prompt
        row["output_tokens"] = completion
        row["cached_tokens"] = cached
        row["reasoning_tokens"] = reasoning
        if cost is not None:
            row["cost_usd"] = round(cost, 10)
            row["cost_source"] = "estimated" if rng.random() < 0.08 else "provider"
        row["latency_ms"] = round(latency, 2)
        row["ttft_ms"] = None if ttft is None else round(ttft, 2)
        return row


@dataclass(frozen=True)
class _Plan:
    """Everything decided up front from the seed: rows per hour, the incident, the runaway."""

    seed: int
    start: datetime
    budgets: tuple[int, ...]
    incident: tuple[int, int, str]  # first hour, end hour, provider
    runaway: int  # the hour a batch job loops

    @property
    def hours(self) -> int:
        return len(self.budgets)


def _plan(*, days: int, rows: int, seed: int, now: datetime) -> _Plan:
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    hours = days * 24
    rng = random.Random(seed)
    weights = _hour_weights(start, hours, rng)
    runaway = rng.randrange(hours)
    weights[runaway] *= 5  # the batch job loops: one more spike
    incident_at = rng.randrange(hours)
    incident = (incident_at, incident_at + rng.randint(2, 5), PROVIDERS[0])
    return _Plan(seed, start, tuple(_row_budgets(rows, weights)), incident, runaway)


def generate_rows(
    *, days: int, rows: int, seed: int, now: datetime, catalog: Catalog
) -> Iterator[dict[str, Any]]:
    """Exactly `rows` demo rows over the `days` days before `now` (hour-aligned), oldest first."""
    plan = _plan(days=days, rows=rows, seed=seed, now=now)
    gen = _Generator(plan, catalog)
    for hour in range(plan.hours):
        yield from gen.rows_for_hour(hour)


# ---- writing and deleting ------------------------------------------------------------------


def _check(days: int, rows: int) -> None:
    if not 1 <= days <= MAX_DAYS:
        raise ConfigError(f"--days {days} is out of range; give 1 to {MAX_DAYS}")
    if not 1 <= rows <= MAX_ROWS:
        raise ConfigError(f"--rows {rows} is out of range; give 1 to {MAX_ROWS:,}")


def demo_present(engine: Engine) -> bool:
    """Whether demo rows are stored: their rollup rows (a small table) or, should the rollup
    have been cleared, the raw rows themselves."""
    with engine.connect() as conn:
        for table in (U, R):
            query = select(table.c.id).where(table.c.source == DEMO_SOURCE).limit(1)
            if conn.execute(query).first() is not None:
                return True
    return False


def write_demo_data(
    engine: Engine,
    *,
    days: int = 30,
    rows: int = 100_000,
    seed: int | None = None,
    now: datetime | None = None,
    batch_rows: int = 20_000,
    workers: int = 1,
    progress: Callable[[DemoProgress], None] | None = None,
) -> DemoResult:
    """Write `rows` demo rows over the last `days` days; ConfigError if demo data exists.

    `workers` > 1 writes the days from that many processes at once (the rollup upserts are
    atomic, so they add up); progress is then reported per day instead of per batch."""
    _check(days, rows)
    if not 1 <= workers <= 64:
        raise ConfigError(f"--workers {workers} is out of range; give 1 to 64")
    seed = random.SystemRandom().randrange(1_000_000) if seed is None else seed
    now = (now or datetime.now(UTC)).astimezone(UTC)
    plan = _plan(days=days, rows=rows, seed=seed, now=now)
    try:
        if demo_present(engine):
            raise ConfigError(
                "the database already holds demo data; run `gatehouse demo-data --delete` "
                "first, then write it again"
            )
        if workers == 1:
            written, calls = _write_hours(
                engine, plan, range(plan.hours), batch_rows, progress=progress, total=rows
            )
        else:
            written, calls = _write_in_processes(engine, plan, batch_rows, workers, progress)
    except OperationalError as exc:
        raise unreachable(engine, exc) from None
    end = plan.start + timedelta(hours=plan.hours)
    return DemoResult(rows=written, calls=calls, seed=seed, start=plan.start, end=end)


def _write_hours(
    engine: Engine,
    plan: _Plan,
    hours: Iterable[int],
    batch_rows: int,
    *,
    progress: Callable[[DemoProgress], None] | None = None,
    total: int = 0,
) -> tuple[int, int]:
    """Write the given hours' rows in batches of whole calls; (rows, calls) written."""
    gen = _Generator(plan, Catalog(engine, ttl=float("inf")))
    written = calls = 0
    batch: list[dict[str, Any]] = []
    for hour in hours:
        for row in gen.rows_for_hour(hour):
            batch.append(row)
            calls += row["final_attempt"]
            # Whole calls per batch, so a call's attempts commit together.
            if len(batch) >= batch_rows and row["final_attempt"]:
                written += _write_batch(engine, batch)
                batch = []
                if progress:
                    progress(DemoProgress(written=written, total=total))
    if batch:
        written += _write_batch(engine, batch)
        if progress:
            progress(DemoProgress(written=written, total=total))
    return written, calls


def _write_day(url: str, plan: _Plan, day: int, batch_rows: int) -> tuple[int, int]:
    """One day in a worker process (spawned: a fresh interpreter with its own engine)."""
    from ..db import make_engine

    engine = make_engine(url, migrate=False)
    try:
        return _write_hours(engine, plan, range(day * 24, day * 24 + 24), batch_rows)
    finally:
        engine.dispose()


def _write_in_processes(
    engine: Engine,
    plan: _Plan,
    batch_rows: int,
    workers: int,
    progress: Callable[[DemoProgress], None] | None,
) -> tuple[int, int]:
    url = engine.url.render_as_string(hide_password=False)  # handed over in memory, not argv
    total = sum(plan.budgets)
    written = calls = 0
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        days = [
            pool.submit(_write_day, url, plan, day, batch_rows) for day in range(plan.hours // 24)
        ]
        for done in as_completed(days):
            rows, day_calls = done.result()
            written, calls = written + rows, calls + day_calls
            if progress:
                progress(DemoProgress(written=written, total=total))
    return written, calls


def _write_batch(engine: Engine, batch: list[dict[str, Any]]) -> int:
    with engine.begin() as conn:
        return _insert_rows(conn, batch, dedup=False)


def delete_demo_data(
    engine: Engine,
    *,
    batch_rows: int = 50_000,
    progress: Callable[[DemoProgress], None] | None = None,
) -> DemoDeleted:
    """Delete every demo row (in id ranges, one transaction each) and its rollup rows."""
    demo = R.c.source == DEMO_SOURCE
    try:
        with engine.connect() as conn:
            low, high, total = conn.execute(
                select(func.min(R.c.id), func.max(R.c.id), func.count()).where(demo)
            ).one()
        deleted = 0
        if low is not None:
            for start in range(low, high + 1, batch_rows):
                in_range = R.c.id.between(start, start + batch_rows - 1)
                with engine.begin() as conn:
                    deleted += conn.execute(delete(R).where(demo, in_range)).rowcount
                if progress:
                    progress(DemoProgress(written=deleted, total=total))
        with engine.begin() as conn:
            buckets = conn.execute(delete(U).where(U.c.source == DEMO_SOURCE)).rowcount
            conn.execute(delete(W).where(W.c.source == DEMO_SOURCE))
    except OperationalError as exc:
        raise unreachable(engine, exc) from None
    return DemoDeleted(rows=deleted, buckets=buckets)
