"""The gateway's metrics and alert hooks, wired by `Gateway.from_env` or injected: one EMF line
per call on stderr, the cooldown alert fired once, the throttled alert check after calls."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from gatehouse_core import AllProvidersFailed, Gateway
from gatehouse_core.audit import AuditWriter
from gatehouse_core.db import make_engine
from gatehouse_core.errors import BudgetExceeded
from gatehouse_core.health import COOLDOWN_FAILURES
from gatehouse_core.metrics import DIMENSIONS, NAMESPACE
from gatehouse_core.spend.alerts import AlertConfigStore, Alerts
from gatehouse_core.spend.budget_rules import BudgetStore, make_rule
from tests.fakes.openrouter import Error, FakeOpenRouter, Reply, fake_cost

MESSAGES = [{"role": "user", "content": "Say hello to the gateway, please."}]
Factory = Callable[..., Gateway]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def emf_lines(stderr: str) -> list[dict]:
    documents = []
    for line in stderr.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def assert_emf_shape(document: dict) -> None:
    """CloudWatch's EMF specification: every dimension and metric named in the directive is a
    top-level member, metric values are numbers, the timestamp is epoch milliseconds."""
    directive = document["_aws"]
    assert isinstance(directive["Timestamp"], int)
    (metrics,) = directive["CloudWatchMetrics"]
    assert metrics["Namespace"] == NAMESPACE
    assert metrics["Dimensions"] == [list(DIMENSIONS)]
    for dimension in DIMENSIONS:
        assert isinstance(document[dimension], str)
    names = [m["Name"] for m in metrics["Metrics"]]
    assert names == ["TokensUsed", "EstimatedCost", "LatencyMs"]
    for name in names:
        assert isinstance(document[name], int | float)


def from_env(gateway_factory: Factory, **extra: str) -> Gateway:
    registry = gateway_factory("primary").registry
    env = {**os.environ, **extra}
    return Gateway.from_env(env, registry=registry)


def join_alert_checks() -> None:
    for thread in threading.enumerate():
        if thread.name in ("gatehouse-alerts", "gatehouse-alert"):
            thread.join(timeout=10)


def test_from_env_with_emf_writes_one_line_per_call_to_stderr(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    gateway = from_env(gateway_factory, GATEHOUSE_METRICS="emf")
    fake_openrouter.enqueue(Reply(text="one two three"), Error(400))
    try:
        result = gateway.chat(MESSAGES)
        with pytest.raises(Exception):  # noqa: B017 - a 400 is InvalidRequest, any GatewayError
            gateway.chat(MESSAGES)
    finally:
        gateway.close()
        join_alert_checks()
    captured = capsys.readouterr()

    ok, failed = emf_lines(captured.err)  # exactly one line per call
    assert not emf_lines(captured.out)  # stdout stays free for --json output
    for document in (ok, failed):
        assert_emf_shape(document)
    assert (ok["Provider"], ok["Model"], ok["Status"]) == ("primary", "test/primary", "ok")
    assert ok["TokensUsed"] == result.input_tokens + result.output_tokens
    assert ok["EstimatedCost"] == pytest.approx(fake_cost(result.input_tokens, 3))
    assert ok["RequestId"] == result.request_id
    assert (failed["Provider"], failed["Status"], failed["TokensUsed"]) == ("primary", "error", 0)


def test_from_env_enforces_a_budget_stored_in_the_database(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    # test/primary has no catalog price, so it reserves the conservative default ($0.50).
    engine = make_engine()
    BudgetStore(engine).set(make_rule("global", None, 0.10), actor="test")
    engine.dispose()
    gateway = from_env(gateway_factory, GATEHOUSE_METRICS="emf")
    try:
        with pytest.raises(BudgetExceeded):
            gateway.chat(MESSAGES)
    finally:
        gateway.close()
        join_alert_checks()

    assert fake_openrouter.chat_count == 0
    (document,) = emf_lines(capsys.readouterr().err)
    assert (document["Status"], document["TokensUsed"]) == ("error", 0)


def test_a_provider_entering_cooldown_fires_the_alert_once(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine
) -> None:
    alerts = Alerts(engine)  # inline, so the alert exists when the call returns
    gateway = gateway_factory("a", "b", alerts=alerts)
    fake_openrouter.always(Error(401), model="test/a")

    for _ in range(COOLDOWN_FAILURES + 3):  # a fails 5 times, then is skipped while cooling
        assert gateway.chat(MESSAGES).provider == "b"
    join_alert_checks()

    cooldowns = [a for a in alerts.recent() if a.kind == "cooldown"]
    assert [a.rule for a in cooldowns] == ["cooldown:a"]
    sent = [r.body["model"] for r in fake_openrouter.chat_requests]
    assert sent[COOLDOWN_FAILURES * 2 :] == ["test/b"] * 3  # a was skipped while cooling


def test_a_failing_alert_store_never_fails_the_call(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, tmp_path: Path
) -> None:
    # An alerts store whose database does not exist: the cooldown alert and checks fail quietly.
    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'nothing.db'}")
    gateway = gateway_factory("a", alerts=Alerts(broken))
    fake_openrouter.always(Error(401), model="test/a")

    for _ in range(COOLDOWN_FAILURES):
        with pytest.raises(AllProvidersFailed):
            gateway.chat(MESSAGES)
    join_alert_checks()
    assert gateway.health()[0].cooldown_until is not None


def test_calls_run_the_throttled_alert_check(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine, tmp_path: Path
) -> None:
    writer = AuditWriter(engine, spill_dir=tmp_path / "spill", flush_interval=0.05)
    clock = Clock()
    alerts = Alerts(engine, clock=clock)
    gateway = gateway_factory("a", audit=writer, alerts=alerts)
    fake_openrouter.always(Reply(text="dear", cost=0.002))

    gateway.chat(MESSAGES)  # checks at once, with no rule set yet
    join_alert_checks()
    assert writer.flush()
    AlertConfigStore(engine).set_hourly_spend(0.001, actor="test")
    gateway.chat(MESSAGES)  # within the throttle period: no check, so nothing fires
    join_alert_checks()
    assert alerts.recent() == []
    clock.now += 61
    gateway.chat(MESSAGES)  # the next check sees $0.004 this hour
    join_alert_checks()

    assert [a.rule for a in alerts.recent()] == ["hourly_spend"]
