"""Dashboard numbers on PostgreSQL: fill a fresh database through `gatehouse demo-data`, then
(added by the dashboard work) time every query and page against it.

    .venv/bin/python bench/bench_dashboards.py [--rows 1000000 10000000] [--workers 2]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--keep]

For each row count: creates the database `gatehouse_bench_<rows>`, runs `gatehouse migrate`
and `gatehouse demo-data --days 30 --rows N --seed 1 --workers W --json` as the operator would
(timed end to end), times `gatehouse rollups rebuild --since 30d`, and records row counts and
table sizes. Writes one JSON file per run to bench/results/ and prints it. Asserts nothing.
The database is dropped afterwards unless --keep (the query and page timings need it kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results"
DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


# ---- the database ------------------------------------------------------------------------


def create_database(admin_url: str, name: str) -> str:
    """A fresh database `name` (dropped first if it exists); returns its URL."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def gatehouse(url: str, *argv: str) -> tuple[float, str]:
    """Run the real CLI against `url`; (seconds, stdout). Progress lines pass through."""
    env = {**os.environ, "GATEHOUSE_DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "gatehouse_core", *argv],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return time.perf_counter() - started, done.stdout


def table_facts(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    facts: dict[str, Any] = {}
    with engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        for table in ("llm_requests", "llm_usage_hourly"):
            rows = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            size = conn.execute(text(f"SELECT pg_total_relation_size('{table}')")).scalar_one()
            facts[table] = {"rows": rows, "total_bytes": size}
        facts["server_version"] = conn.execute(text("SHOW server_version")).scalar_one()
    engine.dispose()
    return facts


# ---- filling -------------------------------------------------------------------------------


def fill(url: str, rows: int, workers: int) -> dict[str, Any]:
    """Migrate, write `rows` demo rows, rebuild the rollups: timings and what was stored."""
    migrate_s, _ = gatehouse(url, "migrate")
    demo_s, out = gatehouse(
        url,
        "demo-data",
        *("--days", "30", "--rows", str(rows), "--seed", "1"),
        *("--workers", str(workers), "--json"),
    )
    rebuild_s, _ = gatehouse(url, "rollups", "rebuild", "--since", "30d", "--json")
    return {
        "rows": rows,
        "workers": workers,
        "migrate_s": round(migrate_s, 2),
        "demo_data_s": round(demo_s, 2),
        "demo_rows_per_s": round(rows / demo_s),
        "demo": json.loads(out),
        "rollups_rebuild_30d_s": round(rebuild_s, 2),
        "tables": table_facts(url),
    }


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    for rows in args.rows:
        name = f"gatehouse_bench_{rows}"
        url = create_database(args.admin_url, name)
        try:
            result = {
                "bench": "dashboards",
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": machine(),
                "database": name,
                "fill": fill(url, rows, args.workers),
            }
        finally:
            if not args.keep:
                drop_database(args.admin_url, name)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS / f"dashboards-fill-{rows}-{stamp}.json"
        path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(result, indent=2))
        print(f"written to {path.relative_to(REPO_ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
