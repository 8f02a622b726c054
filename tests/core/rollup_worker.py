"""A writer process for the concurrent rollup test: waits for a go file, then writes rows.

Usage: python rollup_worker.py '{"url": ..., "seed": 1, "calls": 300, "prefix": "w1",
"spill_dir": ..., "ready": <path to create>, "go": <path to wait for>}'
Prints the number of rows the writer wrote.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from gatehouse_core.audit import AuditWriter
from gatehouse_core.db import make_engine
from tests.core.spend_data import random_rows


def main(spec: dict) -> int:
    engine = make_engine(spec["url"])
    rows = random_rows(spec["seed"], spec["calls"], prefix=spec["prefix"], narrow=True)
    writer = AuditWriter(engine, spill_dir=Path(spec["spill_dir"]), batch_size=15)
    Path(spec["ready"]).touch()
    deadline = time.monotonic() + 30
    while not Path(spec["go"]).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    for row in rows:
        writer.submit(row)
    writer.flush(timeout=60)
    writer.close()
    written = writer.stats.written
    engine.dispose()
    return written


if __name__ == "__main__":
    print(main(json.loads(sys.argv[1])))
