"""Dashboard numbers on PostgreSQL: fill a database through `gatehouse demo-data`, then time
every dashboard query and the Overview, Costs and Requests pages in Debian's chromium.

    .venv/bin/python bench/bench_dashboards.py [--rows 1000000 10000000] [--workers 2]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres] [--keep] [--reuse]
    .venv/bin/python bench/bench_dashboards.py --quick     # 20k rows: proves the bench runs

For each row count: creates the database `gatehouse_bench_<rows>` (with --reuse, a kept one of
that name holding the rows is measured as it is), runs `gatehouse migrate` and `gatehouse
demo-data --days 30 --rows N --seed 1 --workers W --json` as the operator would (timed end to
end), and records row counts and table sizes. Then times every query the pages run
(bench_queries.py: first run, median and worst of 5, and PostgreSQL's plans), starts `streamlit
run app.py` on the database and, signed in as an admin in chromium, times each page from the
click on its sidebar link (and, separately, from opening its URL: a full load of the app) until
the app is connected, its script has finished and no element is still loading: Overview, Costs
(last 30 days by model, the page's defaults), Requests (first page, then 49 clicks on "Older" to
page 50, each page by keyset). Last, it times `gatehouse rollups rebuild --since 30d`: after the
measurements, because a rebuild deletes and rewrites every rollup row of the span, and until
later hours reuse the freed space the rollups' files are twice their live size (the 30-day
series by model: 99 ms right after a rebuild, 60 ms on the table as the writers leave it; 10M
rows, 2026-12-03). A database kept with --keep and measured again with --reuse is in that
rebuilt state. Writes one JSON file per row count to bench/results/ and prints it. Asserts
nothing. The database is dropped afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench_queries  # noqa: E402  (beside this file)

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
    # VACUUM as autovacuum would leave a table that is written all day: a fresh fill has no
    # visibility map yet, so the capped count's index-only scan read the heap (117 ms vs 4 ms).
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    facts: dict[str, Any] = {}
    with engine.connect() as conn:
        conn.execute(text("VACUUM ANALYZE"))
        for table in ("llm_requests", "llm_usage_hourly", "llm_usage_hourly_workflow"):
            rows = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            size = conn.execute(text(f"SELECT pg_total_relation_size('{table}')")).scalar_one()
            facts[table] = {"rows": rows, "total_bytes": size}
        facts["server_version"] = conn.execute(text("SHOW server_version")).scalar_one()
    engine.dispose()
    return facts


# ---- filling -------------------------------------------------------------------------------


def fill(url: str, rows: int, workers: int) -> dict[str, Any]:
    """Migrate, write `rows` demo rows: timings and what was stored (the rebuild is timed
    after the measurements, `time_rebuild`)."""
    migrate_s, _ = gatehouse(url, "migrate")
    demo_s, out = gatehouse(
        url,
        "demo-data",
        *("--days", "30", "--rows", str(rows), "--seed", "1"),
        *("--workers", str(workers), "--json"),
    )
    return {
        "rows": rows,
        "workers": workers,
        "migrate_s": round(migrate_s, 2),
        "demo_data_s": round(demo_s, 2),
        "demo_rows_per_s": round(rows / demo_s),
        "demo": json.loads(out),
        "tables": table_facts(url),
    }


def time_rebuild(url: str) -> float:
    rebuild_s, _ = gatehouse(url, "rollups", "rebuild", "--since", "30d", "--json")
    return round(rebuild_s, 2)


# ---- queries and pages ---------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGES = (("overview", "/", "Overview"), ("costs", "/spend", "Costs"))
PAGE_RUNS = 3
OLDER_CLICKS = 49
BENCH_PASSWORD = "bench-password-" + os.urandom(6).hex()


def measure_queries(url: str) -> dict[str, Any]:
    from gatehouse_core.db import make_engine

    engine = make_engine(url, migrate=False)
    try:
        timings = bench_queries.time_queries(engine, repeat=5)
        plans = bench_queries.explain(engine)
    finally:
        engine.dispose()
    worst = max(t["median_ms"] for t in timings.values())
    return {"queries": timings, "slowest_median_ms": worst, "plans": plans}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _console(url: str, home: Path) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    """`streamlit run app.py` against `url`, as the README starts it, on a free port."""
    import shutil
    import urllib.request

    from cryptography.fernet import Fernet

    (home / ".streamlit").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_ROOT / ".streamlit" / "config.toml", home / ".streamlit" / "config.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEHOUSE_", "STREAMLIT_"))}
    env.update(
        GATEHOUSE_DATABASE_URL=url,
        GATEHOUSE_HOME=str(home),
        GATEHOUSE_SECRETS_KEY=Fernet.generate_key().decode(),
        PYTHONPATH=str(REPO_ROOT),
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "streamlit", "run", str(REPO_ROOT / "app.py")]
    command += ["--server.headless", "true", "--server.address", "127.0.0.1"]
    command += ["--server.port", str(port), "--browser.gatherUsageStats", "false"]
    log = (home / "streamlit.log").open("wb")
    process = subprocess.Popen(command, env=env, cwd=home, stdout=log, stderr=log)
    for _ in range(300):
        if process.poll() is not None:
            raise SystemExit(f"streamlit exited: {(home / 'streamlit.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as answer:
                if answer.read().strip() == b"ok":
                    return process, base, env
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("streamlit did not become healthy in 60 s")


def measure_pages(url: str) -> dict[str, Any]:
    """Each page's time in chromium from navigation to a finished, connected, loaded app."""
    import tempfile

    from playwright.sync_api import expect, sync_playwright

    from tests.e2e.browser import keyed, main_title, wait_for_app

    home = Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
    admin = f"bench-{os.getpid()}"
    process, base, env = _console(url, home)
    try:
        subprocess.run(
            [sys.executable, "-m", "gatehouse_core", "users", "add", admin, "--role", "admin"],
            input=BENCH_PASSWORD + "\n",
            env=env,
            cwd=home,
            text=True,
            check=True,
            capture_output=True,
        )
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.set_default_timeout(120_000)
            expect.set_options(timeout=120_000)
            page.goto(base + "/")
            keyed(page, "signin_username", "input").fill(admin)
            keyed(page, "signin_password", "input").fill(BENCH_PASSWORD)
            keyed(page, "signin_submit", "button").click()
            expect(main_title(page)).to_have_text("Overview")
            wait_for_app(page, timeout=120_000)
            results: dict[str, Any] = {}

            def timed(action: Any, title: str, marker: str | None = None) -> float:
                started = time.perf_counter()
                try:
                    action()
                except Exception:
                    page.screenshot(path=str(home / "failed.png"))
                    print(f"failed; screenshot in {home / 'failed.png'}", file=sys.stderr)
                    raise
                expect(main_title(page)).to_have_text(title)
                if marker:
                    expect(page.get_by_text(marker)).to_be_visible()
                wait_for_app(page, timeout=120_000)
                return round((time.perf_counter() - started) * 1000, 1)

            nav = page.get_by_test_id("stSidebarNav").locator("a")
            visits = (*PAGES, ("requests", "/audit-log", "Requests"))
            for name, path, title in visits:
                # Opened by URL: a full load of the app in a new tab's worth of work.
                loads = [timed(lambda p=path: page.goto(base + p), title) for _ in range(2)]
                # Reached from the sidebar, coming from another page, as a user moves around.
                runs = []
                for _ in range(PAGE_RUNS):
                    other = next(t for _, _, t in visits if t != title)
                    timed(nav.filter(has_text=other).click, other)
                    runs.append(timed(nav.filter(has_text=title).click, title))
                results[name] = {
                    "runs_ms": runs,
                    "median_ms": statistics.median(runs),
                    "url_load_ms": loads,
                }
            clicks = []
            for number in range(2, OLDER_CLICKS + 2):
                older = keyed(page, "requests_older", "button")
                clicks.append(timed(older.click, "Requests", f"Page {number} ·"))
            results["requests_page_50"] = {
                "ms": clicks[-1],
                "older_click_median_ms": statistics.median(clicks),
                "older_click_max_ms": max(clicks),
            }
            browser.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    slowest = max(
        [r["median_ms"] for k, r in results.items() if "median_ms" in r]
        + [results["requests_page_50"]["ms"]]
    )
    return {"pages": results, "slowest_page_ms": slowest}


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def stored_rows(url: str) -> int | None:
    """Rows in llm_requests of an existing database, or None if it cannot be read."""
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM llm_requests")).scalar_one()
    except Exception:  # no such database or table: fill it
        return None
    finally:
        engine.dispose()


def bench_one(args: argparse.Namespace, rows: int) -> dict[str, Any]:
    name = f"gatehouse_bench_{rows}"
    url = make_url(args.admin_url).set(database=name).render_as_string(hide_password=False)
    result: dict[str, Any] = {"rows": rows, "database": name, "started": machine()}
    reused = args.reuse and stored_rows(url) == rows
    try:
        if reused:
            result["fill"] = {"reused": True, "tables": table_facts(url)}
        else:
            url = create_database(args.admin_url, name)
            result["fill"] = fill(url, rows, args.workers)
        result.update(measure_queries(url))
        result.update(measure_pages(url))
        if not reused:
            result["fill"]["rollups_rebuild_30d_s"] = time_rebuild(url)
    finally:
        if not args.keep:
            drop_database(args.admin_url, name)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--reuse", action="store_true", help="measure a kept database as it is")
    parser.add_argument("--quick", action="store_true", help="20,000 rows: proves the bench runs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.workers = [20_000], 1
    from common import write_result

    runs = {}
    for rows in args.rows:
        runs[str(rows)] = bench_one(args, rows)
        print(json.dumps(runs[str(rows)], indent=2))
    path = write_result("dashboard", {"quick": args.quick, "runs": runs}, args.out)
    print(f"written to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
