"""`gatehouse requests`, `gatehouse usage`, `gatehouse audit flush`.

`gatehouse requests [--since 24h] [--limit 50] [--status ok|error|incomplete|rejected] [--json]`
  The audit rows (one per upstream attempt), newest first. `--json` prints a list of objects
  keyed by the `llm_requests` column names (`id, request_id, attempt, created_at, provider,
  model, model_used, generation_id, input_tokens, output_tokens, cached_tokens,
  reasoning_tokens, cost_usd, cost_source, latency_ms, ttft_ms, status, http_status,
  error_type, error_message, workflow_id, trace_id, source, actor`), `created_at` as an
  ISO 8601 UTC string.

`gatehouse usage [--since 30d | --from YYYY-MM-DD [--to YYYY-MM-DD]]
                [--by day|model|provider|source|actor|status|workflow] [--json]`
  Per group, from the hourly rollup (workflow: from the raw rows of the range): `requests`
  (calls, each once, in the group of its final attempt), `attempts` (rows), tokens and cost.
  Days and `--from/--to` dates are in GATEHOUSE_TIMEZONE. `--json` prints a list of
  `{"group", "requests", "attempts", "input_tokens", "output_tokens", "cost_usd",
  "cached_tokens", "reasoning_tokens", "errors", "fallbacks", "cost_per_call_usd", "p50_ms",
  "p95_ms"}`.

`gatehouse audit flush`
  Imports rows that writers spilled to `<GATEHOUSE_HOME>/audit-spill/*.jsonl` while the
  database was unreachable and prints how many; safe to run again or alongside the gateway.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from .. import settings
from ..audit import default_spill_dir, import_spilled
from ..errors import ConfigError
from ..reports import USAGE_GROUPINGS, parse_since, recent_requests, usage_report
from ..results import ATTEMPT_STATUSES
from ..spend.periods import Period, days_between, local_day, parse_date
from . import spend
from .context import Context
from .output import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("requests", help="the audit rows of LLM calls, newest first")
    p.add_argument("--since", default="24h", metavar="SPAN", help="e.g. 15m, 24h, 30d, 2w")
    p.add_argument("--limit", type=int, default=50, metavar="N")
    p.add_argument("--status", choices=ATTEMPT_STATUSES)
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(handler=requests)

    p = sub.add_parser("usage", help="requests, tokens and cost per day, model, provider, …")
    p.add_argument("--since", metavar="SPAN", help="e.g. 24h, 30d, 2w (default 30d)")
    p.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day, included")
    p.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day (default today)")
    p.add_argument("--by", choices=USAGE_GROUPINGS, default="day")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(handler=usage)

    audit = sub.add_parser("audit", help="maintain the audit log")
    cmds = audit.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    p = cmds.add_parser("flush", help="import audit rows spilled while the database was down")
    p.set_defaults(handler=audit_flush)
    spend.register_audit(cmds)  # `audit prune` lives with the other spend commands


def requests(args: argparse.Namespace, ctx: Context) -> int:
    rows = recent_requests(
        ctx.engine, since=parse_since(args.since), limit=args.limit, status=args.status
    )
    if args.json:
        print_json([{**row, "created_at": row["created_at"].isoformat()} for row in rows])
        return 0
    if not rows:
        print(f"No requests in the last {args.since}.")
        return 0
    headers = ("time", "provider", "model", "status", "http", "tokens in/out", "cost", "latency")
    print_table([*headers, "request id"], [_request_cells(row) for row in rows])
    return 0


def _request_cells(row: dict[str, Any]) -> list[Any]:
    tokens = f"{_n(row['input_tokens'])}/{_n(row['output_tokens'])}"
    latency = None if row["latency_ms"] is None else f"{row['latency_ms']:.0f} ms"
    return [
        row["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
        row["provider"],
        row["model"],
        row["status"],
        row["http_status"],
        tokens,
        _money(row["cost_usd"]),
        latency,
        row["request_id"],
    ]


def usage(args: argparse.Namespace, ctx: Context) -> int:
    period, described = _usage_period(args)
    groups = usage_report(ctx.engine, period, args.by)
    if args.json:
        print_json(groups)
        return 0
    if not groups:
        print(f"No requests {described}.")
        return 0
    headers = (args.by, "requests", "attempts", "input tokens", "output tokens", "cost")
    cells = [
        [g["group"] or "(none)", g["requests"], g["attempts"], g["input_tokens"]]
        + [g["output_tokens"], _money(g["cost_usd"])]
        for g in groups
    ]
    print_table(headers, cells)
    return 0


def _usage_period(args: argparse.Namespace) -> tuple[Period, str]:
    """The range `--since` or `--from/--to` name, and how to say it in a message."""
    zone = settings.display_zone()
    now = datetime.now(UTC)
    if args.date_from is None and args.date_to is None:
        since = args.since or "30d"
        return Period(now - parse_since(since), now, zone), f"in the last {since}"
    if args.since is not None:
        raise ConfigError("give either --since or --from/--to, not both")
    if args.date_from is None:
        raise ConfigError("--to needs --from; e.g. --from 2026-11-01 --to 2026-11-30")
    first = parse_date(args.date_from, "--from")
    last = parse_date(args.date_to, "--to") if args.date_to else local_day(now, zone)
    return days_between(first, last, zone), f"from {first} to {last}"


def audit_flush(args: argparse.Namespace, ctx: Context) -> int:
    spill_dir = default_spill_dir()
    imported = import_spilled(ctx.engine, spill_dir)
    print(f"Imported {imported} spilled audit row(s) from {spill_dir}")
    return 0


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def _money(value: float | None) -> str | None:
    return None if value is None else f"${value:.6f}"
