"""`gatehouse requests`, `gatehouse usage`, `gatehouse audit flush` through the real entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gatehouse_core.audit import normalize_row
from gatehouse_core.db import make_engine
from gatehouse_core.reports import USAGE_EXTRA_KEYS, USAGE_KEYS
from gatehouse_core.schema import LLMRequest
from tests.core.cli import run
from tests.spend_rows import request_row, store

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
            "final_attempt": True,
            "fallback": False,
            **fields,
        }
    )


@pytest.fixture
def engine() -> Engine:
    """The database the CLI uses (GATEHOUSE_DATABASE_URL), with three calls in it and their
    hourly rollup."""
    engine = make_engine()
    rows = [
        audit_row(
            "call-1", 1, status="error", http_status=503, input_tokens=None, cost_usd=None,
            final_attempt=False,
        ),
        audit_row("call-1", 2, provider="beta", created_at=NOW - timedelta(minutes=9),
                  fallback=True),
        audit_row("call-2", 1, created_at=NOW - timedelta(minutes=1)),
        audit_row("call-old", 1, created_at=NOW - timedelta(days=3)),
    ]  # fmt: skip
    store(engine, rows)
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
    assert all(tuple(g) == USAGE_KEYS + USAGE_EXTRA_KEYS for g in groups)
    # call-1 failed on alpha and beta answered it: one request, in beta's group.
    assert [{k: g[k] for k in USAGE_KEYS} for g in groups] == [
        {
            "group": "alpha",
            "requests": 1,
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
    assert (groups[1]["fallbacks"], groups[1]["errors"], groups[1]["p50_ms"]) == (1, 0, 875.0)


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


def test_usage_by_status_source_and_workflow(engine, capsys) -> None:
    _, out, _ = run(capsys, "usage", "--by", "status", "--json")
    assert {g["group"]: (g["requests"], g["attempts"]) for g in json.loads(out)} == {
        "ok": (3, 3),
        "error": (0, 1),
    }
    _, out, _ = run(capsys, "usage", "--by", "workflow", "--json")
    assert [(g["group"], g["requests"], g["attempts"]) for g in json.loads(out)] == [("", 3, 4)]
    code, out, _ = run(capsys, "usage", "--by", "source")
    assert code == 0 and out.splitlines()[1].split()[:3] == ["(none)", "3", "4"]


def test_usage_dates_are_whole_days_of_the_display_time_zone(capsys, monkeypatch) -> None:
    late = datetime(2026, 11, 10, 23, 30, tzinfo=UTC)  # 11 November 00:30 in Berlin
    store(make_engine(), [request_row("late", late, cost_usd=0.5)])
    args = ("usage", "--from", "2026-11-11", "--to", "2026-11-11")
    code, out, _ = run(capsys, *args)
    assert (code, out.strip()) == (0, "No requests from 2026-11-11 to 2026-11-11.")
    monkeypatch.setenv("GATEHOUSE_TIMEZONE", "Europe/Berlin")
    _, out, _ = run(capsys, *args, "--json")
    ((day),) = json.loads(out)
    assert (day["group"], day["requests"], day["cost_usd"]) == ("2026-11-11", 1, 0.5)
    _, out, _ = run(capsys, "usage", "--from", "2026-11-01", "--to", "2026-11-30", "--json")
    assert [g["group"] for g in json.loads(out)] == ["2026-11-11"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--since", "7d", "--from", "2026-11-01"), "give either --since or --from/--to"),
        (("--to", "2026-11-01"), "--to needs --from"),
        (("--from", "1 Nov"), "--from '1 Nov' is not a date; use YYYY-MM-DD"),
        (
            ("--from", "2026-11-02", "--to", "2026-11-01"),
            "the last day (2026-11-01) is before the first day (2026-11-02)",
        ),
    ],
)
def test_usage_range_mistakes_are_one_line_errors(engine, capsys, argv, message) -> None:
    code, out, err = run(capsys, "usage", *argv)
    assert code == 1 and out == ""
    assert err.startswith(f"error: {message}") and len(err.strip().splitlines()) == 1


def test_an_unknown_time_zone_is_named_in_the_error(engine, capsys, monkeypatch) -> None:
    monkeypatch.setenv("GATEHOUSE_TIMEZONE", "Mars/Olympus")
    code, _, err = run(capsys, "usage")
    assert code == 1
    assert err.strip() == (
        "error: GATEHOUSE_TIMEZONE='Mars/Olympus' is not an IANA time zone; use a name such as "
        "UTC, Europe/Berlin or America/New_York"
    )
