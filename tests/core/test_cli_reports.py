"""`gatehouse requests`, `gatehouse usage`, `gatehouse audit flush` through the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert

from gatehouse_core.audit import normalize_row
from gatehouse_core.db import make_engine
from gatehouse_core.reports import USAGE_KEYS
from gatehouse_core.schema import LLMRequest
from tests.core.cli import run

T = LLMRequest.__table__
REPO_ROOT = Path(__file__).resolve().parents[2]
NOW = datetime.now(UTC)


def audit_row(request_id: str, attempt: int = 1, **fields) -> dict:
    return normalize_row(
        {
            "request_id": request_id,
            "attempt": attempt,
            "created_at": NOW - timedelta(minutes=10),
            "provider": "alpha",
            "model": "m/one",
            "status": "ok",
            "http_status": 200,
            "input_tokens": 12,
            "output_tokens": 3,
            "cost_usd": 0.25,
            "latency_ms": 812.4,
            **fields,
        }
    )


@pytest.fixture
def engine() -> Engine:
    """The database the CLI uses (GATEHOUSE_DATABASE_URL), with three calls in it."""
    engine = make_engine()
    rows = [
        audit_row("call-1", 1, status="error", http_status=503, input_tokens=None, cost_usd=None),
        audit_row("call-1", 2, provider="beta", created_at=NOW - timedelta(minutes=9)),
        audit_row("call-2", 1, created_at=NOW - timedelta(minutes=1)),
        audit_row("call-old", 1, created_at=NOW - timedelta(days=3)),
    ]
    with engine.begin() as conn:
        conn.execute(insert(T), rows)
    return engine


def test_requests_json_lists_rows_newest_first_keyed_by_column(engine, capsys) -> None:
    code, out, _ = run(capsys, "requests", "--json")
    rows = json.loads(out)
    assert code == 0
    assert [(r["request_id"], r["attempt"]) for r in rows] == [
        ("call-2", 1),
        ("call-1", 2),
        ("call-1", 1),
    ]
    assert list(rows[0]) == [c.name for c in T.columns]
    assert datetime.fromisoformat(rows[0]["created_at"]).tzinfo is not None


def test_requests_filters_by_status_limit_and_since(engine, capsys) -> None:
    _, out, _ = run(capsys, "requests", "--json", "--status", "error")
    assert [r["request_id"] for r in json.loads(out)] == ["call-1"]
    _, out, _ = run(capsys, "requests", "--json", "--limit", "1")
    assert [r["request_id"] for r in json.loads(out)] == ["call-2"]
    _, out, _ = run(capsys, "requests", "--json", "--since", "7d")
    assert len(json.loads(out)) == 4


def test_requests_table_shows_one_line_per_attempt(engine, capsys) -> None:
    code, out, _ = run(capsys, "requests")
    header, *lines = out.splitlines()
    assert code == 0
    assert header.split()[:6] == ["TIME", "PROVIDER", "MODEL", "STATUS", "HTTP", "TOKENS"]
    assert "REQUEST ID" in header
    assert len(lines) == 3
    assert "12/3" in lines[0] and "$0.250000" in lines[0] and "812 ms" in lines[0]
    assert "503" in lines[2] and "-/3" in lines[2]


def test_requests_with_nothing_in_range_says_so(engine, capsys) -> None:
    code, out, _ = run(capsys, "requests", "--since", "30m", "--status", "rejected")
    assert (code, out.strip()) == (0, "No requests in the last 30m.")


def test_bad_since_is_a_one_line_error(engine, capsys) -> None:
    code, out, err = run(capsys, "requests", "--since", "yesterday")
    assert code == 1 and out == ""
    assert err.strip() == (
        "error: 'yesterday' is not a time span; use a whole number and a unit: 15m, 24h, 30d or 2w"
    )


def test_usage_json_has_the_documented_keys_and_sums(engine, capsys) -> None:
    code, out, _ = run(capsys, "usage", "--by", "provider", "--since", "1d", "--json")
    groups = json.loads(out)
    assert code == 0
    assert all(tuple(g) == USAGE_KEYS for g in groups)
    assert groups == [
        {
            "group": "alpha",
            "requests": 2,
            "attempts": 2,
            "input_tokens": 12,
            "output_tokens": 6,
            "cost_usd": 0.25,
        },
        {
            "group": "beta",
            "requests": 1,
            "attempts": 1,
            "input_tokens": 12,
            "output_tokens": 3,
            "cost_usd": 0.25,
        },
    ]


def test_usage_table_by_day(engine, capsys) -> None:
    code, out, _ = run(capsys, "usage")
    header, *lines = out.splitlines()
    assert code == 0
    assert header.split()[:3] == ["DAY", "REQUESTS", "ATTEMPTS"]
    days = {(NOW - timedelta(minutes=m)).date() for m in (3 * 24 * 60, 10, 9, 1)}
    assert len(lines) == len(days)
    assert lines[-1].split()[0] == (NOW - timedelta(minutes=1)).date().isoformat()


def test_audit_flush_imports_spilled_rows_once(engine, capsys, tmp_path: Path) -> None:
    spill = tmp_path / ".gatehouse" / "audit-spill"
    spill.mkdir(parents=True)
    line = json.dumps(audit_row("spilled-1"), default=str)
    (spill / "4242-1.jsonl").write_text(line + "\n")

    code, out, _ = run(capsys, "audit", "flush")
    assert code == 0 and out.startswith("Imported 1 spilled audit row(s)")
    code, out, _ = run(capsys, "audit", "flush")
    assert code == 0 and out.startswith("Imported 0 ")
    _, out, _ = run(capsys, "requests", "--json")
    assert [r["request_id"] for r in json.loads(out)].count("spilled-1") == 1


def test_usage_json_in_a_subprocess(engine, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gatehouse_core", "usage", "--by", "model", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr
    (group,) = json.loads(done.stdout)
    assert (group["group"], group["requests"], group["attempts"]) == ("m/one", 3, 4)
