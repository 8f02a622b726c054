"""The console's background chores: daily audit retention runs off the request path."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gatehouse_core.db import make_engine, transaction
from gatehouse_core.schema import LLMRequest, utcnow
from gatehouse_core.web.housekeeping import Housekeeping


def _row(request_id: str, age: timedelta) -> LLMRequest:
    return LLMRequest(
        request_id=request_id,
        attempt=1,
        created_at=utcnow() - age,
        provider="p",
        model="m",
        status="ok",
        final_attempt=True,
    )


def test_a_running_console_prunes_rows_past_the_retention_setting(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEHOUSE_AUDIT_RETENTION_DAYS", "2")
    engine = make_engine(sqlite_url)
    with transaction(engine) as s:
        s.add_all([_row("old", timedelta(days=5)), _row("new", timedelta(hours=1))])
    chores = Housekeeping(lambda: engine, every=0.05).start()
    try:
        kept: list[str] = []
        for _ in range(200):  # bounded: 10 s
            with engine.connect() as conn:
                kept = list(conn.scalars(select(LLMRequest.request_id)))
            if kept == ["new"]:
                break
            time.sleep(0.05)
        assert kept == ["new"]
    finally:
        chores.stop()
        engine.dispose()


def test_without_the_setting_nothing_is_pruned(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with transaction(engine) as s:
        s.add(_row("old", timedelta(days=400)))
    chores = Housekeeping(lambda: engine, every=0.01).start()
    time.sleep(0.2)  # several rounds of the chore; not a timing assertion
    chores.stop()
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(LLMRequest)) == 1
    engine.dispose()
