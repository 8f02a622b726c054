"""`gatehouse migrate`, `gatehouse secrets …`, `gatehouse history`."""

from __future__ import annotations

import argparse

from .. import settings
from ..crypto import generate_key
from ..db import current_revision, describe_url, make_engine, run_migrations
from .context import Context
from .output import positive_int, print_json, print_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.set_defaults(handler=migrate)

    secrets = sub.add_parser("secrets", help="manage the encryption of stored API keys")
    cmds = secrets.add_subparsers(dest="secrets_command", metavar="ACTION", required=True)
    p = cmds.add_parser("generate-key", help="print a new Fernet key for GATEHOUSE_SECRETS_KEY")
    p.set_defaults(handler=secrets_generate_key)
    p = cmds.add_parser("rotate", help="re-encrypt every stored key under the first key")
    p.set_defaults(handler=secrets_rotate)

    p = sub.add_parser("history", help="the settings audit: who changed what, newest first")
    p.add_argument("--limit", type=positive_int, default=50, metavar="N", help="newest N (50)")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.set_defaults(handler=history)


def migrate(args: argparse.Namespace, ctx: Context) -> int:
    engine = make_engine(settings.get("GATEHOUSE_DATABASE_URL"), migrate=False)
    ctx.on_close(engine.dispose)
    applied = run_migrations(engine)
    state = "upgraded" if applied else "already up to date"
    print(
        f"Database {describe_url(str(engine.url))} {state} at revision {current_revision(engine)}"
    )
    return 0


def secrets_generate_key(args: argparse.Namespace, ctx: Context) -> int:
    print(generate_key())
    return 0


def secrets_rotate(args: argparse.Namespace, ctx: Context) -> int:
    report = ctx.registry.rotate_secrets(actor=ctx.actor)
    print(
        f"Re-encrypted {report.total} stored key(s) under the first key "
        f"({report.rotated} were under an older key)"
    )
    return 0


def history(args: argparse.Namespace, ctx: Context) -> int:
    entries = ctx.registry.history(limit=args.limit)
    if args.json:
        print_json([e.to_json() for e in entries])
        return 0
    if not entries:
        print("No changes recorded yet.")
        return 0
    print_table(
        ["when", "actor", "action", "target"],
        [
            [e.created_at.strftime("%Y-%m-%d %H:%M:%S"), e.actor, e.action, e.target]
            for e in entries
        ],
    )
    return 0
