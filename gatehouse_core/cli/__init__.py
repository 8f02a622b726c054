"""The `gatehouse` command: parse arguments, call gatehouse_core, print.

Each command group lives in its own module with a `register(subparsers)` function; handlers
take `(args, ctx)` and return an exit code. Errors GateHouse raises on purpose become one
line on stderr and exit code 1; nothing prints a traceback unless GATEHOUSE_LOG_LEVEL=debug.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from ..errors import GatehouseError
from ..telemetry import configure_logging, level_from_env, scrub
from . import (
    admin,
    alerts,
    budgets,
    chat,
    models,
    providers,
    reconcile,
    reports,
    serve,
    spend,
    tokens,
    users,
)
from .context import Context

GROUPS = (
    admin,
    providers,
    chat,
    users,
    models,
    reports,
    spend,
    budgets,
    alerts,
    reconcile,
    tokens,
    serve,
)


class _Parser(argparse.ArgumentParser):
    """argparse echoes stray arguments in its errors; a key pasted by mistake must not be."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {scrub(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gatehouse",
        description="GateHouse: provider configs, keys and LLM traffic through OpenRouter.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = level_from_env() == logging.DEBUG
    # Humans read CLI output: the gateway's info lines appear only when asked for.
    if _log_level_set():
        configure_logging(level_from_env())
    else:
        configure_logging(logging.WARNING, plain=True)
    ctx = Context()
    try:
        return int(args.handler(args, ctx) or 0)
    except GatehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # the edge: never a traceback for the operator
        if debug:
            traceback.print_exc()
        print(
            f"error: unexpected {type(exc).__name__}: {exc} "
            "(run with GATEHOUSE_LOG_LEVEL=debug for details)",
            file=sys.stderr,
        )
        return 1
    finally:
        ctx.close()


def _log_level_set() -> bool:
    import os

    return bool(os.environ.get("GATEHOUSE_LOG_LEVEL", "").strip())
