"""Audit ingest: rows/s the writer sustains, and what it adds to call latency while it does.

    python bench/bench_audit.py [DATABASE_URL] [--rows N] [--calls N] [--quick] [--postgres URL]

Without DATABASE_URL it measures SQLite (a temporary file) and PostgreSQL (a database created on
--postgres and dropped afterwards; skipped with a note when the server is unreachable).

Per database:
1. ingest: `submit()` cost on the caller's thread, then rows/s end to end until the last row is
   committed (the count in `llm_requests` is checked against the rows submitted);
2. call latency: sequential `Gateway.chat` against the fast upstream (bench/upstream.py, own
   process) with no audit writer, with the writer idle but for the calls' own rows, and with the
   writer ingesting a flood of other rows from a second thread; blocks alternate so drift hits
   all three. "added" is the median over the no-writer run.

Writes bench/results/audit.json; prints numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import (  # noqa: E402
    DEFAULT_POSTGRES,
    MESSAGES,
    pct,
    postgres_database,
    start_fast_upstream,
    stop,
    timed,
    write_result,
)
from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import text  # noqa: E402
from upstream import KEY, MODEL  # noqa: E402

from gatehouse_core.audit import AuditWriter  # noqa: E402
from gatehouse_core.crypto import SecretBox  # noqa: E402
from gatehouse_core.db import make_engine  # noqa: E402
from gatehouse_core.gateway import Gateway  # noqa: E402
from gatehouse_core.providers import ProviderConfig  # noqa: E402
from gatehouse_core.registry import Registry  # noqa: E402

FLOOD_BATCH = 50  # rows the flood thread submits per tick
FLOOD_TICK = 0.01  # seconds between ticks: a target of ~5,000 rows/s beside the calls


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


def count_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM llm_requests")).scalar_one()


def ingest(url: str, rows: int, workdir: Path) -> dict[str, Any]:
    engine = make_engine(url)
    before = count_rows(engine)
    writer = AuditWriter(engine, spill_dir=workdir / "spill-ingest", max_buffer=rows * 2)
    batch = [make_row(n) for n in range(rows)]
    samples = []
    started = time.perf_counter()
    for row in batch:
        t0 = time.perf_counter_ns()
        writer.submit(row)
        samples.append(time.perf_counter_ns() - t0)
    submitted = time.perf_counter()
    writer.flush(timeout=600)
    done = time.perf_counter()
    writer.close()
    stored = count_rows(engine) - before
    engine.dispose()
    return {
        "rows": rows,
        "rows_stored": stored,
        "all_stored": stored == rows,
        "submit_median_us": statistics.median(samples) / 1000,
        "submit_p99_us": pct(samples, 0.99) / 1000,
        "submit_max_us": max(samples) / 1000,
        "rows_per_s": rows / (done - started),
        "flush_wait_ms": (done - submitted) * 1000,
    }


def call_latency(url: str, base_url: str, calls: int, workdir: Path) -> dict[str, Any]:
    engine = make_engine(url)
    os.environ.setdefault("GATEHOUSE_SECRETS_KEY", Fernet.generate_key().decode())
    registry = Registry(engine, SecretBox.from_env())
    if "audit-bench" not in {view.name for view in registry.providers()}:
        registry.add(
            ProviderConfig(name="audit-bench", base_url=base_url, default_model=MODEL),
            actor="bench",
            api_key=KEY,
        )
    writer = AuditWriter(engine, spill_dir=workdir / "spill-calls", max_buffer=1_000_000)
    bare = Gateway(registry, audit=None)
    audited = Gateway(registry, audit=writer)
    flooding = threading.Event()
    stop_flood = threading.Event()
    flooded = [0]

    def flood() -> None:
        n = 0
        while not stop_flood.is_set():
            if flooding.is_set():
                for _ in range(FLOOD_BATCH):
                    writer.submit(make_row(n))
                    n += 1
                flooded[0] = n
            time.sleep(FLOOD_TICK)

    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()

    def bare_call() -> None:
        bare.chat(MESSAGES, model=MODEL, source="bench")

    def audited_call() -> None:
        audited.chat(MESSAGES, model=MODEL, source="bench")

    for fn in (bare_call, audited_call):
        timed(fn, 20)
    none_ms: list[float] = []
    idle_ms: list[float] = []
    busy_ms: list[float] = []
    block = max(10, min(100, calls // 4))
    flood_started = time.perf_counter()
    flood_seconds = 0.0
    for _ in range(max(1, calls // block)):
        none_ms += timed(bare_call, block)
        idle_ms += timed(audited_call, block)
        flooding.set()
        t0 = time.perf_counter()
        busy_ms += timed(audited_call, block)
        flood_seconds += time.perf_counter() - t0
        flooding.clear()
    stop_flood.set()
    flooder.join(timeout=10)
    writer.flush(timeout=600)
    flood_wall = time.perf_counter() - flood_started
    stats = writer.stats
    audited.close()
    bare.close()
    engine.dispose()
    base = statistics.median(none_ms)
    return {
        "calls_per_case": len(none_ms),
        "no_writer_median_ms": base,
        "writer_idle_median_ms": statistics.median(idle_ms),
        "writer_busy_median_ms": statistics.median(busy_ms),
        "added_idle_median_ms": statistics.median(idle_ms) - base,
        "added_busy_median_ms": statistics.median(busy_ms) - base,
        "added_busy_p99_ms": pct(busy_ms, 0.99) - pct(none_ms, 0.99),
        "flood_rows": flooded[0],
        "flood_rows_per_s_offered": flooded[0] / flood_seconds if flood_seconds else 0.0,
        "writer_written": stats.written,
        "writer_spilled": stats.spilled,
        "seconds": flood_wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "url", nargs="?", help="one database to measure (default: SQLite and PostgreSQL)"
    )
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=600, help="sequential calls per case")
    parser.add_argument("--quick", action="store_true", help="tiny counts: proves it runs")
    parser.add_argument(
        "--postgres", default=os.environ.get("GATEHOUSE_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument("--out", type=Path, default=None, help="results directory")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.calls = 500, 40

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        targets: list[tuple[str, str, Any]] = []
        if args.url:
            targets.append((make_engine(args.url).dialect.name, args.url, None))
        else:
            targets.append(("sqlite", f"sqlite:///{workdir / 'audit.db'}", None))
            pg_url, reason, drop = postgres_database(args.postgres)
            if reason:
                results["postgresql"] = {"unavailable": f"not available: {reason}"}
            else:
                targets.append(("postgresql", pg_url, drop))
        upstream, base_url = start_fast_upstream(workdir)
        try:
            for name, url, drop in targets:
                print(
                    f"{name}: ingest {args.rows} rows, then {args.calls} calls per case…",
                    flush=True,
                )
                try:
                    results[name] = {
                        "ingest": ingest(url, args.rows, workdir),
                        "call_latency": call_latency(url, base_url, args.calls, workdir),
                    }
                finally:
                    if drop is not None:
                        drop()
        finally:
            stop(upstream)

    payload = {
        "quick": args.quick,
        "settings": {"rows": args.rows, "calls": args.calls},
        "databases": results,
    }
    path = write_result("audit", payload, args.out) if args.out else write_result("audit", payload)
    for name, r in results.items():
        if "ingest" not in r:
            print(f"{name:<11} {r['unavailable']}")
            continue
        i, c = r["ingest"], r["call_latency"]
        print(
            f"{name:<11} {i['rows_per_s']:>9,.0f} rows/s  submit median {i['submit_median_us']:.2f} µs"
            f"  stored {i['rows_stored']}/{i['rows']}"
        )
        print(
            f"{'':<11} call added: writer idle {c['added_idle_median_ms']:+.3f} ms,"
            f" ingesting ~{c['flood_rows_per_s_offered']:,.0f} rows/s {c['added_busy_median_ms']:+.3f} ms"
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
