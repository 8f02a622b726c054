"""`gatehouse tokens create|list|revoke`: API tokens for the HTTP API (shown once, stored hashed)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from ..auth import ROLES
from ..schema import utcnow
from ..tokens import TokenInfo, TokenStore, TokenUsage, display, month_to_date_usage
from .context import Context
from .output import positive_int, print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    group = sub.add_parser("tokens", help="manage API tokens for the HTTP API")
    cmds = group.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)

    p = cmds.add_parser("create", help="create a token and print it once")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--monthly-usd", type=_usd, metavar="X", help="monthly budget in USD")
    p.add_argument("--rpm", type=positive_int, metavar="N", help="requests per minute")
    p.add_argument(
        "--models",
        metavar="PATTERN[,PATTERN…]",
        help="allowed model ids, e.g. openai/*,anthropic/*",
    )
    p.add_argument("--expires", metavar="SPAN", help="lifetime, e.g. 30d, 12h, 2w")
    p.add_argument("--json", action="store_true", help="print a JSON object (with the token)")
    p.set_defaults(handler=create_token)

    p = cmds.add_parser("list", help="list tokens (never the token itself)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(handler=list_tokens)

    p = cmds.add_parser("revoke", help="revoke a token at once")
    p.add_argument("name")
    p.set_defaults(handler=revoke_token)


def _usd(value: str) -> float:
    try:
        amount = float(value)
    except ValueError:
        amount = -1.0
    if not amount > 0 or amount == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive amount of USD")
    return amount


def create_token(args: argparse.Namespace, ctx: Context) -> int:
    info, token = TokenStore(ctx.engine).create(
        args.name,
        args.role,
        actor=ctx.actor,
        monthly_usd=args.monthly_usd,
        rpm=args.rpm,
        models=args.models,
        expires=args.expires,
    )
    if args.json:
        print_json({**info.to_json(), "token": token})
        return 0
    print(token)
    print(
        f"Created API token {info.name} ({info.role}). It is shown only now: store it in your "
        "secret manager.",
        file=sys.stderr,
    )
    return 0


def list_tokens(args: argparse.Namespace, ctx: Context) -> int:
    tokens = TokenStore(ctx.engine).list()
    now = utcnow()
    usage = month_to_date_usage(ctx.engine, now)
    if args.json:
        print_json([_with_usage(t.to_json(now), usage.get(t.name)) for t in tokens])
        return 0
    if not tokens:
        print("No API tokens yet. Create one: gatehouse tokens create NAME --role operator")
        return 0
    print_table(
        [
            "name",
            "role",
            "token",
            "status",
            "monthly $",
            "spent $",
            "calls",
            "rpm",
            "models",
            "expires",
            "last use",
        ],
        [_row(t, now, usage.get(t.name) or TokenUsage()) for t in tokens],
    )
    return 0


def _with_usage(data: dict[str, object], usage: TokenUsage | None) -> dict[str, object]:
    usage = usage or TokenUsage()
    return {**data, "month_calls": usage.calls, "month_cost_usd": usage.cost_usd}


def _row(t: TokenInfo, now: datetime, usage: TokenUsage) -> list[object]:
    return [
        t.name,
        t.role,
        display(t.prefix),
        t.status(now),
        f"{t.monthly_usd:g}" if t.monthly_usd is not None else None,
        f"{usage.cost_usd:.4f}",
        usage.calls,
        t.rpm,
        ",".join(t.models) if t.models is not None else "any",
        t.expires_at.strftime("%Y-%m-%d %H:%M") if t.expires_at else None,
        t.last_used_at.strftime("%Y-%m-%d %H:%M") if t.last_used_at else None,
    ]


def revoke_token(args: argparse.Namespace, ctx: Context) -> int:
    info = TokenStore(ctx.engine).revoke(args.name, actor=ctx.actor)
    print(f"Revoked API token {info.name}")
    return 0
