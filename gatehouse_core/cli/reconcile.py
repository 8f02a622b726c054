"""`gatehouse reconcile [--day YYYY-MM-DD | --since 7d] [--provider NAME] [--json]`: compare our
spend with OpenRouter's ledger (a provider's management key) and correct billed generations.

`--json` prints `{"timezone", "days": [{"day", "provider", "ok", "error",
"generations_checked", "corrected_generations", "ours_usd", "openrouter_usd", "warnings"}],
"rows": [{"day", "provider", "model", "ours_usd", "openrouter_usd", "drift_usd", "drift_pct",
"ours_requests", "openrouter_requests", "corrected_generations"}]}` (README: Reconciliation).
Exit code 1 when a day could not be read (the other days are still stored).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from .. import settings
from ..spend.periods import parse_date
from ..spend.reconcile import DayResult, days_for, reconcile
from .context import Context, refuse_pasted_key
from .output import print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconcile",
        help="compare spend with OpenRouter's ledger (management key) and correct billed calls",
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument("--day", metavar="YYYY-MM-DD", help="one day (GATEHOUSE_TIMEZONE)")
    when.add_argument("--since", metavar="Nd", help="the N complete days ending yesterday, e.g. 7d")
    p.add_argument(
        "--provider",
        metavar="NAME",
        help="only this provider (default: every one with a management key)",
    )
    p.add_argument("--json", action="store_true", help="print a JSON object")
    p.set_defaults(handler=run_reconcile)


def run_reconcile(args: argparse.Namespace, ctx: Context) -> int:
    zone = settings.display_zone()
    now = datetime.now(UTC)
    day = parse_date(args.day, "--day") if args.day else None
    days = days_for(day=day, since=args.since, now=now, zone=zone)
    refuse_pasted_key(args.provider, ctx.registry, "--provider")
    providers = [args.provider] if args.provider else None
    results = reconcile(ctx.engine, ctx.registry, days, zone=zone, providers=providers, now=now)
    if args.json:
        print_json(
            {
                "timezone": zone.key,
                "days": [r.to_json() for r in results],
                "rows": [row.to_json() for r in results for row in r.rows],
            }
        )
    else:
        _print(results, zone.key)
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"error: {r.provider} {r.day}: {r.error}", file=sys.stderr)
    return 1 if failed else 0


def _print(results: list[DayResult], zone: str) -> None:
    rows = [row for r in results for row in r.rows]
    if rows:
        print_table(
            [
                "day",
                "provider",
                "model",
                "ours $",
                "openrouter $",
                "drift $",
                "drift %",
                "ours req",
                "or req",
                "corrected",
            ],
            [
                [
                    row.day.isoformat(),
                    row.provider,
                    row.model,
                    f"{row.ours_usd:.6f}",
                    f"{row.openrouter_usd:.6f}",
                    f"{row.drift_usd:+.6f}",
                    "-" if row.drift_pct is None else f"{row.drift_pct:+.2f}",
                    row.ours_requests,
                    row.openrouter_requests,
                    row.corrected_generations,
                ]
                for row in rows
            ],
        )
    ok = [r for r in results if r.ok]
    corrected = sum(r.corrected_generations for r in ok)
    print(
        f"\nReconciled {len(ok)} day(s) × provider ({zone}); {corrected} generation(s) "
        "corrected to OpenRouter's cost."
    )
    for r in ok:
        if not r.generations_checked:
            print(f"note: {r.provider} {r.day}: older than 31 days, generations not checked")
        for warning in r.warnings:
            print(f"warning: {r.provider} {r.day}: {warning}", file=sys.stderr)
