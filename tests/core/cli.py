"""The real CLI entry point run in-process, shared by the tests/core/test_cli_*.py files."""

from __future__ import annotations

import io
import sys

import pytest

from gatehouse_core.cli import main


def run(
    capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None
) -> tuple[int, str, str]:
    """`gatehouse ARGV` → (exit code, stdout, stderr); `stdin` feeds --api-key-stdin.

    tests/core/conftest.py puts the real sys.stdin back after every test.
    """
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None) -> str:
    """stdout of a command that must succeed."""
    code, out, err = run(capsys, *argv, stdin=stdin)
    assert code == 0, err
    return out
