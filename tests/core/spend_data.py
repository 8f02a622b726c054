"""Random audit rows shaped like the gateway's, and an independent SQL aggregation of them.

Shared by the rollup tests and `rollup_worker.py` (the second process). `raw_rollup` is written
in plain SQL on purpose: it must not reuse gatehouse_core.spend.rollups, which it checks.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, text

from gatehouse_core.schema import UsageHourly, UsageHourlyWorkflow
from gatehouse_core.spend.buckets import BOUNDS_MS
from gatehouse_core.spend.rollups import COUNTERS

NOW = datetime(2026, 11, 30, 12, 30, tzinfo=UTC)
PROVIDERS = ("primary", "backup", "eu")
MODELS = ("openai/gpt-4o-mini", "anthropic/claude-sonnet-4", "google/gemini-2.5-flash")
SOURCES = (None, "library", "cli", "console")
ACTORS = (None, "alice", "bob")
WORKFLOWS = (None, "triage", "nightly-report")
# Durations right on the histogram bounds and past the last one test the bucket edges.
EDGE_MS = (0.0, 25.0, 25.01, 100.0, 60000.0, 60000.5, 125000.0)


def _duration(rng: random.Random) -> float | None:
    pick = rng.random()
    if pick < 0.1:
        return None
    if pick < 0.25:
        return rng.choice(EDGE_MS)
    return round(rng.lognormvariate(6.5, 1.2), 2)


def random_rows(
    seed: int, calls: int, *, prefix: str, now: datetime = NOW, narrow: bool = False
) -> list[dict[str, Any]]:
    """Attempt chains of `calls` calls over the 3 days before `now`, marked like the gateway
    marks them (final_attempt on the last row of each call, fallback when its provider differs
    from the first one tried). `narrow`: all within two hours and one source and actor, so
    concurrent writers keep hitting the same few rollup buckets."""
    rng = random.Random(seed)
    # Workflows from their own stream, so the other draws stay what they were before 0009.
    workflow_rng = random.Random(seed + 7919)
    rows = []
    span = 3600 if narrow else 3 * 86400
    sources, actors = ((None,), ("alice",)) if narrow else (SOURCES, ACTORS)
    for n in range(calls):
        start = now - timedelta(seconds=rng.uniform(0, span))
        chain = rng.choices((1, 2, 3), weights=(70, 20, 10))[0]
        providers = [rng.choice(PROVIDERS)]
        for _ in range(chain - 1):
            providers.append(rng.choice((providers[-1], rng.choice(PROVIDERS))))
        model = rng.choice(MODELS)
        source, actor = rng.choice(sources), rng.choice(actors)
        workflow = workflow_rng.choice(WORKFLOWS[:2] if narrow else WORKFLOWS)
        outcome = rng.choices(("ok", "error", "incomplete"), weights=(85, 10, 5))[0]
        for attempt, provider in enumerate(providers, start=1):
            last = attempt == chain
            status = outcome if last else "error"
            answered = status in ("ok", "incomplete")
            rows.append(
                {
                    "request_id": f"{prefix}-{n}",
                    "attempt": attempt,
                    "created_at": start + timedelta(seconds=attempt * 1.5),
                    "provider": provider,
                    "model": model,
                    "status": status,
                    "http_status": 200 if answered else rng.choice((429, 502, 503)),
                    "input_tokens": rng.randint(10, 5000) if answered else None,
                    "output_tokens": rng.randint(1, 900) if answered else None,
                    "cached_tokens": rng.choice((None, 0, rng.randint(1, 800))),
                    "reasoning_tokens": rng.choice((None, rng.randint(0, 300))),
                    "cost_usd": round(rng.uniform(0, 0.05), 10) if answered else None,
                    "cost_source": rng.choice(("provider", "estimated")) if answered else "unknown",
                    "latency_ms": _duration(rng),
                    "ttft_ms": _duration(rng) if answered else None,
                    "source": source,
                    "actor": actor,
                    "workflow_id": workflow,
                    "final_attempt": last,
                    "fallback": last and provider != providers[0],
                }
            )
    return rows


def _hour_sql(dialect: str) -> str:
    if dialect == "postgresql":
        return "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:00:00')"
    return "strftime('%Y-%m-%d %H:00:00', created_at)"


def _histogram_sql(column: str) -> list[str]:
    edges = [None, *BOUNDS_MS, None]
    sums = []
    for low, high in zip(edges, edges[1:], strict=False):
        tests = [f"{column} IS NOT NULL"]
        tests += [] if low is None else [f"{column} > {low}"]
        tests += [] if high is None else [f"{column} <= {high}"]
        sums.append(f"SUM(CASE WHEN {' AND '.join(tests)} THEN 1 ELSE 0 END)")
    return sums


def raw_rollup(engine: Engine, *, by_workflow: bool = False) -> dict[tuple, tuple]:
    """What llm_usage_hourly (or llm_usage_hourly_workflow) must hold, computed straight from
    llm_requests."""
    final = "final_attempt = TRUE"
    values = [
        f"SUM(CASE WHEN {final} THEN 1 ELSE 0 END)",
        "COUNT(*)",
        f"SUM(CASE WHEN {final} AND fallback = TRUE THEN 1 ELSE 0 END)",
        *(
            f"COALESCE(SUM({c}), 0)"
            for c in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")
        ),
        "COALESCE(SUM(cost_usd), 0)",
        "COALESCE(SUM(CASE WHEN cost_source = 'provider' THEN cost_usd ELSE 0 END), 0)",
        "COALESCE(SUM(CASE WHEN cost_source = 'estimated' THEN cost_usd ELSE 0 END), 0)",
        "COALESCE(SUM(latency_ms), 0)",
        "COUNT(latency_ms)",
        "COALESCE(SUM(ttft_ms), 0)",
        "COUNT(ttft_ms)",
        *_histogram_sql("latency_ms"),
        *_histogram_sql("ttft_ms"),
    ]
    assert len(values) == len(COUNTERS)
    dims = f"{_hour_sql(engine.dialect.name)}, provider, model, COALESCE(source, ''), COALESCE(actor, ''), status"
    if by_workflow:
        dims += ", COALESCE(workflow_id, '')"
    width = 7 if by_workflow else 6
    query = f"SELECT {dims}, {', '.join(values)} FROM llm_requests GROUP BY {dims}"
    with engine.connect() as conn:
        return {tuple(r[:width]): _numbers(r[width:]) for r in conn.execute(text(query))}


def stored_rollup(engine: Engine, *, by_workflow: bool = False) -> dict[tuple, tuple]:
    """The rollup table's rows, keyed like `raw_rollup` (buckets with zero attempts dropped)."""
    table = (UsageHourlyWorkflow if by_workflow else UsageHourly).__table__
    names = ["bucket_start", "provider", "model", "source", "actor", "status"]
    names += ["workflow_id"] if by_workflow else []
    key = [table.c[n] for n in names]
    with engine.connect() as conn:
        rows = conn.execute(select(*key, *(table.c[n] for n in COUNTERS))).all()
    found = {}
    for r in rows:
        values = _numbers(r[len(names) :])
        if any(values):
            found[(r[0].strftime("%Y-%m-%d %H:00:00"), *r[1 : len(names)])] = values
    return found


def assert_rollups_match_raw(engine: Engine) -> None:
    """Both hourly rollups hold exactly what the raw rows say."""
    assert_same(stored_rollup(engine), raw_rollup(engine))
    assert_same(stored_rollup(engine, by_workflow=True), raw_rollup(engine, by_workflow=True))


def _numbers(values: Any) -> tuple:
    return tuple(float(v) if not isinstance(v, int) else v for v in values)


def assert_same(actual: dict[tuple, tuple], expected: dict[tuple, tuple]) -> None:
    """Equal keys and counters; money and milliseconds equal up to float rounding."""
    assert sorted(actual) == sorted(expected)
    for key, values in expected.items():
        for name, got, want in zip(COUNTERS, actual[key], values, strict=True):
            assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-7), (key, name, got, want)
