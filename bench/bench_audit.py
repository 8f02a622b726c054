"""Audit writer numbers: cost of `submit()` on the caller's thread, and rows/s written.

    .venv/bin/python bench/bench_audit.py [DATABASE_URL] [--rows N]

Default database: a temporary SQLite file. Prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from gatehouse_core.audit import AuditWriter
from gatehouse_core.db import make_engine


def make_row(n: int) -> dict:
    return {
        "request_id": f"bench-{time.time_ns()}-{n}",
        "attempt": 1,
        "created_at": datetime.now(UTC),
        "provider": "bench",
        "model": "bench/model",
        "status": "ok",
        "input_tokens": 120,
        "output_tokens": 40,
        "cost_usd": 0.000123,
        "cost_source": "provider",
        "latency_ms": 812.5,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", nargs="?")
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        engine = make_engine(url)
        writer = AuditWriter(engine, spill_dir=Path(tmp) / "spill", max_buffer=args.rows * 2)
        rows = [make_row(n) for n in range(args.rows)]
        samples = []
        started = time.perf_counter()
        for row in rows:
            t0 = time.perf_counter_ns()
            writer.submit(row)
            samples.append(time.perf_counter_ns() - t0)
        submitted = time.perf_counter()
        writer.flush(timeout=600)
        done = time.perf_counter()
        writer.close()
        engine.dispose()
    samples.sort()
    print(f"database      {engine.dialect.name}")
    print(f"rows          {args.rows}")
    print(f"submit median {statistics.median(samples) / 1000:.2f} µs")
    print(f"submit p99    {samples[int(len(samples) * 0.99)] / 1000:.2f} µs")
    print(f"submit max    {samples[-1] / 1000:.1f} µs")
    print(f"written       {args.rows / (done - started):,.0f} rows/s end to end")
    print(f"flush wait    {(done - submitted) * 1000:.0f} ms after the last submit")


if __name__ == "__main__":
    main()
