"""`gatehouse rollups rebuild`, `gatehouse demo-data`, `gatehouse audit prune`.

`gatehouse rollups rebuild [--since 30d] [--json]`
  Recomputes the hourly rollup from the raw audit rows, one transaction per UTC day, a progress
  line per day on stderr. `--json` prints `[{day, rows, buckets}]`.

`gatehouse demo-data [--days 30] [--rows N] [--seed S] [--workers N] [--json]`,
`gatehouse demo-data --delete`
  Writes N realistic demo rows (source 'demo') over the last days (from N processes with
  `--workers`), or deletes them and their rollup rows. `--json` prints `{rows, calls, seed, start, end}` / `{rows, buckets}`.

`gatehouse audit prune --older-than 90d [--json]`
  Deletes raw audit rows from UTC days before that span, in batches; rollups stay.
  `--json` prints `{cutoff, deleted}`.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

from ..errors import ConfigError
from ..reports import parse_since
from ..spend.demo import DemoProgress, delete_demo_data, write_demo_data
from ..spend.retention import PruneProgress, prune
from ..spend.rollups import DayRebuilt, rebuild
from .context import Context
from .output import positive_int, print_json


def register(sub: argparse._SubParsersAction) -> None:
    rollups = sub.add_parser("rollups", help="maintain the hourly usage rollup")
    cmds = rollups.add_subparsers(dest="rollups_command", metavar="ACTION", required=True)
    p = cmds.add_parser("rebuild", help="recompute the hourly rollup from the raw audit rows")
    p.add_argument("--since", default="30d", metavar="SPAN", help="days to rebuild: 30d, 2w …")
    p.add_argument("--json", action="store_true", help="print a JSON list of the days rebuilt")
    p.set_defaults(handler=rollups_rebuild)

    p = sub.add_parser("demo-data", help="write (or --delete) realistic demo history")
    # Defaults are applied in demo_data(), so --delete can tell options it would ignore.
    p.add_argument("--days", type=positive_int, metavar="N", help="days of history (30)")
    p.add_argument("--rows", type=positive_int, metavar="N", help="audit rows (100000)")
    p.add_argument("--seed", type=int, metavar="S", help="same seed, same history shape")
    p.add_argument("--workers", type=positive_int, metavar="N", help="write from N processes (1)")
    p.add_argument("--delete", action="store_true", help="remove the demo rows and rollups")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=demo_data)


def register_audit(cmds: argparse._SubParsersAction) -> None:
    """`audit prune`, added to the `audit` group that cli/reports.py defines."""
    p = cmds.add_parser("prune", help="delete old raw audit rows (the hourly rollups stay)")
    p.add_argument("--older-than", required=True, metavar="SPAN", help="e.g. 90d, 12w")
    p.add_argument("--json", action="store_true", help="print {cutoff, deleted}")
    p.set_defaults(handler=audit_prune)


def _note(line: str) -> None:
    """Progress goes to stderr so `--json` output on stdout stays parseable."""
    print(line, file=sys.stderr, flush=True)


def rollups_rebuild(args: argparse.Namespace, ctx: Context) -> int:
    def day_done(day: DayRebuilt) -> None:
        _note(f"{day.day:%Y-%m-%d}: {day.rows} rows → {day.buckets} hourly buckets")

    days = rebuild(ctx.engine, since=parse_since(args.since), progress=day_done)
    if args.json:
        print_json([d.to_json() for d in days])
    elif not days:
        print("No audit rows in that span; nothing to rebuild.")
    else:
        rows = sum(d.rows for d in days)
        print(f"Rebuilt {len(days)} day(s) of rollups from {rows} audit rows.")
    return 0


def audit_prune(args: argparse.Namespace, ctx: Context) -> int:
    older_than = parse_since(args.older_than)
    if older_than < timedelta(days=1):
        raise ConfigError(
            f"--older-than {args.older_than} is under a day; prune keeps whole days, give e.g. 90d"
        )

    meter = _Meter("deleted")

    def batch_done(step: PruneProgress) -> None:
        meter.show(step.deleted, step.total)

    result = prune(ctx.engine, older_than=older_than, progress=batch_done)
    if args.json:
        print_json(result.to_json())
    else:
        print(
            f"Deleted {result.deleted} audit row(s) created before "
            f"{result.cutoff:%Y-%m-%d %H:%M} UTC; hourly rollups kept."
        )
    return 0


class _Meter:
    """A progress line about every 5% (and the rate), for long demo writes and deletes."""

    def __init__(self, verb: str):
        self.verb = verb
        self.started = time.monotonic()
        self.shown = -1

    def __call__(self, step: DemoProgress) -> None:
        self.show(step.written, step.total)

    def show(self, done: int, total: int) -> None:
        percent = 100 * done // max(total, 1)
        if percent // 5 == self.shown // 5 and done < total:
            return
        self.shown = percent
        rate = done / max(time.monotonic() - self.started, 1e-6)
        _note(f"{self.verb} {done}/{total} rows ({percent}%), {rate:,.0f} rows/s")


def demo_data(args: argparse.Namespace, ctx: Context) -> int:
    options = {"--days": args.days, "--rows": args.rows, "--seed": args.seed}
    options["--workers"] = args.workers
    given = [name for name, value in options.items() if value is not None]
    if args.delete and given:
        raise ConfigError(
            f"--delete removes all demo data and takes no {', '.join(given)}; drop them"
        )
    if args.delete:
        deleted = delete_demo_data(ctx.engine, progress=_Meter("deleted"))
        if args.json:
            print_json(deleted.to_json())
        else:
            print(f"Deleted {deleted.rows} demo row(s) and {deleted.buckets} rollup row(s).")
        return 0
    result = write_demo_data(
        ctx.engine,
        days=args.days or 30,
        rows=args.rows or 100_000,
        seed=args.seed,
        workers=args.workers or 1,
        progress=_Meter("wrote"),
    )
    if args.json:
        print_json(result.to_json())
    else:
        print(
            f"Wrote {result.rows} demo audit rows ({result.calls} calls) from "
            f"{result.start:%Y-%m-%d} to {result.end:%Y-%m-%d %H:%M} UTC, seed {result.seed}; "
            "remove them with `gatehouse demo-data --delete`."
        )
    return 0
