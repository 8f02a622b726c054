"""Reconciliation with OpenRouter's ledger (the fake's analytics endpoint over a socket), on
SQLite and PostgreSQL: drift figures on a hand-made data set, billed generations we hold as
failed or $0 corrected in the raw rows and the rollup alike, re-runs replacing a day, and the
management key's errors and secrecy."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, MetaData, select

from gatehouse_core.audit import _insert_batch, normalize_row
from gatehouse_core.crypto import SecretBox
from gatehouse_core.errors import ConfigError, ValidationError
from gatehouse_core.providers import ProviderConfig
from gatehouse_core.registry import Registry
from gatehouse_core.schema import LLMRequest, Reconciliation, SettingsAudit
from gatehouse_core.spend.reconcile import (
    LedgerError,
    days_for,
    reconcile,
    reconcile_yesterday_if_due,
)
from tests.core.spend_data import assert_rollups_match_raw
from tests.fakes.openrouter import DEFAULT_KEY, Error, FakeOpenRouter

MGMT_KEY = "sk-or-v1-management-key-00005e7c"
DAY = date(2026, 11, 29)
NOW = datetime(2026, 11, 30, 12, 30, tzinfo=UTC)
MINI, SONNET, GEMINI = "openai/gpt-4o-mini", "anthropic/claude-sonnet-4", "google/gemini-2.5-flash"


def at(hour: int, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, 15, tzinfo=UTC)


@pytest.fixture
def registry(engine: Engine, fake_openrouter: FakeOpenRouter) -> Registry:
    registry = Registry(engine, SecretBox.from_env(), ttl=0)
    config = ProviderConfig(name="primary", base_url=fake_openrouter.base_url, default_model=MINI)
    registry.add(config, actor="test", api_key=DEFAULT_KEY)
    return registry


@pytest.fixture
def ledger(registry: Registry, fake_openrouter: FakeOpenRouter) -> FakeOpenRouter:
    registry.set_management_key("primary", MGMT_KEY, actor="test")
    fake_openrouter.add_management_key(MGMT_KEY)
    return fake_openrouter


def row(request_id: str, model: str, when: datetime, status: str = "ok", **fields: Any) -> dict:
    base = {
        "request_id": request_id,
        "attempt": 1,
        "created_at": when,
        "provider": "primary",
        "model": model,
        "status": status,
        "final_attempt": True,
        "fallback": False,
        "source": "library",
        "input_tokens": 10,
        "output_tokens": 5,
    }
    return normalize_row(base | fields)


def insert(engine: Engine, rows: list[dict]) -> None:
    inserted, refused = _insert_batch(engine, rows, dedup=False)
    assert (inserted, refused) == (len(rows), [])


@pytest.fixture
def data_set(engine: Engine, ledger: FakeOpenRouter) -> None:
    """Our rows and OpenRouter's bill for DAY (and one row the day before)."""
    insert(
        engine,
        [
            row("r1", MINI, at(10), generation_id="g1", cost_usd=0.10, cost_source="provider"),
            row("r2", MINI, at(11), "error", generation_id="g2", error_type="timeout"),
            row("r3", MINI, at(12), "incomplete", generation_id="g3")
            | {"cost_usd": 0.01, "cost_source": "estimated"},
            row("r4", MINI, at(13), "rejected", error_type="budget"),
            row("r5", SONNET, at(14), generation_id="g5", cost_usd=0.20, cost_source="provider"),
            row("d1", MINI, at(15), source="demo", cost_usd=5.0, cost_source="provider"),
            row("old", MINI, at(9, DAY - timedelta(days=1)), generation_id="g0", cost_usd=0.4),
        ],
    )
    for generation, model, cost, when in (
        ("g1", MINI, 0.10, at(10)),
        ("g2", MINI, 0.05, at(11)),
        ("g3", MINI, 0.03, at(12)),
        ("g5", SONNET + "-20250514", 0.22, at(14)),  # the permaslug, as analytics reports it
        ("g9", GEMINI, 0.07, at(16)),
        ("g0", MINI, 0.4, at(9, DAY - timedelta(days=1))),
    ):
        ledger.bill(generation, model, cost, when)


def by_model(results: list) -> dict[str, dict]:
    return {r.model: r.to_json() for result in results for r in result.rows}


def stored(engine: Engine) -> dict[str, tuple]:
    t = Reconciliation.__table__
    with engine.connect() as conn:
        found = conn.execute(select(t).where(t.c.day == DAY)).mappings().all()
    return {
        r["model"]: (
            float(r["ours_usd"]),
            float(r["openrouter_usd"]),
            r["ours_requests"],
            r["openrouter_requests"],
            r["corrected_generations"],
        )
        for r in found
    }


def cost_of(engine: Engine, request_id: str) -> tuple[float | None, str]:
    t = LLMRequest.__table__
    with engine.connect() as conn:
        found = conn.execute(
            select(t.c.cost_usd, t.c.cost_source).where(t.c.request_id == request_id)
        ).one()
    return (None if found[0] is None else float(found[0]), found[1])


@pytest.mark.usefixtures("data_set")
def test_drift_per_day_provider_and_model_on_a_hand_made_data_set(
    engine: Engine, registry: Registry
) -> None:
    [result] = reconcile(engine, registry, [DAY], zone=ZoneInfo("UTC"), now=NOW)
    assert result.ok and result.generations_checked
    rows = by_model([result])
    assert sorted(rows) == [SONNET, GEMINI, MINI]
    # Mini: the timeout and the cut stream were billed; after correction we agree exactly.
    assert rows[MINI] | {"ours_usd": round(rows[MINI]["ours_usd"], 6)} == {
        "day": "2026-11-29",
        "provider": "primary",
        "model": MINI,
        "ours_usd": 0.18,
        "openrouter_usd": 0.18,
        "drift_usd": pytest.approx(0.0, abs=1e-9),
        "drift_pct": pytest.approx(0.0, abs=1e-6),
        "ours_requests": 3,  # r1-r3; the budget-rejected call never reached OpenRouter
        "openrouter_requests": 3,
        "corrected_generations": 2,
    }
    # Sonnet: billed under its permaslug; our successful call recorded $0.02 less.
    assert rows[SONNET]["openrouter_usd"] == pytest.approx(0.22)
    assert rows[SONNET]["drift_usd"] == pytest.approx(0.02)
    assert rows[SONNET]["drift_pct"] == pytest.approx(2 / 22 * 100, rel=1e-4)
    assert rows[SONNET]["corrected_generations"] == 0  # an answered call keeps its own cost
    # Gemini: only OpenRouter knows it.
    assert (rows[GEMINI]["ours_usd"], rows[GEMINI]["openrouter_usd"]) == (0.0, 0.07)
    assert rows[GEMINI]["drift_pct"] == pytest.approx(100.0)
    assert stored(engine)[SONNET] == pytest.approx((0.2, 0.22, 1, 1, 0))


@pytest.mark.usefixtures("data_set")
def test_billed_failures_get_the_real_cost_and_the_rollup_follows(
    engine: Engine, registry: Registry
) -> None:
    assert_rollups_match_raw(engine)
    reconcile(engine, registry, [DAY], zone=ZoneInfo("UTC"), now=NOW)
    assert cost_of(engine, "r2") == (pytest.approx(0.05), "reconciled")
    assert cost_of(engine, "r3") == (pytest.approx(0.03), "reconciled")
    assert cost_of(engine, "r1") == (pytest.approx(0.10), "provider")
    assert cost_of(engine, "r5") == (pytest.approx(0.20), "provider")
    assert cost_of(engine, "old") == (pytest.approx(0.4), "unknown")  # another day
    assert_rollups_match_raw(engine)


@pytest.mark.usefixtures("data_set")
def test_a_rerun_replaces_the_day_and_corrects_nothing_twice(
    engine: Engine, registry: Registry, ledger: FakeOpenRouter
) -> None:
    reconcile(engine, registry, [DAY], zone=ZoneInfo("UTC"), now=NOW)
    ledger.ledger[:] = [b for b in ledger.ledger if b.generation_id != "g9"]
    ledger.bill("g6", SONNET, 0.01, at(18))
    [again] = reconcile(engine, registry, [DAY], zone=ZoneInfo("UTC"), now=NOW)
    assert again.corrected_generations == 0
    found = stored(engine)
    assert sorted(found) == [SONNET, MINI]  # gemini's row went with its bill
    assert found[SONNET] == pytest.approx((0.2, 0.23, 1, 2, 0))
    assert found[MINI][:2] == pytest.approx((0.18, 0.18))
    assert_rollups_match_raw(engine)


@pytest.mark.usefixtures("data_set")
def test_a_day_the_ledger_does_not_know_shows_our_spend_against_nothing(
    engine: Engine, registry: Registry, ledger: FakeOpenRouter
) -> None:
    ledger.ledger.clear()
    [result] = reconcile(engine, registry, [DAY], zone=ZoneInfo("UTC"), now=NOW)
    rows = by_model([result])
    assert rows[MINI]["openrouter_usd"] == 0.0
    assert rows[MINI]["drift_usd"] == pytest.approx(-0.11)  # 0.10 + the estimated 0.01
    assert rows[MINI]["drift_pct"] is None
    assert cost_of(engine, "r2") == (None, "unknown")


def test_days_are_local_days_of_the_display_zone(
    engine: Engine, registry: Registry, ledger: FakeOpenRouter
) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    # 23:30 UTC on the 28th is already the 29th in Berlin (UTC+1 in November).
    insert(engine, [row("late", MINI, datetime(2026, 11, 28, 23, 30, tzinfo=UTC), cost_usd=0.3)])
    ledger.bill("gl", MINI, 0.3, datetime(2026, 11, 28, 23, 30, tzinfo=UTC))
    [result] = reconcile(engine, registry, [DAY], zone=berlin, now=NOW)
    assert by_model([result])[MINI]["ours_usd"] == pytest.approx(0.3)
    assert by_model([result])[MINI]["openrouter_usd"] == pytest.approx(0.3)
    [query, *_] = [r for r in ledger.requests if r.endpoint == "/analytics/query"]
    assert query.body["time_range"] == {
        "start": "2026-11-28T23:00:00Z",
        "end": "2026-11-29T23:00:00Z",
    }


@pytest.mark.usefixtures("data_set")
def test_days_older_than_31_days_compare_totals_without_per_generation_queries(
    engine: Engine, registry: Registry, ledger: FakeOpenRouter
) -> None:
    [result] = reconcile(engine, registry, [DAY], zone=ZoneInfo("UTC"), now=NOW + timedelta(60))
    assert result.ok and not result.generations_checked
    assert cost_of(engine, "r2") == (None, "unknown")
    dims = [r.body["dimensions"] for r in ledger.requests if r.endpoint == "/analytics/query"]
    assert dims == [["model"]]


def test_no_management_key_says_how_to_set_one(engine: Engine, registry: Registry) -> None:
    with pytest.raises(LedgerError, match="set-management-key NAME --api-key-stdin"):
        reconcile(engine, registry, [DAY], now=NOW)


def test_a_refused_management_key_is_a_clear_error(
    engine: Engine, registry: Registry, fake_openrouter: FakeOpenRouter
) -> None:
    registry.set_management_key("primary", MGMT_KEY, actor="test")  # the fake does not know it
    with pytest.raises(LedgerError, match=r"refused the management key of primary \(401"):
        reconcile(engine, registry, [DAY], now=NOW)
    with engine.connect() as conn:
        assert conn.execute(select(Reconciliation.__table__)).first() is None


def test_an_inference_key_stored_as_management_key_is_named_as_such(
    engine: Engine, registry: Registry
) -> None:
    registry.set_management_key("primary", DEFAULT_KEY, actor="test")
    with pytest.raises(LedgerError, match=r"not an OpenRouter management key \(403"):
        reconcile(engine, registry, [DAY], now=NOW)


@pytest.mark.usefixtures("data_set")
def test_a_408_fails_that_day_only(
    engine: Engine, registry: Registry, ledger: FakeOpenRouter
) -> None:
    ledger.fail_analytics(Error(408))
    first, second = reconcile(engine, registry, [DAY - timedelta(1), DAY], now=NOW)
    assert not first.ok and "HTTP 408" in first.error and "try again later" in first.error
    assert second.ok and by_model([second])[MINI]["corrected_generations"] == 2


@pytest.mark.usefixtures("data_set")
def test_the_management_key_never_leaks(
    engine: Engine,
    registry: Registry,
    ledger: FakeOpenRouter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    ledger.fail_analytics(Error(500, message=f"echo {MGMT_KEY}"))
    results = reconcile(engine, registry, [DAY - timedelta(1), DAY], now=NOW)
    text = json.dumps([r.to_json() for r in results]) + str([r.error for r in results])
    assert "echo" in text and MGMT_KEY not in text  # the upstream's echo is scrubbed
    assert MGMT_KEY not in caplog.text
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for found in conn.execute(select(table)):
                assert MGMT_KEY not in str(tuple(found)), table.name
    for request in ledger.requests:
        if request.endpoint == "/analytics/query":
            assert request.headers["authorization"] == f"Bearer {MGMT_KEY}"
            assert MGMT_KEY not in request.raw_body.decode() + str(request.query)
    audit = [r for r in registry.history() if r.action == "provider.set_management_key"]
    assert audit[0].after == {"management_key": "sk-or-…5e7c"}


def test_management_key_validation_and_listing(registry: Registry) -> None:
    assert registry.get("primary").to_json()["management_key"] is None
    registry.set_management_key("primary", MGMT_KEY, actor="test")
    assert registry.get("primary").to_json()["management_key"] == "sk-or-…5e7c"
    assert registry.management_key("primary") == MGMT_KEY
    with pytest.raises(ValidationError, match="spaces"):
        registry.set_management_key("primary", "sk-or-v1 with space", actor="test")


def test_secrets_rotation_re_encrypts_the_management_key(
    engine: Engine, registry: Registry
) -> None:
    registry.set_management_key("primary", MGMT_KEY, actor="test")
    new_key = Fernet.generate_key().decode()
    old_key = os.environ["GATEHOUSE_SECRETS_KEY"]
    Registry(engine, SecretBox([new_key, old_key]), ttl=0).rotate_secrets(actor="test")
    assert Registry(engine, SecretBox([new_key]), ttl=0).management_key("primary") == MGMT_KEY


def test_days_for_since_and_day() -> None:
    utc = ZoneInfo("UTC")
    assert days_for(now=NOW, zone=utc) == [date(2026, 11, 29)]
    assert days_for(since="3d", now=NOW, zone=utc) == [date(2026, 11, d) for d in (27, 28, 29)]
    assert days_for(day=date(2026, 11, 30), now=NOW, zone=utc) == [date(2026, 11, 30)]
    with pytest.raises(ConfigError, match="number of days"):
        days_for(since="1w", now=NOW, zone=utc)


@pytest.mark.usefixtures("data_set")
def test_yesterday_is_reconciled_once_a_day(engine: Engine, registry: Registry) -> None:
    first = reconcile_yesterday_if_due(engine, registry, now=NOW)
    assert first is not None and [r.day for r in first] == [DAY]
    assert reconcile_yesterday_if_due(engine, registry, now=NOW + timedelta(hours=2)) is None
    assert reconcile_yesterday_if_due(engine, registry, now=NOW + timedelta(days=1)) is not None


def test_nothing_to_do_without_a_management_key(engine: Engine, registry: Registry) -> None:
    assert reconcile_yesterday_if_due(engine, registry, now=NOW) is None


@pytest.fixture(autouse=True)
def _no_audit_leak(engine: Engine) -> Iterator[None]:
    yield
    with engine.connect() as conn:
        rows = conn.execute(select(SettingsAudit.__table__)).all()
    assert MGMT_KEY not in str(rows)


@pytest.mark.usefixtures("data_set")
def test_two_runs_at_once_correct_each_generation_once(engine: Engine, registry: Registry) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def run() -> int:
        [result] = reconcile(engine, registry, [DAY], zone=ZoneInfo("UTC"), now=NOW)
        return result.corrected_generations

    with ThreadPoolExecutor(2) as pool:
        corrected = sorted(pool.map(lambda _: run(), range(2)))
    assert corrected == [0, 2]  # the second run found nothing left to correct
    assert cost_of(engine, "r2") == (pytest.approx(0.05), "reconciled")
    assert_rollups_match_raw(engine)


@pytest.mark.usefixtures("data_set")
def test_a_refused_provider_does_not_stop_the_others(
    engine: Engine, registry: Registry, fake_openrouter: FakeOpenRouter
) -> None:
    second = ProviderConfig(
        name="second", base_url=fake_openrouter.base_url, default_model=MINI, priority=2
    )
    registry.add(second, actor="test", api_key=DEFAULT_KEY)
    registry.set_management_key("second", "sk-or-v1-unknown-management-0000", actor="test")
    results = reconcile(engine, registry, [DAY], zone=ZoneInfo("UTC"), now=NOW)
    assert {(r.provider, r.ok) for r in results} == {("primary", True), ("second", False)}
    [failed] = [r for r in results if not r.ok]
    assert "refused the management key of second (401" in failed.error


def test_the_costs_page_and_the_cli_compute_drift_the_same_way() -> None:
    from datetime import date as day_type

    from gatehouse_core.spend.drift import DayDrift
    from gatehouse_core.spend.reconcile import DriftRow

    row = DriftRow(day_type(2026, 5, 1), "p", "m", 0.1, 0.3, 1, 1)
    day = DayDrift(day_type(2026, 5, 1), "p", 0.1, 0.3, 0, datetime.now(UTC))
    assert (row.drift_usd, row.drift_pct) == (day.drift_usd, day.drift_pct) == (0.2, 66.6667)
