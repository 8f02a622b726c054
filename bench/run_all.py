"""Every benchmark in one command; JSON into bench/results/, then the README's table rewritten.

    python bench/run_all.py            # the full run (about 20 minutes on 2 quiet cores)
    python bench/run_all.py --quick    # tiny counts: proves every bench runs end to end

Each bench runs in its own process, one after another (never in parallel: they would measure
each other). A bench that fails is recorded and the rest still run; the exit status is 1 if any
failed. Benches that only print (bench_ratelimit.py, and a dashboard bench once it
lands) have their output kept in bench/results/<name>.json.

The README table between `<!-- bench-table:start -->` and `<!-- bench-table:end -->` is rewritten
from the JSON after a full run (after a quick run only with --readme: quick figures are noise).
A run started on a busy machine (1-minute load above 0.75 per core) marks every figure
"not yet measured on a quiet machine".
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH, RESULTS, ROOT, machine, write_result  # noqa: E402

README = ROOT / "README.md"
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"
NOT_YET = "not yet measured on a quiet machine"
BUSY_LOAD_PER_CORE = 0.75
TIMEOUT_SECONDS = 3600  # per bench; the full overhead run takes about 15 minutes
GOAL_NAMES = {
    "added_le_1ms": "added ≤ 1 ms",
    "added_le_quarter_router": "≤ ¼ of Router's",
    "throughput_ge_0_8": "throughput ≥ 0.8×",
}

# (name, script, full args, quick args, writes its own JSON)
BENCHES: list[tuple[str, str, list[str], list[str], bool]] = [
    ("overhead", "bench_overhead.py", [], ["--quick"], True),
    ("ratelimit_fidelity", "bench_ratelimit_fidelity.py", [], ["--quick"], True),
    ("audit", "bench_audit.py", [], ["--quick"], True),
    ("ratelimit_micro", "bench_ratelimit.py", [], ["--n", "200"], False),
    ("api", "bench_api.py", [], ["--quick"], True),
    ("dashboard", "bench_dashboards.py", ["--keep", "--reuse"], ["--quick"], True),
]


def run(
    name: str, script: str, extra: list[str], out_dir: Path, own_json: bool, quick: bool
) -> dict[str, Any]:
    path = BENCH / script
    if not path.exists():
        return {"status": "absent", "note": f"bench/{script} is not in this checkout"}
    cmd = [sys.executable, str(path), *extra]
    if own_json:
        cmd += ["--out", str(out_dir)]
    print(f"== {name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Output streams through as it comes (a full bench is silent for minutes otherwise) and is
    # kept for the JSON; stderr is merged so a failure's last line becomes the note.
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group, so a timeout also ends the upstream it started
    )
    killer = threading.Timer(TIMEOUT_SECONDS, os.killpg, (proc.pid, signal.SIGKILL))
    killer.start()
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    proc.wait()
    killer.cancel()
    output = "".join(lines)
    seconds = round(time.monotonic() - t0, 1)
    status = "ok" if proc.returncode == 0 else "failed"
    record: dict[str, Any] = {"status": status, "seconds": seconds}
    if status == "failed":
        last = [line.strip() for line in lines if line.strip()][-1:] or ["no output"]
        record["note"] = (
            last[0][:300] if proc.returncode > 0 else f"killed after {TIMEOUT_SECONDS} s"
        )
        print(f"!! {name} failed: {record['note']}", flush=True)
    if not own_json:
        record["stdout"] = output
        write_result(name, {"quick": quick, "status": status, "stdout": output}, out_dir)
    return record


def load(out_dir: Path, name: str) -> dict[str, Any] | None:
    path = out_dir / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _where(result: dict[str, Any]) -> list[str]:
    m = result["machine"]
    return [f"{m['cores']} × {m['cpu']}, load {m['loadavg_1m_at_start']}", result["date"]]


def _render(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _usable(result: dict[str, Any] | None) -> bool:
    return bool(result) and not result.get("quick")


def _busy(cells: list[str], busy: bool) -> list[str]:
    return [f"{c} *" if busy and c not in ("", NOT_YET, "—") else c for c in cells]


def overhead_table(result: dict[str, Any] | None, busy: bool) -> str:
    labels = {
        "gateway-sqlite": "GateHouse, audit on SQLite",
        "gateway-postgres": "GateHouse, audit on PostgreSQL",
        "gateway-redis": "GateHouse, Redis-shared limits",
        "gateway-budget": "GateHouse, budget set",
        "litellm-router": "LiteLLM Router (2 providers, retries, rpm/tpm)",
        "litellm-completion": "litellm.completion",
    }
    header = [
        "Client",
        "Added median",
        "Added p99",
        "32 threads: added median / p99",
        "Client CPU/call",
        "32-thread throughput",
        "Stream TTFT added",
        "Versions",
        "Machine",
        "Date",
    ]
    rows = []
    clients = (result or {}).get("clients", {}) if _usable(result) else {}
    for key, label in labels.items():
        r = clients.get(key)
        if not r:
            rows.append([label, NOT_YET, "", "", "", "", "", "—", "—", "—"])
            continue
        if "median_ms" not in r:
            rows.append(
                [
                    label,
                    r.get("unavailable") or r.get("error", ""),
                    "",
                    "",
                    "",
                    "",
                    "",
                    "—",
                    *_where(result),
                ]
            )
            continue
        v = r["versions"]
        versions = ", ".join(f"{k} {v[k]}" for k in ("gatehouse", "litellm", "openai") if k in v)
        cells = [
            f"{r['added_median_ms']:+.2f} ms",
            f"{r['added_p99_ms']:+.2f} ms",
            f"{r['threaded_added_median_ms']:+.2f} / {r['threaded_added_p99_ms']:+.2f} ms",
            f"{r['cpu_us_per_call']:.0f} µs",
            f"{r['throughput_ratio']:.2f}×",
            f"{r['added_ttft_median_ms']:+.2f} ms",
        ]
        rows.append([label, *_busy(cells, busy), versions, *_where(result)])
    raw = clients.get("raw")
    if raw and "median_ms" in raw:
        cells = [
            f"{raw['median_ms']:.2f} ms (absolute)",
            f"{raw['p99_ms']:.2f} ms (absolute)",
            f"{raw['threaded_median_ms']:.2f} ms median (absolute)",
            f"{raw['cpu_us_per_call']:.0f} µs",
            f"{raw['throughput_rps']:,.0f} calls/s",
            f"{raw['ttft_median_ms']:.2f} ms (absolute)",
        ]
        versions = f"openai {raw['versions'].get('openai')}"
        rows.insert(
            0, ["raw openai SDK (the baseline)", *_busy(cells, busy), versions, *_where(result)]
        )
    text = _render(header, rows)
    if not _usable(result):
        return text
    if check := result.get("upstream_check"):
        text += f"\nUpstream check: {check['note']}\n"
    verdicts = []
    for name, goal in (result.get("goals") or {}).items():
        if goal:
            said = ", ".join(
                f"{GOAL_NAMES.get(k, k)}: {'n/a' if v is None else ('met' if v else 'NOT met')}"
                for k, v in goal.items()
            )
            verdicts.append(f"{name} — {said}")
    if verdicts:
        text += "\nGoals in this run: " + "; ".join(verdicts) + ".\n"
    return text


def fidelity_table(result: dict[str, Any] | None, busy: bool) -> str:
    header = [
        "Limit (4 processes)",
        "Storage",
        "Most in any 60 s window",
        "Most in any 59 s window",
        "Admitted, last full minute",
        "Machine",
        "Date",
    ]
    rows = []
    cases = result.get("cases", []) if _usable(result) else []
    for c in cases:
        frac = c["admitted_fraction_last_full_minute"]
        cells = [
            f"{c['max_in_60s_window']:,}",
            f"{c['max_in_59s_window']:,}",
            "n/a (run < 61 s)" if frac is None else f"{frac:.1%}",
        ]
        rows.append(
            [
                f"{c['limit']:,} {c['limit_kind']}",
                c["storage"],
                *_busy(cells, busy),
                *_where(result),
            ]
        )
    if not rows:
        for kind in ("600 rpm", "10,800 tpm"):
            for storage in ("redis", "memory (per process)"):
                rows.append([kind, storage, NOT_YET, "", "", "—", "—"])
    text = _render(header, rows)
    shared = [c for c in cases if c["storage"] == "redis"]
    if shared:
        said = "; ".join(
            f"{c['limit_kind']}: never over {'met' if c['never_over'] else 'NOT met'}, ≥ 97% admitted "
            + ("n/a" if c["admitted_ok"] is None else "met" if c["admitted_ok"] else "NOT met")
            for c in shared
        )
        text += f"\nGoals in this run (Redis): {said}.\n"
    return text


def audit_table(result: dict[str, Any] | None, busy: bool) -> str:
    header = [
        "Database",
        "Rows/s sustained",
        "submit() median",
        "Call added, writer idle",
        "Call added, while ingesting",
        "Machine",
        "Date",
    ]
    rows = []
    dbs = result.get("databases", {}) if _usable(result) else {}
    for db in ("sqlite", "postgresql"):
        r = dbs.get(db)
        if not r or "ingest" not in r:
            note = (r or {}).get("unavailable", NOT_YET)
            rows.append([db, note, "", "", "", "—", "—"])
            continue
        i, c = r["ingest"], r["call_latency"]
        cells = [
            f"{i['rows_per_s']:,.0f}",
            f"{i['submit_median_us']:.2f} µs",
            f"{c['added_idle_median_ms']:+.2f} ms",
            f"{c['added_busy_median_ms']:+.2f} ms (~{c['flood_rows_per_s_offered']:,.0f} rows/s)",
        ]
        rows.append([db, *_busy(cells, busy), *_where(result)])
    return _render(header, rows)


def api_table(result: dict[str, Any] | None, busy: bool) -> str:
    """bench_api.py: each proxy's added latency over the raw SDK and its concurrent rate."""
    header = ["Proxy", "Added, non-stream (median)", "Added, stream TTFT (median)"]
    header += ["Concurrent calls/s (× raw)", "Machine", "Date"]
    labels = {"gatehouse": "GateHouse (`gatehouse serve`)", "litellm-proxy": "LiteLLM proxy"}
    if not _usable(result) or result.get("status") != "ok" or "results" not in result:
        return _render(header, [[label, NOT_YET, "", "", "—", "—"] for label in labels.values()])
    res, rows = result["results"], []
    for side, label in labels.items():
        if side not in res["non_stream"]:
            note = result["sides"].get(side)
            reason = note.get("unavailable") if isinstance(note, dict) else NOT_YET
            rows.append([label, reason or NOT_YET, "", "", *_where(result)])
            continue
        conc = res["concurrent"][side]
        cells = [
            f"{res['non_stream'][side]['added_median_ms']:+.2f} ms",
            f"{res['stream_ttft'][side]['added_median_ms']:+.2f} ms",
            f"{conc['calls_per_s']:,.0f} ({conc['ratio_to_raw']:.2f}×, {result['clients']} clients)",
        ]
        rows.append([label, *_busy(cells, busy), *_where(result)])
    return _render(header, rows)


def dashboard_table(result: dict[str, Any] | None, busy: bool) -> str:
    header = [
        "Rows",
        "Fill (demo-data)",
        "Slowest query (median)",
        "Overview",
        "Costs 30 d by model",
        "Requests page 1",
        "Requests page 50",
        "Machine",
        "Date",
    ]
    rows = []
    runs = result.get("runs", {}) if _usable(result) else {}
    if runs:  # measured in its own run (the databases are kept): its own load counts
        m = result["machine"]
        busy = busy or m["loadavg_1m_at_start"] / (m["cores"] or 1) > BUSY_LOAD_PER_CORE
    for count, r in runs.items():
        fill, pages = r.get("fill", {}), r.get("pages", {})
        slowest = max(
            r.get("queries", {"-": {"median_ms": 0}}).items(), key=lambda q: q[1]["median_ms"]
        )
        filled = (
            "kept database"
            if fill.get("reused")
            else f"{fill.get('demo_data_s', 0):,.0f} s ({fill.get('demo_rows_per_s', 0):,} rows/s)"
        )
        cells = [
            filled,
            f"{slowest[1]['median_ms']:,.0f} ms ({slowest[0]})",
            *(
                f"{pages[p]['median_ms'] / 1000:.2f} s" if p in pages else "—"
                for p in ("overview", "costs", "requests")
            ),
            f"{pages['requests_page_50']['ms'] / 1000:.2f} s"
            if "requests_page_50" in pages
            else "—",
        ]
        rows.append([f"{int(count):,}", *_busy(cells, busy), *_where(result)])
    if not rows:
        rows.append([NOT_YET, "", "", "", "", "", "", "—", "—"])
    return _render(header, rows)


SECTIONS = [  # (header, JSON name, table maker)
    (
        "**Overhead per call** versus the raw openai SDK of the same venv (bench_overhead.py)\n",
        "overhead",
        overhead_table,
    ),
    (
        "**Rate-limit fidelity** at the upstream (bench_ratelimit_fidelity.py)\n",
        "ratelimit_fidelity",
        fidelity_table,
    ),
    ("**Audit ingest** (bench_audit.py)\n", "audit", audit_table),
    (
        "**HTTP API proxies** versus the raw openai SDK at the same upstream (bench_api.py)\n",
        "api",
        api_table,
    ),
    (
        "**Dashboards on PostgreSQL** (bench_dashboards.py; pages timed in chromium until loaded)\n",
        "dashboard",
        dashboard_table,
    ),
]
FOOTNOTE = f"\\* measured on a busy machine: {NOT_YET}.\n"


def _was_busy(result: dict[str, Any] | None, busy: bool) -> bool:
    """Busy if this run is, or if the machine was loaded when that result was measured."""
    m = (result or {}).get("machine") or {}
    load = m.get("loadavg_1m_at_start")
    return busy or (load is not None and load / (m.get("cores") or 1) > BUSY_LOAD_PER_CORE)


def _kept_section(old: str, header: str) -> str | None:
    """The README's current text for `header`'s table (up to the next header), if any."""
    if header not in old:
        return None
    rest = old.split(header, 1)[1]
    cut = min([k for k in (rest.find("\n**"), rest.find(FOOTNOTE)) if k >= 0] or [len(rest)])
    return rest[:cut].strip("\n") + "\n"


def table(out_dir: Path, busy: bool, old: str = "") -> str:
    """The README's tables: every figure, each row with its machine, versions and date. A
    bench with no JSON here (another machine measured it) keeps its table from `old`, the
    README's current text, instead of turning into "not yet measured"."""
    parts = []
    for header, name, make in SECTIONS:
        result = load(out_dir, name)
        kept = _kept_section(old, header) if result is None else None
        parts += [header, kept if kept is not None else make(result, _was_busy(result, busy))]
    if " * |" in "".join(parts):
        parts.append(FOOTNOTE)
    return "\n".join(parts)


def current_table() -> str:
    readme = README.read_text()
    if START not in readme or END not in readme:
        return ""
    return readme.split(START, 1)[1].split(END, 1)[0]


def rewrite_readme(text: str) -> bool:
    readme = README.read_text()
    if START not in readme or END not in readme:
        print(f"README.md has no {START} … {END} markers; table not written", file=sys.stderr)
        return False
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    README.write_text(f"{before}{START}\n{text}{END}{after}")
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: proves every bench runs")
    parser.add_argument("--only", nargs="*", help="run only these (names as in the JSON files)")
    parser.add_argument(
        "--readme", action="store_true", help="rewrite the README table after --quick too"
    )
    parser.add_argument("--no-readme", action="store_true", help="never touch README.md")
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="rewrite the README table from the JSON; run nothing",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = parser.parse_args()
    if args.table_only:
        rewrite_readme(table(args.out, False, current_table()))
        print("README.md benchmark table rewritten from", args.out)
        return

    info = machine()
    busy = (info["loadavg_1m_at_start"] / (info["cores"] or 1)) > BUSY_LOAD_PER_CORE
    if busy:
        print(
            f"note: load {info['loadavg_1m_at_start']} on {info['cores']} cores — figures from this "
            f"run are marked '{NOT_YET}'",
            flush=True,
        )
    summary: dict[str, Any] = {}
    for name, script, full, quick, own_json in BENCHES:
        if args.only and name not in args.only:
            continue
        extra = quick if args.quick else full
        summary[name] = run(name, script, extra, args.out, own_json, args.quick)
    write_result(
        "summary",
        {
            "quick": args.quick,
            "busy": busy,
            "benches": {
                k: {key: v for key, v in r.items() if key != "stdout"} for k, r in summary.items()
            },
        },
        args.out,
    )
    wanted = not args.no_readme and (not args.quick or args.readme)
    if wanted and rewrite_readme(table(args.out, busy or args.quick, current_table())):
        print("README.md benchmark table rewritten")
    failed = [name for name, r in summary.items() if r["status"] == "failed"]
    for name, r in summary.items():
        print(f"{name:<20} {r['status']:<7} {r.get('seconds', '')!s:>7}  {r.get('note', '')}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
