"""The console's background chores: daily audit retention runs off the request path."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from gatehouse_core.audit import _insert_batch, normalize_row
from gatehouse_core.crypto import SecretBox
from gatehouse_core.db import make_engine, transaction
from gatehouse_core.providers import ProviderConfig
from gatehouse_core.registry import Registry
from gatehouse_core.schema import LLMRequest, Reconciliation, utcnow
from gatehouse_core.web.housekeeping import Housekeeping
from tests.fakes.openrouter import DEFAULT_KEY, FakeOpenRouter


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


MGMT_KEY = "sk-or-v1-management-key-00005e7c"


def _provider_with_management_key(engine: Engine, fake: FakeOpenRouter, key: str) -> Registry:
    registry = Registry(engine, SecretBox.from_env(), ttl=0)
    registry.add(
        ProviderConfig(name="primary", base_url=fake.base_url, default_model="test/m"),
        actor="test",
        api_key=DEFAULT_KEY,
    )
    registry.set_management_key("primary", key, actor="test")
    return registry


def test_a_running_console_reconciles_yesterday_when_a_management_key_exists(
    sqlite_url: str, fake_openrouter: FakeOpenRouter
) -> None:
    engine = make_engine(sqlite_url)
    _provider_with_management_key(engine, fake_openrouter, MGMT_KEY)
    fake_openrouter.add_management_key(MGMT_KEY)
    yesterday = utcnow() - timedelta(days=1)
    timed_out = {"request_id": "billed", "attempt": 1, "created_at": yesterday, "model": "m"}
    timed_out |= {"provider": "primary", "status": "error", "generation_id": "gen-1"}
    _insert_batch(engine, [normalize_row(timed_out | {"final_attempt": True})], dedup=False)
    fake_openrouter.bill("gen-1", "m", 0.25, yesterday)
    chores = Housekeeping(lambda: engine, every=0.05).start()  # builds its own registry
    try:
        found: list[tuple] = []
        for _ in range(200):  # bounded: 10 s
            with engine.connect() as conn:
                found = list(conn.execute(select(Reconciliation.model, Reconciliation.day)))
            if found:
                break
            time.sleep(0.05)
        assert found == [("m", yesterday.date())]
        with engine.connect() as conn:
            assert conn.scalar(select(LLMRequest.cost_source)) == "reconciled"
    finally:
        chores.stop()
        engine.dispose()


def test_a_refused_management_key_is_a_warning_and_the_chores_go_on(
    sqlite_url: str,
    fake_openrouter: FakeOpenRouter,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("GATEHOUSE_AUDIT_RETENTION_DAYS", "2")
    engine = make_engine(sqlite_url)
    _provider_with_management_key(engine, fake_openrouter, MGMT_KEY)  # unknown to the fake
    with transaction(engine) as s:
        s.add(_row("old", timedelta(days=5)))
    chores = Housekeeping(lambda: engine, every=0.05).start()
    try:
        for _ in range(200):  # bounded: 10 s
            if "reconciliation skipped" in caplog.text:
                break
            time.sleep(0.05)
        assert "refused the management key of primary (401" in caplog.text
        assert [r.levelname for r in caplog.records if "reconciliation" in r.message] == ["WARNING"]
        assert MGMT_KEY not in caplog.text
        assert chores._thread.is_alive()
        with engine.connect() as conn:  # retention still ran beside it
            assert conn.scalar(select(func.count()).select_from(LLMRequest)) == 0
    finally:
        chores.stop()
        engine.dispose()
