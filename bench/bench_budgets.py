"""Budget admitter numbers: reserve + settle per call, in memory and through Redis.

    .venv/bin/python bench/bench_budgets.py [--redis redis://127.0.0.1:6379/0] [--calls N]

Uses a temporary SQLite database with one global and one provider budget far from their limits.
Prints the median and p99 in microseconds; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from gatehouse_core.catalog import Catalog, CatalogEntry
from gatehouse_core.db import make_engine
from gatehouse_core.spend.budget_rules import BudgetStore, CallInfo, make_rule
from gatehouse_core.spend.budgets import Budgets

PRICED = CatalogEntry("bench/model", "Bench", None, 1e-6, 2e-6, None, 0.0, "bench", None)
CALL = CallInfo("bench", "bench/model", prompt_tokens=500, max_tokens=500)


def measure(budgets: Budgets, calls: int) -> list[float]:
    timings = []
    for _ in range(calls):
        started = time.perf_counter()
        budgets.reserve(CALL).settle(0.0001)
        timings.append((time.perf_counter() - started) * 1e6)
    return timings


def _delete_keys(url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(f"{namespace}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis")
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'bench.db'}")
        store = BudgetStore(engine)
        store.set(make_rule("global", None, 1e6), actor="bench")
        store.set(make_rule("provider", "bench", 1e6), actor="bench")
        catalog = Catalog(engine, ttl=3600, defaults=[PRICED])
        kinds = [("memory", None)] + ([("redis", args.redis)] if args.redis else [])
        for kind, url in kinds:
            namespace = f"gatehouse-bench-{uuid.uuid4().hex[:8]}"
            budgets = Budgets(engine, catalog, url, namespace=namespace)
            measure(budgets, 100)  # warm up: the first read of rules, spend and prices
            timings = sorted(measure(budgets, args.calls))
            p99 = timings[int(len(timings) * 0.99) - 1]
            print(
                f"{kind:6}  reserve+settle  median {statistics.median(timings):8.1f} µs"
                f"  p99 {p99:8.1f} µs  ({args.calls} calls)"
            )
            budgets.close()
            if url:
                _delete_keys(url, namespace)
        engine.dispose()


if __name__ == "__main__":
    main()
