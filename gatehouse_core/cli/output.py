"""Printing helpers shared by CLI commands: JSON, aligned tables, reading a key safely."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    print("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def positive_int(value: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of at least 1")
    return number


def read_api_key(env_var: str | None, from_stdin: bool) -> str | None:
    """The key from an environment variable or stdin; never from a plain argument."""
    if env_var:
        value = os.environ.get(env_var, "")
        if not value.strip():
            raise ConfigError(f"environment variable {env_var} is not set or empty")
        return value.strip()
    if from_stdin:
        value = sys.stdin.readline()
        if not value.strip():
            raise ConfigError("no API key on standard input")
        return value.strip()
    return None


class _RefusePlainKey(argparse.Action):
    """`--api-key VALUE` is refused without echoing VALUE (argparse would print it back)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        parser.error(
            "an API key is never accepted as an argument (it would stay in the shell history); "
            "use --api-key-env VAR or --api-key-stdin"
        )


def add_key_source(parser: Any, required: bool = False) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--api-key-env", metavar="VAR", help="read the API key from this variable")
    group.add_argument(
        "--api-key-stdin", action="store_true", help="read the API key from standard input"
    )
    # Exact match for `--api-key`, so argparse does not report it as an ambiguous prefix
    # of the two options above with the key in the message.
    parser.add_argument("--api-key", nargs="?", action=_RefusePlainKey, help=argparse.SUPPRESS)
