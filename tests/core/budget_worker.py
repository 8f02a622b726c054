"""A separate process for the cross-process budget tests.

Usage: python budget_worker.py '{"database_url": ..., "redis_url": ..., "namespace": ...,
"mode": "burst" | "hold", "threads": 4, "calls": 20, "cost": 0.008, "ttl": 900}'
burst: `threads` threads reserve and settle `calls` rounds (see `burst`), print {"settled": USD, "refused": N}.
hold: reserve once, print "held", then sleep until killed (its reservation must lapse).
"""

from __future__ import annotations

import json
import sys
import threading
import time

from gatehouse_core.catalog import Catalog, CatalogEntry
from gatehouse_core.db import make_engine
from gatehouse_core.errors import BudgetExceeded
from gatehouse_core.spend.budget_rules import CallInfo
from gatehouse_core.spend.budgets import Budgets

# $2 per million tokens both ways: 1,000 prompt + 4,000 output tokens reserve exactly $0.01.
PRICED = CatalogEntry("test/priced", "Priced", None, 2e-6, 2e-6, None, 0.0, "test", None)
CALL = CallInfo("primary", "test/priced", prompt_tokens=1000, max_tokens=4000)


def burst(budgets: Budgets, threads: int, calls: int, cost: float) -> tuple[float, int]:
    """`threads` threads run `calls` rounds in lock step: all reserve, then (with every
    reservation of the round in flight) each settles `cost`, or releases on every 4th round.
    Returns (settled USD, refusals)."""
    barrier = threading.Barrier(threads, timeout=30)
    settled: list[float] = []
    refused: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for index in range(calls):
                barrier.wait()
                try:
                    reservation = budgets.reserve(CALL)
                except BudgetExceeded:
                    refused.append(1)
                    reservation = None
                barrier.wait()  # the whole round's reservations are open now
                if reservation is None:
                    continue
                if index % 4 == 3:
                    reservation.release()
                else:
                    reservation.settle(cost)
                    settled.append(cost)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
            barrier.abort()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    if errors:
        raise errors[0]
    return sum(settled), len(refused)


def main(spec: dict) -> None:
    engine = make_engine(spec["database_url"])
    budgets = Budgets(
        engine,
        Catalog(engine, ttl=3600, defaults=[PRICED]),
        spec.get("redis_url"),
        namespace=spec["namespace"],
        reservation_ttl=spec.get("ttl", 900),
    )
    if spec.get("redis_url") and budgets.storage_kind != "redis":
        raise SystemExit("the worker could not reach Redis")
    if spec["mode"] == "hold":
        budgets.reserve(CALL)
        print("held", flush=True)
        time.sleep(60)
        return
    settled, refused = burst(budgets, spec["threads"], spec["calls"], spec["cost"])
    print(json.dumps({"settled": settled, "refused": refused}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
