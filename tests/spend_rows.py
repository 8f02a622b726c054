"""Hand-made spend data for query, CLI and page tests: audit rows and their hourly rollup.

`rollup(rows)` sums audit rows into `llm_usage_hourly` rows the plain way (hour floor, final
attempts as calls), `rollup(rows, by_workflow=True)` into `llm_usage_hourly_workflow` rows; the
tests insert the three tables directly, so they do not depend on the audit
writer's rollup maintenance (tested in test_spend_rollups.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from gatehouse_core.audit import normalize_row
from gatehouse_core.schema import LLMRequest, UsageHourly, UsageHourlyWorkflow
from gatehouse_core.spend.buckets import LATENCY_COLUMNS, TTFT_COLUMNS, bucket_index

KEY = ("bucket_start", "provider", "model", "source", "actor", "status")


def request_row(request_id: str, at: datetime, attempt: int = 1, **fields: Any) -> dict[str, Any]:
    """One audit row; a final, successful attempt unless told otherwise."""
    base: dict[str, Any] = {
        "request_id": request_id,
        "attempt": attempt,
        "created_at": at,
        "provider": "alpha",
        "model": "m/one",
        "status": "ok",
        "http_status": 200,
        "input_tokens": 100,
        "output_tokens": 10,
        "cached_tokens": 0,
        "cost_usd": 0.5,
        "cost_source": "provider",
        "latency_ms": 400.0,
        "final_attempt": True,
        "fallback": False,
    }
    return normalize_row({**base, **fields})


def rollup(rows: Iterable[dict[str, Any]], *, by_workflow: bool = False) -> list[dict[str, Any]]:
    buckets: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        hour = row["created_at"].replace(minute=0, second=0, microsecond=0)
        key = (hour, row["provider"], row["model"], row["source"] or "", row["actor"] or "")
        key += (row["status"],)
        if by_workflow:
            key += (row["workflow_id"] or "",)
        b = buckets.setdefault(key, _empty(key))
        final = bool(row["final_attempt"])
        b["calls"] += final
        b["attempts"] += 1
        b["fallback_calls"] += final and bool(row["fallback"])
        for name in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens"):
            b[name] += row[name] or 0
        cost = row["cost_usd"] or 0.0
        b["cost_usd"] += cost
        b["cost_reported_usd"] += cost if row["cost_source"] == "provider" else 0.0
        b["cost_estimated_usd"] += cost if row["cost_source"] == "estimated" else 0.0
        for kind, columns in (("latency", LATENCY_COLUMNS), ("ttft", TTFT_COLUMNS)):
            value = row[f"{kind}_ms"]
            if value is not None:
                b[f"{kind}_ms_sum"] += value
                b[f"{kind}_count"] += 1
                b[columns[bucket_index(value)]] += 1
    return list(buckets.values())


def _empty(key: tuple[Any, ...]) -> dict[str, Any]:
    row: dict[str, Any] = dict(zip((*KEY, "workflow_id")[: len(key)], key, strict=True))
    for column in UsageHourly.__table__.columns:
        if column.name not in row and column.name != "id":
            row[column.name] = 0
    for name in ("cost_usd", "cost_reported_usd", "cost_estimated_usd"):
        row[name] = 0.0
    row["latency_ms_sum"] = row["ttft_ms_sum"] = 0.0
    return row


def store(engine: Engine, rows: list[dict[str, Any]], *, with_rollup: bool = True) -> None:
    """Insert audit rows and (by default) their rollup."""
    with engine.begin() as conn:
        if rows:
            conn.execute(insert(LLMRequest.__table__), rows)
        if with_rollup and rows:
            conn.execute(insert(UsageHourly.__table__), rollup(rows))
            conn.execute(insert(UsageHourlyWorkflow.__table__), rollup(rows, by_workflow=True))


def known_dataset(now: datetime) -> list[dict[str, Any]]:
    """A small history relative to `now` (UTC days): today, two and three days ago.

    Five calls in the last 7 days: one fallback (alpha failed, beta answered), one error;
    m/one costs 2.75 over four calls, m/two 1.0 over one."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = midnight + (now - midnight) / 2
    d2 = midnight - timedelta(days=2) + timedelta(hours=10)
    d3 = midnight - timedelta(days=3) + timedelta(hours=10)
    return [
        request_row("r-today", today, cost_usd=0.5, latency_ms=400.0),
        request_row("r-a", d2, 1, status="error", http_status=503, final_attempt=False,
                    input_tokens=None, output_tokens=None, cost_usd=None, latency_ms=30.0,
                    error_type="upstream_error", error_message="overloaded"),
        request_row("r-a", d2 + timedelta(seconds=1), 2, provider="beta", model="m/two",
                    fallback=True, cost_usd=1.0, input_tokens=300, output_tokens=30,
                    latency_ms=900.0),
        request_row("r-b", d2, cost_usd=0.25, source="api", actor="svc", workflow_id="wf-1",
                    latency_ms=120.0),
        request_row("r-c", d3, cost_usd=2.0, input_tokens=1000, output_tokens=100,
                    latency_ms=2500.0),
        request_row("r-d", d3, status="error", http_status=500, input_tokens=None,
                    output_tokens=None, cost_usd=None, latency_ms=80.0),
    ]  # fmt: skip
