"""`gatehouse budgets …`: set, list, remove monthly USD budgets (every change audited).

`gatehouse budgets list --json` prints a list of `{"scope", "value", "monthly_usd", "action",
"spent_usd", "reserved_usd", "used_percent", "month_start"}`; `value` is null for the global
budget, `month_start` an ISO 8601 UTC string, `reserved_usd` every process's open reservations
with GATEHOUSE_REDIS_URL (without Redis a CLI process holds none, so it shows 0).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from .. import settings
from ..spend.budget_rules import ACTIONS, BudgetRule, BudgetStore, make_rule, month_start, usd
from ..spend.budgets import Budgets
from .context import Context
from .output import print_json, print_table


def money(value: str) -> float:
    """An argparse type: USD above 0, with or without a leading $."""
    try:
        amount = float(value.strip().lstrip("$").replace(",", ""))
    except ValueError:
        amount = -1.0
    if not 0 < amount < 1e9:
        raise argparse.ArgumentTypeError(f"{value!r} is not an amount of USD above 0, e.g. 50")
    return amount


def _add_scope(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--provider", metavar="P", help="only calls to this provider")
    group.add_argument("--source", metavar="S", help="only calls from this source (cli, console…)")
    group.add_argument("--actor", metavar="A", help="only calls made by this user")


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("budgets", help="monthly USD budgets that stop calls before they spend")
    cmds = group.add_subparsers(dest="budgets_command", metavar="ACTION", required=True)

    p = cmds.add_parser("set", help="create or replace a monthly budget (global without a scope)")
    p.add_argument("--monthly", type=money, required=True, metavar="USD")
    _add_scope(p)
    p.add_argument(
        "--action",
        choices=ACTIONS,
        default="block",
        help="block: refuse calls that would pass it (default); alert: only alert",
    )
    p.set_defaults(handler=set_budget)

    p = cmds.add_parser("list", help="budgets with month-to-date spend and open reservations")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(handler=list_budgets)

    p = cmds.add_parser("remove", help="remove a budget (the global one without a scope)")
    _add_scope(p)
    p.set_defaults(handler=remove_budget)


def _scope(args: argparse.Namespace) -> tuple[str, str | None]:
    for scope in ("provider", "source", "actor"):
        if getattr(args, scope, None) is not None:
            return scope, getattr(args, scope)
    return "global", None


def set_budget(args: argparse.Namespace, ctx: Context) -> int:
    scope, value = _scope(args)
    rule = BudgetStore(ctx.engine).set(
        make_rule(scope, value, args.monthly, args.action), actor=ctx.actor
    )
    print(f"Set {rule.label}: {usd(rule.monthly_usd)} a month, action {rule.action}")
    return 0


def remove_budget(args: argparse.Namespace, ctx: Context) -> int:
    scope, value = _scope(args)
    rule = BudgetStore(ctx.engine).remove(scope, value, actor=ctx.actor)
    print(f"Removed {rule.label}")
    return 0


def list_budgets(args: argparse.Namespace, ctx: Context) -> int:
    budgets = Budgets(ctx.engine, redis_url=settings.get("GATEHOUSE_REDIS_URL"))
    rules = budgets.rules()
    spent, held = budgets.spent(), budgets.open_reservations()
    start = month_start(datetime.now(UTC), budgets.timezone)
    rows = [_row(rule, spent.get(rule.key, 0.0), held.get(rule.key, 0.0)) for rule in rules]
    if args.json:
        print_json([{**row, "month_start": start.isoformat()} for row in rows])
        return 0
    if not rows:
        print("No budgets. Add one: gatehouse budgets set --monthly 50 [--provider NAME]")
        return 0
    print(f"Month to date since {start:%Y-%m-%d %H:%M} UTC")
    print_table(
        ["scope", "name", "monthly", "action", "spent", "reserved", "used"],
        [
            [
                r["scope"],
                r["value"],
                usd(r["monthly_usd"]),
                r["action"],
                usd(r["spent_usd"]),
                usd(r["reserved_usd"]),
                f"{r['used_percent']:.1f}%",
            ]
            for r in rows
        ],
    )
    return 0


def _row(rule: BudgetRule, spent: float, held: float) -> dict:
    return {
        **rule.to_json(),
        "spent_usd": round(spent, 6),
        "reserved_usd": round(held, 6),
        "used_percent": round(100 * spent / rule.monthly_usd, 2),
    }
