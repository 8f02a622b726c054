"""Dashboard query timings: every query the Overview, Costs and Requests pages run.

    python bench/bench_queries.py DATABASE_URL [--repeat 5] [--json bench/results/queries.json]

Point it at a database filled by `gatehouse demo-data` (or production-like data). Prints the
median and worst of `--repeat` runs per query, and on PostgreSQL the plan's top line
(`EXPLAIN`) so a sequential scan over llm_requests stands out. Goal (issue 9): each query
under 100 ms at 10M rows. Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from gatehouse_core import settings
from gatehouse_core.db import make_engine
from gatehouse_core.spend import queries, requestlog
from gatehouse_core.spend.forecast import month_forecast
from gatehouse_core.spend.periods import Period, preset

SLOW_MS = 5_000


def cases(engine: Engine) -> dict[str, Callable[[], Any]]:
    """Every query the Overview, Costs (last 30 days by model) and Requests pages run."""
    zone, now = settings.display_zone(), datetime.now(UTC)
    month = preset("30d", now, zone)
    day = Period(now - timedelta(hours=24), now, zone)
    first = requestlog.page(engine, limit=50)
    some_call = first.rows[0]["request_id"] if first.rows else ""

    def page_50() -> Any:
        cursor = first.next_cursor
        for _ in range(48):
            if cursor is None:
                break
            cursor = requestlog.page(engine, after=cursor, limit=50).next_cursor
        return cursor

    cursor_49 = page_50()

    found: dict[str, Callable[[], Any]] = {
        "overview.forecast": lambda: month_forecast(engine, now, zone),
        "overview.compare_today": lambda: queries.compare(engine, preset("today", now, zone)),
        "overview.compare_7d": lambda: queries.compare(engine, preset("7d", now, zone)),
        "overview.top_models_30d": lambda: queries.groups(
            engine, month, "model", limit=5, percentiles=False
        ),
        "overview.top_providers_30d": lambda: queries.groups(
            engine, month, "provider", limit=5, percentiles=False
        ),
        "overview.daily_costs_30d": lambda: queries.daily_costs(engine, month),
        "overview.health_24h": lambda: queries.groups(engine, day, "provider"),
        "costs.groups_model_30d": lambda: queries.groups(engine, month, "model", percentiles=False),
        "costs.series_model_30d": lambda: queries.series(
            engine, month, by="model", step="day", top=8, ttft=False
        ),
        "costs.groups_workflow_30d": lambda: queries.groups(
            engine, month, "workflow", percentiles=False
        ),
        "costs.series_workflow_30d": lambda: queries.series(
            engine, month, by="workflow", step="day", top=8, ttft=False
        ),
        "requests.first_page": lambda: requestlog.page(engine, limit=50),
        "requests.page_50 (keyset)": lambda: requestlog.page(engine, after=cursor_49, limit=50),
        "requests.count (capped)": lambda: requestlog.count(engine),
        "requests.call_attempts": lambda: requestlog.call_attempts(engine, some_call),
    }
    found["costs.filter_values_30d"] = partial(queries.dimension_values, engine, month)
    return found


def explain(engine: Engine) -> dict[str, list[str]]:
    """PostgreSQL's plan of a keyset page, a raw-table grouping and a rollup grouping."""
    if engine.dialect.name != "postgresql":
        return {}
    sql = {
        "keyset page": "SELECT * FROM llm_requests ORDER BY created_at DESC, id DESC LIMIT 51",
        "workflow 30d (raw)": "SELECT workflow_id, count(*) FROM llm_requests "
        "WHERE created_at >= now() - interval '30 days' GROUP BY workflow_id",
        "model 30d (rollup)": "SELECT model, sum(cost_usd) FROM llm_usage_hourly "
        "WHERE bucket_start >= now() - interval '30 days' GROUP BY model",
    }
    with engine.connect() as conn:
        return {name: list(conn.execute(text(f"EXPLAIN {q}")).scalars()) for name, q in sql.items()}


def time_queries(engine: Engine, repeat: int = 5) -> dict[str, dict[str, float]]:
    """Each case run `repeat` times: the first (cold) run, the median and the worst, in ms."""
    results = {}
    for name, run in cases(engine).items():
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            run()
            times.append((time.perf_counter() - started) * 1000)
            if times[0] > SLOW_MS:  # far over budget: one run says enough
                break
        results[name] = {
            "first_ms": round(times[0], 1),
            "median_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1),
        }
        print(f"{name:36s} median {results[name]['median_ms']:8.1f} ms  max {max(times):8.1f} ms")
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    engine = make_engine(args.url)
    results = time_queries(engine, args.repeat)
    plans = explain(engine)
    for name, plan in plans.items():
        print(f"EXPLAIN {name}:", *plan, sep="\n  ")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"database": engine.dialect.name, "at": datetime.now(UTC).isoformat()}
        args.json.write_text(json.dumps({**report, "queries": results, "plans": plans}, indent=2))


if __name__ == "__main__":
    main()
