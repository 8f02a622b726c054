"""A separate process for the cross-process budget tests.

Usage: python budget_worker.py '{"database_url": ..., "redis_url": ..., "namespace": ...,
"mode": "burst" | "hold", "calls": 20, "cost": 0.008, "ttl": 900}'
burst: reserve and settle `calls` times, print {"settled": USD, "refused": N}.
hold: reserve once, print "held", then sleep until killed (its reservation must lapse).
"""

from __future__ import annotations

import json
import sys
import time

from gatehouse_core.catalog import Catalog, CatalogEntry
from gatehouse_core.db import make_engine
from gatehouse_core.errors import BudgetExceeded
from gatehouse_core.spend.budgets import Budgets, CallInfo

# $2 per million tokens both ways: 1,000 prompt + 4,000 output tokens reserve exactly $0.01.
PRICED = CatalogEntry("test/priced", "Priced", None, 2e-6, 2e-6, None, 0.0, "test", None)
CALL = CallInfo("primary", "test/priced", prompt_tokens=1000, max_tokens=4000)


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
    settled, refused = 0.0, 0
    for _ in range(spec["calls"]):
        try:
            reservation = budgets.reserve(CALL)
        except BudgetExceeded:
            refused += 1
            continue
        reservation.settle(spec["cost"])
        settled += spec["cost"]
    print(json.dumps({"settled": settled, "refused": refused}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
