"""Budgets: reserve → settle → release against real SQLite/PostgreSQL and real Redis."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, event

from gatehouse_core.catalog import Catalog
from gatehouse_core.db import make_engine, transaction
from gatehouse_core.errors import BudgetExceeded, ConfigError, GatewayError, NotFound
from gatehouse_core.schema import SettingsAudit, UsageHourly
from gatehouse_core.spend.budget_rules import (
    BudgetStore,
    CallInfo,
    budget_timezone,
    make_rule,
    month_start,
    next_month_start,
    token_rules,
)
from gatehouse_core.spend.budgets import DEFAULT_OUTPUT_TOKENS, UNKNOWN_PRICE_RESERVE_USD, Budgets
from gatehouse_core.tokens import TokenStore
from tests.conftest import unavailable
from tests.core.budget_worker import CALL, PRICED, burst
from tests.core.test_ratelimit import RedisServer

WORKER = Path(__file__).with_name("budget_worker.py")


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(engine: Engine) -> BudgetStore:
    return BudgetStore(engine)


def admitter(engine: Engine, redis_url: str | None = None, **kwargs: object) -> Budgets:
    return Budgets(engine, Catalog(engine, ttl=3600, defaults=[PRICED]), redis_url, **kwargs)  # type: ignore[arg-type]


# ---- the worst case --------------------------------------------------------------------------


def test_worst_case_is_catalog_prices_times_prompt_plus_max_tokens(engine: Engine) -> None:
    budgets = admitter(engine)
    assert budgets.worst_case_usd(CALL) == pytest.approx(0.01)
    unset = CallInfo("primary", "test/priced", prompt_tokens=1000)
    assert budgets.worst_case_usd(unset) == pytest.approx((1000 + DEFAULT_OUTPUT_TOKENS) * 2e-6)


def test_a_model_without_a_price_reserves_the_documented_default(engine: Engine) -> None:
    unknown = CallInfo("primary", "nobody/knows", prompt_tokens=10, max_tokens=10)
    assert admitter(engine).worst_case_usd(unknown) == UNKNOWN_PRICE_RESERVE_USD


# ---- refusing and admitting ------------------------------------------------------------------


def test_sixteen_threads_never_settle_more_than_the_budget(
    engine: Engine, store: BudgetStore
) -> None:
    store.set(make_rule("global", None, 0.10), actor="test")
    budgets = admitter(engine, clock=Clock())
    settled, refused = burst(budgets, threads=16, calls=8, cost=0.008)
    assert settled <= 0.10 + 1e-9
    assert settled >= 0.10 - 0.01  # a call that fits was never refused: at most one $0.01 left
    assert refused > 0
    assert budgets.open_reservations() == {"global": 0.0}
    assert budgets.spent()["global"] == pytest.approx(settled)


@pytest.mark.redis
def test_sixteen_threads_share_one_budget_through_redis(
    postgres_url: str, redis_url: str, namespace: str
) -> None:
    engine = make_engine(postgres_url)
    BudgetStore(engine).set(make_rule("provider", "primary", 0.10), actor="test")
    budgets = admitter(engine, redis_url, namespace=namespace)
    assert budgets.storage_kind == "redis"
    settled, refused = burst(budgets, threads=16, calls=8, cost=0.008)
    assert 0.09 - 1e-9 <= settled <= 0.10 + 1e-9
    assert refused > 0
    assert budgets.open_reservations() == {"provider:primary": 0.0}
    assert budgets.spent()["provider:primary"] == pytest.approx(settled)
    engine.dispose()


def run_workers(specs: list[dict]) -> list[dict]:
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps(spec)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for spec in specs
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


@pytest.mark.redis
def test_two_processes_bursting_stay_within_one_budget_through_redis(
    db_url: str, redis_url: str, namespace: str
) -> None:
    engine = make_engine(db_url)
    BudgetStore(engine).set(make_rule("global", None, 0.10), actor="test")
    spec = {"database_url": db_url, "redis_url": redis_url, "namespace": namespace}
    results = run_workers([{**spec, "mode": "burst", "threads": 4, "calls": 8, "cost": 0.008}] * 2)
    settled = sum(r["settled"] for r in results)
    assert 0.09 - 1e-9 <= settled <= 0.10 + 1e-9
    assert sum(r["refused"] for r in results) > 0
    budgets = admitter(engine, redis_url, namespace=namespace)
    assert budgets.spent()["global"] == pytest.approx(settled)
    assert budgets.open_reservations() == {"global": 0.0}
    engine.dispose()


@pytest.mark.redis
def test_a_killed_process_reservations_lapse_and_free_the_budget(
    postgres_url: str, redis_url: str, namespace: str
) -> None:
    engine = make_engine(postgres_url)
    BudgetStore(engine).set(make_rule("global", None, 0.01), actor="test")
    spec = {"database_url": postgres_url, "redis_url": redis_url, "namespace": namespace}
    holder = subprocess.Popen(
        [sys.executable, str(WORKER), json.dumps({**spec, "mode": "hold", "ttl": 60})],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    finally:
        holder.kill()
        holder.wait(timeout=10)
    now = admitter(engine, redis_url, namespace=namespace)
    with pytest.raises(BudgetExceeded):
        now.reserve(CALL)  # the dead process's reservation still holds the whole budget
    later = datetime.now(UTC) + timedelta(seconds=61)
    after_ttl = admitter(engine, redis_url, namespace=namespace, now=lambda: later)
    after_ttl.reserve(CALL).settle(0.01)
    assert after_ttl.open_reservations() == {"global": 0.0}
    engine.dispose()


def test_release_gives_the_reservation_back(engine: Engine, store: BudgetStore) -> None:
    store.set(make_rule("global", None, 0.01), actor="test")
    budgets = admitter(engine, clock=Clock())
    reservation = budgets.reserve(CALL)
    assert budgets.open_reservations() == {"global": pytest.approx(0.01)}
    with pytest.raises(BudgetExceeded):
        budgets.reserve(CALL)
    reservation.release()
    reservation.release()  # twice is harmless
    assert budgets.open_reservations() == {"global": 0.0}
    with budgets.reserve(CALL):  # leaving the block without settling releases
        pass
    assert budgets.open_reservations() == {"global": 0.0}
    assert budgets.spent() == {"global": 0.0}


@pytest.mark.redis
def test_release_gives_the_reservation_back_through_redis(
    sqlite_url: str, redis_url: str, namespace: str
) -> None:
    engine = make_engine(sqlite_url)
    BudgetStore(engine).set(make_rule("global", None, 0.01), actor="test")
    budgets = admitter(engine, redis_url, namespace=namespace)
    reservation = budgets.reserve(CALL)
    with pytest.raises(BudgetExceeded):
        admitter(engine, redis_url, namespace=namespace).reserve(CALL)  # another process
    reservation.release()
    assert budgets.open_reservations() == {"global": 0.0}
    budgets.reserve(CALL).settle(0.004)
    assert budgets.spent() == {"global": pytest.approx(0.004)}


def test_settle_replaces_the_reservation_with_the_real_cost(
    engine: Engine, store: BudgetStore
) -> None:
    store.set(make_rule("global", None, 0.02), actor="test")
    budgets = admitter(engine, clock=Clock())
    budgets.reserve(CALL).settle(0.002)
    budgets.reserve(CALL).settle(0.002)  # fits only because the first settled below its $0.01
    assert budgets.spent() == {"global": pytest.approx(0.004)}
    assert budgets.open_reservations() == {"global": 0.0}


def test_alert_budget_never_refuses(engine: Engine, store: BudgetStore) -> None:
    store.set(make_rule("global", None, 0.01, "alert"), actor="test")
    budgets = admitter(engine, clock=Clock())
    for _ in range(5):
        budgets.reserve(CALL).settle(0.01)
    assert budgets.spent() == {"global": pytest.approx(0.05)}


def test_only_the_budgets_that_match_the_call_apply(engine: Engine, store: BudgetStore) -> None:
    store.set(make_rule("provider", "other", 0.001), actor="test")
    store.set(make_rule("actor", "alice", 0.001), actor="test")
    store.set(make_rule("source", "cli", 0.015), actor="test")
    budgets = admitter(engine, clock=Clock())
    budgets.reserve(CALL).settle(0.01)  # no source, not alice, not provider other: no budget
    cli_call = CallInfo("primary", "test/priced", 1000, 4000, source="cli")
    budgets.reserve(cli_call).settle(0.01)
    with pytest.raises(BudgetExceeded, match="source budget 'cli'"):
        budgets.reserve(cli_call)
    with pytest.raises(BudgetExceeded, match="actor budget 'alice'"):
        budgets.reserve(CallInfo("primary", "test/priced", 1000, 4000, actor="alice"))


def test_refusal_names_the_budget_its_limit_the_spend_and_the_fix(
    engine: Engine, store: BudgetStore
) -> None:
    store.set(make_rule("provider", "primary", 0.015), actor="test")
    budgets = admitter(engine, clock=Clock())
    budgets.reserve(CALL).settle(0.008)
    with pytest.raises(BudgetExceeded) as refused:
        budgets.reserve(CALL)
    text = str(refused.value)
    assert isinstance(refused.value, GatewayError)
    assert "provider budget 'primary'" in text and "$0.0150 a month" in text
    assert "$0.0080 spent" in text and "up to $0.0100" in text
    assert "gatehouse budgets set --monthly USD --provider primary" in text


# ---- API tokens' budgets -----------------------------------------------------------------------


def token_call(name: str) -> CallInfo:
    return CallInfo("primary", "test/priced", 1000, 4000, source="api", actor=f"token:{name}")


def test_token_rules_are_the_live_tokens_with_a_monthly_budget(engine: Engine) -> None:
    store = TokenStore(engine)
    store.create("ci", "operator", actor="x", monthly_usd=2.5)
    store.create("bot", "viewer", actor="x", monthly_usd=1)
    store.create("free", "operator", actor="x")
    store.create("gone", "operator", actor="x", monthly_usd=9)
    store.revoke("gone", actor="x")
    rules = token_rules(engine)
    assert [(r.key, r.monthly_usd, r.action) for r in rules] == [
        ("token:bot", 1.0, "block"),
        ("token:ci", 2.5, "block"),
    ]
    assert rules[1].applies_to(CallInfo("p", "m", 0, actor="token:ci"))
    assert not rules[1].applies_to(CallInfo("p", "m", 0, actor="ci"))


def test_a_token_budget_is_a_rule_for_that_tokens_calls_only(engine: Engine) -> None:
    TokenStore(engine).create("ci", "operator", actor="test", monthly_usd=0.015)
    budgets = admitter(engine, clock=Clock())
    assert [r.key for r in budgets.rules()] == ["token:ci"]
    budgets.reserve(token_call("ci")).settle(0.008)
    budgets.reserve(token_call("bot")).settle(0.5)  # another token, no budget
    budgets.reserve(CALL).settle(0.5)  # not a token's call
    with pytest.raises(BudgetExceeded) as refused:
        budgets.reserve(token_call("ci"))
    text = str(refused.value)
    assert "monthly budget of the API token 'ci'" in text and "$0.0080 spent" in text
    assert "gatehouse tokens create" in text
    assert budgets.spent() == {"token:ci": pytest.approx(0.008)}


def test_a_token_budget_counts_the_rollup_of_its_actor(engine: Engine) -> None:
    start = month_start(datetime.now(UTC), ZoneInfo("UTC"))
    add_rollup(engine, start, 0.009, actor="token:ci")
    add_rollup(engine, start, 5.0, actor="token:other")
    add_rollup(engine, start - timedelta(hours=1), 5.0, actor="token:ci")  # last month
    TokenStore(engine).create("ci", "operator", actor="test", monthly_usd=0.015)
    budgets = admitter(engine, clock=Clock())
    assert budgets.spent() == {"token:ci": pytest.approx(0.009)}
    with pytest.raises(BudgetExceeded):
        budgets.reserve(token_call("ci"))  # 0.009 + 0.01 > 0.015


def test_a_revoked_tokens_budget_is_no_rule(engine: Engine) -> None:
    tokens = TokenStore(engine)
    tokens.create("gone", "operator", actor="test", monthly_usd=1.0)
    tokens.create("free", "operator", actor="test")  # no budget
    tokens.revoke("gone", actor="test")
    assert admitter(engine, clock=Clock()).rules() == ()


def test_include_puts_a_token_created_after_the_last_read_in_force_at_once(
    engine: Engine,
) -> None:
    clock = Clock()
    budgets = admitter(engine, clock=clock, refresh_seconds=3600)
    budgets.reserve(CALL).settle(0.001)  # rules read: none
    info, _ = TokenStore(engine).create("new", "operator", actor="test", monthly_usd=0.005)
    budgets.reserve(token_call("new")).release()  # the periodic read has not seen it yet
    budgets.include("token:new", info.created_at)
    with pytest.raises(BudgetExceeded, match="API token 'new'"):
        budgets.reserve(token_call("new"))
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    budgets.include("token:new", info.created_at)  # in force: nothing read
    budgets.include("token:revoked", info.created_at)  # read after it was made: not again
    assert statements == []


@pytest.mark.redis
def test_a_token_budget_is_shared_through_redis(
    sqlite_url: str, redis_url: str, namespace: str
) -> None:
    engine = make_engine(sqlite_url)
    TokenStore(engine).create("ci", "operator", actor="test", monthly_usd=0.015)
    first = admitter(engine, redis_url, namespace=namespace)
    second = admitter(engine, redis_url, namespace=namespace)  # another process
    held = first.reserve(token_call("ci"))
    with pytest.raises(BudgetExceeded, match="reserved by calls in flight"):
        second.reserve(token_call("ci"))
    held.settle(0.002)
    second.reserve(token_call("ci")).settle(0.002)
    assert first.spent() == {"token:ci": pytest.approx(0.004)}


# ---- the database figure -------------------------------------------------------------------


def add_rollup(
    engine: Engine, when: datetime, cost: float, provider: str = "primary", actor: str = ""
) -> None:
    with transaction(engine) as s:
        s.add(
            UsageHourly(
                bucket_start=when,
                provider=provider,
                model="test/priced",
                source="",
                actor=actor,
                status="success",
                cost_usd=cost,
            )
        )


def test_month_to_date_spend_comes_from_the_rollup(engine: Engine, store: BudgetStore) -> None:
    now = datetime.now(UTC)
    start = month_start(now, ZoneInfo("UTC"))
    add_rollup(engine, start, 0.092)
    add_rollup(engine, start - timedelta(hours=1), 5.0)  # last month: does not count
    store.set(make_rule("global", None, 0.10), actor="test")
    budgets = admitter(engine, clock=Clock())
    assert budgets.spent() == {"global": pytest.approx(0.092)}
    with pytest.raises(BudgetExceeded):
        budgets.reserve(CALL)  # 0.092 + 0.01 > 0.10


def test_hot_path_runs_no_statement_while_far_from_every_limit(
    engine: Engine, store: BudgetStore
) -> None:
    store.set(make_rule("global", None, 100.0), actor="test")
    store.set(make_rule("provider", "primary", 100.0), actor="test")
    clock = Clock()
    budgets = admitter(engine, clock=clock)
    budgets.reserve(CALL).settle(0.001)  # warm up: rules, spend and prices read once
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for _ in range(200):
        budgets.reserve(CALL).settle(0.001)
    assert statements == []
    clock.now += 5.0  # stale: one read of the rules, the tokens' budgets and spend, then quiet
    budgets.reserve(CALL).settle(0.001)
    assert 1 <= len(statements) <= 3
    budgets.reserve(CALL).settle(0.001)
    assert len(statements) <= 3


def test_near_a_limit_the_database_figure_is_read_every_second(
    engine: Engine, store: BudgetStore
) -> None:
    add_rollup(engine, month_start(datetime.now(UTC), ZoneInfo("UTC")), 0.05)
    store.set(make_rule("global", None, 0.10), actor="test")
    clock = Clock()
    budgets = admitter(engine, clock=clock)
    budgets.reserve(CALL).release()  # 50%: far from the limit
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    clock.now += 1.0
    budgets.reserve(CALL).release()
    assert statements == []
    add_rollup(engine, month_start(datetime.now(UTC), ZoneInfo("UTC")) + timedelta(hours=1), 0.04)
    clock.now += 4.0  # the regular read sees 90%
    budgets.reserve(CALL).release()
    read = len(statements)
    clock.now += 1.0
    budgets.reserve(CALL).release()
    assert read >= 1 and len(statements) > read


def test_a_budget_added_by_another_process_applies_after_the_refresh(
    engine: Engine, store: BudgetStore
) -> None:
    clock = Clock()
    budgets = admitter(engine, clock=clock)
    budgets.reserve(CALL).settle(0.01)
    store.set(make_rule("global", None, 0.001), actor="test")
    clock.now += 5.0
    with pytest.raises(BudgetExceeded):
        budgets.reserve(CALL)


def test_unreachable_redis_falls_back_to_the_database_figure_with_one_warning(
    engine: Engine, store: BudgetStore, caplog: pytest.LogCaptureFixture
) -> None:
    add_rollup(engine, month_start(datetime.now(UTC), ZoneInfo("UTC")), 0.085)
    store.set(make_rule("global", None, 0.10), actor="test")
    budgets = admitter(engine, "redis://127.0.0.1:1/0", clock=Clock())
    with caplog.at_level(logging.WARNING, logger="gatehouse.budgets"):
        budgets.reserve(CALL).settle(0.01)
        with pytest.raises(BudgetExceeded):
            budgets.reserve(CALL)  # 0.085 + 0.01 spent, + 0.01 would pass 0.10
    assert budgets.storage_kind == "memory"
    warnings = [r for r in caplog.records if "Redis is unreachable" in r.getMessage()]
    assert len(warnings) == 1


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, so it can be stopped and started again."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed")
    server = RedisServer()
    try:
        yield server
    finally:
        server.stop()


def test_redis_lost_mid_run_falls_back_then_shares_again_after_the_retry_period(
    sqlite_url: str, private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(sqlite_url)
    BudgetStore(engine).set(make_rule("global", None, 1.0), actor="test")
    clock = Clock()
    budgets = admitter(engine, private_redis.url, clock=clock, refresh_seconds=3600)
    held = budgets.reserve(CALL)
    assert budgets.storage_kind == "redis"
    private_redis.stop()
    with caplog.at_level(logging.WARNING, logger="gatehouse.budgets"):
        held.settle(0.01)  # lost with Redis, so counted in this process instead
        for _ in range(3):
            budgets.reserve(CALL).settle(0.01)  # never fails the call
    assert budgets.storage_kind == "memory"
    assert budgets.spent() == {"global": pytest.approx(0.04)}
    assert len([r for r in caplog.records if "Redis is unreachable" in r.getMessage()]) == 1
    private_redis.start()
    clock.now += 31
    budgets.reserve(CALL).settle(0.01)
    assert budgets.storage_kind == "redis"
    engine.dispose()


# ---- months and rules ------------------------------------------------------------------------


def test_months_begin_at_midnight_in_the_configured_timezone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    new_year_berlin = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)  # 00:30 on 1 January there
    assert month_start(new_year_berlin, berlin) == datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    assert month_start(new_year_berlin, ZoneInfo("UTC")) == datetime(2026, 12, 1, tzinfo=UTC)
    assert next_month_start(new_year_berlin, berlin) == datetime(2027, 1, 31, 23, tzinfo=UTC)


def test_timezone_falls_back_to_utc_and_rejects_a_bad_name() -> None:
    assert budget_timezone({}) == ZoneInfo("UTC")
    assert budget_timezone({"GATEHOUSE_TIMEZONE": "Europe/Berlin"}) == ZoneInfo("Europe/Berlin")
    with pytest.raises(ConfigError, match="not a time zone"):
        budget_timezone({"GATEHOUSE_TIMEZONE": "Mars/Olympus"})


@pytest.mark.parametrize(
    ("scope", "value", "usd", "action", "message"),
    [
        ("galaxy", None, 5, "block", "scope 'galaxy' is unknown"),
        ("provider", "", 5, "block", "needs the provider's name"),
        ("global", "x", 5, "block", "takes no name"),
        ("global", None, 0, "block", "above 0"),
        ("global", None, 5, "warn", "use block or alert"),
    ],
)
def test_invalid_rules_are_refused_with_the_fix(
    scope: str, value: str | None, usd: float, action: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_rule(scope, value, usd, action)


def test_set_replaces_and_remove_deletes_each_audited(engine: Engine, store: BudgetStore) -> None:
    store.set(make_rule("provider", "primary", 5), actor="alice")
    store.set(make_rule("provider", "primary", 7, "alert"), actor="alice")
    assert store.list_rules() == [make_rule("provider", "primary", 7, "alert")]
    store.remove("provider", "primary", actor="bob")
    assert store.list_rules() == []
    with pytest.raises(NotFound, match="no provider budget 'primary'"):
        store.remove("provider", "primary", actor="bob")
    with transaction(engine) as s:
        audit = [(a.actor, a.action, a.target) for a in s.query(SettingsAudit).order_by("id")]
    assert audit == [
        ("alice", "budget.set", "provider:primary"),
        ("alice", "budget.set", "provider:primary"),
        ("bob", "budget.remove", "provider:primary"),
    ]
