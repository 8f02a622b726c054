"""The gateway with the real budget admitter: reserve before each upstream request, settle with
the attempt's cost, release on failure, refuse with BudgetExceeded before anything is sent.

Runs on SQLite and PostgreSQL (and with real Redis where it says so) against the fake upstream,
counting the requests it actually received."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, event, select

from gatehouse_core import AllProvidersFailed, Gateway, Registry, StreamInterrupted
from gatehouse_core.audit import AuditWriter
from gatehouse_core.catalog import Catalog, CatalogEntry
from gatehouse_core.crypto import SecretBox
from gatehouse_core.db import make_engine
from gatehouse_core.errors import BudgetExceeded
from gatehouse_core.schema import LLMRequest
from gatehouse_core.spend.budget_rules import BudgetStore, make_rule
from gatehouse_core.spend.budgets import Budgets
from tests.fakes.openrouter import Error, FakeOpenRouter, Reply, StreamCut

MESSAGES = [{"role": "user", "content": "Say hello to the gateway, please."}]  # 8 tokens
Factory = Callable[..., Gateway]


def priced(name: str) -> CatalogEntry:
    """$2 per million tokens both ways: max_tokens=4000 reserves about $0.008."""
    return CatalogEntry(f"test/{name}", name, None, 2e-6, 2e-6, None, 0.0, "test", None)


class FrozenClock:
    """Budgets never re-read the database during a test: figures stay this process's own."""

    def __call__(self) -> float:
        return 1000.0


def budgets_for(
    engine: Engine, *rules: tuple[str, str | None, float, str], redis_url: str | None = None, **kw
) -> Budgets:
    store = BudgetStore(engine)
    for scope, value, monthly, action in rules:
        store.set(make_rule(scope, value, monthly, action), actor="test")
    catalog = Catalog(engine, ttl=3600, defaults=[priced("a"), priced("b"), priced("primary")])
    return Budgets(engine, catalog, redis_url, clock=FrozenClock(), **kw)


@pytest.fixture
def writer(engine: Engine, tmp_path: Path) -> AuditWriter:
    return AuditWriter(engine, spill_dir=tmp_path / "spill", flush_interval=0.05)


def rows(engine: Engine, request_id: str) -> list[LLMRequest]:
    query = select(LLMRequest).where(LLMRequest.request_id == request_id)
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(LLMRequest.attempt)))


def test_a_call_that_would_pass_a_block_budget_is_refused_before_any_request(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine, writer: AuditWriter
) -> None:
    budgets = budgets_for(engine, ("global", None, 0.01, "block"))
    gateway = gateway_factory("a", "b", budgets=budgets, audit=writer)
    fake_openrouter.enqueue(Reply(text="expensive", cost=0.009))
    first = gateway.chat(MESSAGES, max_tokens=100)  # reserves ~$0.0002, settles $0.009
    assert budgets.spent()["global"] == pytest.approx(0.009)

    with pytest.raises(BudgetExceeded) as refused:
        gateway.chat(MESSAGES, max_tokens=1000)  # $0.009 + up to $0.002 > $0.01

    assert fake_openrouter.chat_count == 1  # only the first call reached the upstream
    message = str(refused.value)
    assert "global budget" in message and "Nothing was sent" in message
    assert refused.value.request_id
    assert [(a.provider, a.status, a.error_type) for a in refused.value.attempts] == [
        ("a", "rejected", "budget")
    ]  # no fallback to b: a global budget refuses every provider alike
    assert writer.flush()
    (row,) = rows(engine, refused.value.request_id)
    assert (row.status, row.error_type, row.final_attempt) == ("rejected", "budget", True)
    assert row.error_message == message
    assert [r.status for r in rows(engine, first.request_id)] == ["ok"]
    assert budgets.open_reservations()["global"] == 0


def test_an_alert_budget_never_refuses(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine
) -> None:
    budgets = budgets_for(engine, ("global", None, 0.001, "alert"))
    gateway = gateway_factory("a", budgets=budgets)
    fake_openrouter.always(Reply(text="pricey", cost=0.002))

    results = [gateway.chat(MESSAGES, max_tokens=4000) for _ in range(3)]

    assert [r.text for r in results] == ["pricey"] * 3
    assert fake_openrouter.chat_count == 3
    assert budgets.spent()["global"] == pytest.approx(0.006)  # tracked, over its limit


def test_a_failed_attempt_releases_its_reservation(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine
) -> None:
    budgets = budgets_for(engine, ("global", None, 0.02, "block"))
    gateway = gateway_factory("a", "b", budgets=budgets)
    fake_openrouter.always(Error(401), model="test/a")
    fake_openrouter.enqueue(Reply(text="from b", cost=0.001), model="test/b")

    result = gateway.chat(MESSAGES, max_tokens=4000)

    assert result.provider == "b"
    assert budgets.open_reservations()["global"] == 0
    assert budgets.spent()["global"] == pytest.approx(0.001)  # a's failure cost nothing
    fake_openrouter.always(Error(401), model="test/b")
    with pytest.raises(AllProvidersFailed):
        gateway.chat(MESSAGES, max_tokens=4000)
    assert budgets.open_reservations()["global"] == 0
    assert budgets.spent()["global"] == pytest.approx(0.001)


def test_failed_attempts_would_block_later_calls_if_not_released(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine
) -> None:
    # Each attempt reserves ~$0.008 of a $0.01 budget: if a failure kept its reservation, the
    # next call (on either provider) would be refused.
    budgets = budgets_for(engine, ("global", None, 0.01, "block"))
    gateway = gateway_factory("a", "b", budgets=budgets)
    fake_openrouter.enqueue(Error(401), model="test/a")
    fake_openrouter.enqueue(Reply(text="fine", cost=0.0001), model="test/b")

    assert gateway.chat(MESSAGES, max_tokens=4000).provider == "b"
    assert gateway.chat(MESSAGES, max_tokens=4000).provider == "a"
    assert budgets.open_reservations()["global"] == 0


def test_an_unknown_cost_settles_the_reserved_worst_case(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine
) -> None:
    budgets = budgets_for(engine, ("global", None, 1.0, "block"))
    gateway = gateway_factory("unpriced", budgets=budgets)  # no catalog price, no usage.cost
    fake_openrouter.enqueue(Reply(text="no price", omit_cost=True))

    result = gateway.chat(MESSAGES, max_tokens=10)

    assert result.cost_usd is None
    assert budgets.spent()["global"] > 0  # counted as what was reserved, never as $0
    assert budgets.open_reservations()["global"] == 0


def test_an_abandoned_stream_settles_what_its_drain_recorded(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine
) -> None:
    budgets = budgets_for(engine, ("global", None, 0.05, "block"))
    gateway = gateway_factory("a", budgets=budgets)
    fake_openrouter.enqueue(Reply(text="one two three four five six", cost=0.003))

    stream = gateway.stream(MESSAGES, max_tokens=4000)
    next(iter(stream))
    stream.close()  # the caller stops reading
    assert gateway.join_drains()

    assert budgets.open_reservations()["global"] == 0
    assert budgets.spent()["global"] == pytest.approx(0.003)


def test_a_provider_budget_falls_back_to_the_next_provider(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine, writer: AuditWriter
) -> None:
    budgets = budgets_for(engine, ("provider", "a", 0.001, "block"))
    gateway = gateway_factory("a", "b", budgets=budgets, audit=writer)

    result = gateway.chat(MESSAGES, max_tokens=4000)  # a's worst case $0.008 > $0.001

    assert result.provider == "b"
    assert [(a.provider, a.status, a.error_type) for a in result.attempts] == [
        ("a", "rejected", "budget"),
        ("b", "ok", None),
    ]
    assert "provider budget 'a'" in (result.attempts[0].error_message or "")
    assert [r.body["model"] for r in fake_openrouter.chat_requests] == ["test/b"]
    failures = {h.name: h.consecutive_failures for h in gateway.health()}
    assert failures.get("a", 0) == 0  # a refusal is not a provider failure
    assert writer.flush()
    found = rows(engine, result.request_id)
    assert [(r.status, r.error_type, r.final_attempt) for r in found] == [
        ("rejected", "budget", False),
        ("ok", None, True),
    ]


def test_every_provider_over_its_own_budget_raises_budget_exceeded(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine
) -> None:
    budgets = budgets_for(
        engine, ("provider", "a", 0.001, "block"), ("provider", "b", 0.001, "block")
    )
    gateway = gateway_factory("a", "b", budgets=budgets)

    with pytest.raises(BudgetExceeded) as refused:
        gateway.chat(MESSAGES, max_tokens=4000)

    assert "provider budget 'a'" in str(refused.value)
    assert "provider budget 'b'" in str(refused.value)
    assert [a.provider for a in refused.value.attempts] == ["a", "b"]
    assert fake_openrouter.chat_count == 0


def test_a_global_budget_refusal_does_not_fall_back(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine
) -> None:
    # The provider budget on a has room; the global one does not: b would be refused too.
    budgets = budgets_for(
        engine, ("provider", "a", 10.0, "block"), ("global", None, 0.001, "block")
    )
    gateway = gateway_factory("a", "b", budgets=budgets)

    with pytest.raises(BudgetExceeded) as refused:
        gateway.chat(MESSAGES, max_tokens=4000)

    assert [a.provider for a in refused.value.attempts] == ["a"]
    assert fake_openrouter.chat_count == 0


@pytest.mark.parametrize("shared", ["memory", "redis"])
def test_sixteen_threads_never_settle_more_than_the_budget(
    shared: str,
    gateway_factory: Factory,
    fake_openrouter: FakeOpenRouter,
    engine: Engine,
    request: pytest.FixtureRequest,
) -> None:
    redis_url = namespace = None
    if shared == "redis":
        redis_url = request.getfixturevalue("redis_url")
        namespace = request.getfixturevalue("namespace")
    budgets = budgets_for(
        engine,
        ("global", None, 0.05, "block"),
        redis_url=redis_url,
        **({"namespace": namespace} if namespace else {}),
    )
    gateway = gateway_factory("a", budgets=budgets, queue_timeout=5)
    fake_openrouter.always(Reply(text="costly", cost=0.007))  # worst case ~$0.008 each
    ok: list[float] = []
    refused: list[BudgetExceeded] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        for _ in range(2):
            try:
                result = gateway.chat(MESSAGES, max_tokens=4000)
                with lock:
                    ok.append(result.cost_usd or 0.0)
            except BudgetExceeded as exc:
                with lock:
                    refused.append(exc)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not errors
    assert len(ok) + len(refused) == 32
    assert refused and ok
    assert fake_openrouter.chat_count == len(ok)  # no refused call reached the upstream
    assert budgets.spent()["global"] == pytest.approx(sum(ok))
    assert sum(ok) <= 0.05  # with every call ended, nothing is in flight any more
    assert budgets.open_reservations()["global"] == 0


def test_calls_with_a_budget_far_from_its_limit_run_no_statement(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine
) -> None:
    gateway_factory("a")  # stores the provider
    budgets = budgets_for(engine, ("global", None, 100.0, "block"))
    registry = Registry(make_engine(), SecretBox.from_env(), ttl=3600)
    catalog = Catalog(engine, ttl=3600, defaults=[priced("a")])
    gateway = Gateway(registry, catalog=catalog, budgets=budgets)
    statements: list[str] = []
    try:
        gateway.chat(MESSAGES, max_tokens=100)  # warm: provider snapshot, rules, spend
        for target in (engine, registry.engine):
            event.listen(target, "before_cursor_execute", lambda *a: statements.append(a[2]))
        for _ in range(5):
            gateway.chat(MESSAGES, max_tokens=100)
    finally:
        gateway.close()
        registry.engine.dispose()

    assert statements == []
    assert fake_openrouter.chat_count == 6
    assert budgets.spent()["global"] > 0


def test_a_refused_stream_raises_before_any_delta_and_sends_nothing(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine
) -> None:
    budgets = budgets_for(engine, ("global", None, 0.001, "block"))
    gateway = gateway_factory("a", budgets=budgets)

    deltas: list[str] = []
    with pytest.raises(BudgetExceeded):
        for delta in gateway.stream(MESSAGES, max_tokens=4000):
            deltas.append(delta)

    assert deltas == []
    assert fake_openrouter.chat_count == 0
    assert budgets.open_reservations()["global"] == 0


def test_a_stream_cut_mid_way_settles_its_reservation_to_the_estimate(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine
) -> None:
    budgets = budgets_for(engine, ("global", None, 0.05, "block"))
    gateway = gateway_factory("a", budgets=budgets, catalog=budgets.catalog)
    fake_openrouter.enqueue(StreamCut(after_chunks=2, reply=Reply(text="one two three four")))

    with pytest.raises(StreamInterrupted):
        list(gateway.stream(MESSAGES, max_tokens=4000))

    # prompt 8 + output "one two " (8 characters → 2 tokens), at $2 per million tokens
    assert budgets.open_reservations()["global"] == 0
    assert budgets.spent()["global"] == pytest.approx((8 + 2) * 2e-6)


def test_a_stream_the_watchdog_cuts_settles_what_it_received(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine, writer: AuditWriter
) -> None:
    budgets = budgets_for(engine, ("global", None, 0.05, "block"))
    gateway = gateway_factory(
        "a", budgets=budgets, catalog=budgets.catalog, audit=writer, timeout=0.4
    )
    words = " ".join(f"w{i}" for i in range(40))
    fake_openrouter.enqueue(Reply(text=words, chunk_delay=0.1))

    stream = gateway.stream(MESSAGES, max_tokens=4000)
    with pytest.raises(StreamInterrupted) as cut:
        list(stream)

    assert writer.flush(10)
    (row,) = rows(engine, cut.value.request_id)
    assert (row.status, row.error_type, row.cost_source) == ("incomplete", "timeout", "estimated")
    assert row.output_tokens and row.output_tokens > 0 and row.generation_id.startswith("gen-")
    assert budgets.open_reservations()["global"] == 0
    assert budgets.spent()["global"] == pytest.approx(row.cost_usd)
