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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from gatehouse_core import settings
from gatehouse_core.db import make_engine
from gatehouse_core.spend import queries, requestlog
from gatehouse_core.spend.forecast import month_forecast
from gatehouse_core.spend.periods import preset


def cases(engine: Engine) -> dict[str, Callable[[], Any]]:
    zone, now = settings.display_zone(), datetime.now(UTC)
    month = preset("30d", now, zone)
    first = requestlog.page(engine, limit=50)

    def page_50() -> Any:
        cursor = first.next_cursor
        for _ in range(49):
            if cursor is None:
                break
            cursor = requestlog.page(engine, after=cursor, limit=50).next_cursor
        return cursor

    return {
        "overview.forecast": lambda: month_forecast(engine, now, zone),
        "overview.compare_7d": lambda: queries.compare(engine, preset("7d", now, zone)),
        "costs.groups_model_30d": lambda: queries.groups(engine, month, "model"),
        "costs.series_model_30d": lambda: queries.series(engine, month, by="model", top=8),
        "costs.groups_workflow_30d (raw)": lambda: queries.groups(engine, month, "workflow"),
        "costs.distinct_provider_30d": lambda: queries.distinct_values(engine, month, "provider"),
        "requests.first_page": lambda: requestlog.page(engine, limit=50),
        "requests.pages_1_to_50 (keyset)": page_50,
    }


def explain(engine: Engine) -> dict[str, str]:
    """The first plan line of the two raw-table reads, on PostgreSQL."""
    if engine.dialect.name != "postgresql":
        return {}
    sql = {
        "keyset page": "SELECT * FROM llm_requests ORDER BY created_at DESC, id DESC LIMIT 51",
        "workflow 30d": "SELECT workflow_id, count(*) FROM llm_requests "
        "WHERE created_at >= now() - interval '30 days' GROUP BY workflow_id",
    }
    with engine.connect() as conn:
        return {name: conn.execute(text(f"EXPLAIN {q}")).scalar_one() for name, q in sql.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    engine = make_engine(args.url)
    results = {}
    for name, run in cases(engine).items():
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            run()
            times.append((time.perf_counter() - started) * 1000)
        results[name] = {"median_ms": statistics.median(times), "max_ms": max(times)}
        print(f"{name:36s} median {results[name]['median_ms']:8.1f} ms  max {max(times):8.1f} ms")
    plans = explain(engine)
    for name, plan in plans.items():
        print(f"EXPLAIN {name}: {plan}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"database": engine.dialect.name, "at": datetime.now(UTC).isoformat()}
        args.json.write_text(json.dumps({**report, "queries": results, "plans": plans}, indent=2))


if __name__ == "__main__":
    main()
