"""Alerts: fire once per rule and window across processes; signed, retried webhook delivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select

from gatehouse_core.db import make_engine, transaction
from gatehouse_core.errors import ConfigError, NotFound
from gatehouse_core.schema import Alert, AlertDelivery, SettingsAudit
from gatehouse_core.spend.alerts import AlertConfigStore, Alerts, parse_thresholds
from gatehouse_core.spend.budget_rules import BudgetStore, make_rule, month_start
from gatehouse_core.spend.webhook import SIGNATURE_HEADER, shown_url, sign
from gatehouse_core.tokens import TokenStore
from tests.core.test_spend_budgets import add_rollup

WORKER = Path(__file__).with_name("alert_worker.py")
SECRET = "whsec-test-0123456789"


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers the scripted statuses, then 200."""

    def __init__(self, statuses: list[int]):
        self.statuses = list(statuses)
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0/secret-path"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver([500]) as r:
        yield r


def verified(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get(SIGNATURE_HEADER, ""), expected)


def alert_rows(engine: Engine) -> list[tuple[str, datetime]]:
    with transaction(engine) as s:
        return [(a.rule, a.window_start) for a in s.scalars(select(Alert).order_by(Alert.rule))]


def test_webhook_is_signed_and_retried_after_a_500(engine: Engine, receiver: Receiver) -> None:
    AlertConfigStore(engine).set_webhook(receiver.url, "HOOK_SECRET", actor="test")
    AlertConfigStore(engine).set_hourly_spend(1.0, actor="test")
    add_rollup(engine, datetime.now(UTC).replace(minute=0, second=0, microsecond=0), 1.5)
    waits: list[float] = []
    alerts = Alerts(engine, sleep=waits.append, env={"HOOK_SECRET": SECRET})
    [fired] = alerts.check()
    assert [len(receiver.requests), waits] == [2, [1.0]]
    for headers, body in receiver.requests:
        assert verified(headers, body)
    payload = json.loads(receiver.requests[1][1])
    assert set(payload) == {
        "kind", "rule", "threshold", "value", "window_start", "window_end", "fired_at", "text"
    }  # fmt: skip
    assert payload["kind"] == "hourly_spend" and payload["value"] == pytest.approx(1.5)
    assert "$1.50" in payload["text"]
    with transaction(engine) as s:
        rows = s.scalars(select(AlertDelivery).order_by(AlertDelivery.attempt)).all()
        seen = [(r.alert_id, r.attempt, r.status, r.http_status) for r in rows]
        urls = {r.url for r in rows}
    assert seen == [(fired.id, 1, "failed", 500), (fired.id, 2, "delivered", 200)]
    assert urls == {shown_url(receiver.url)} and "secret-path" not in urls.pop()


def test_delivery_gives_up_after_the_bounded_retries(engine: Engine) -> None:
    with Receiver([503] * 10) as failing:
        AlertConfigStore(engine).set_webhook(failing.url, None, actor="test")
        waits: list[float] = []
        alerts = Alerts(engine, sleep=waits.append)
        attempts = alerts.send_test()
        assert [a.http_status for a in attempts] == [503, 503, 503, 503]
        assert waits == [1.0, 2.0, 4.0]
        assert SIGNATURE_HEADER not in failing.requests[0][0]  # no secret: unsigned


def test_a_client_error_is_not_retried(engine: Engine) -> None:
    with Receiver([404]) as gone:
        AlertConfigStore(engine).set_webhook(gone.url, None, actor="test")
        attempts = Alerts(engine, sleep=lambda s: None).send_test()
        assert [(a.attempt, a.ok, a.http_status) for a in attempts] == [(1, False, 404)]


def test_two_processes_racing_fire_each_threshold_once(engine: Engine, tmp_path: Path) -> None:
    AlertConfigStore(engine).set_hourly_spend(1.0, actor="test")
    BudgetStore(engine).set(make_rule("global", None, 2.0), actor="test")
    now = datetime.now(UTC)
    add_rollup(engine, now.replace(minute=0, second=0, microsecond=0), 1.7)  # 85% of $2
    start = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(engine.url.render_as_string(False)), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    start.touch()
    fired: list[str] = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        fired += json.loads(out)
    expected = ["budget:global:50", "budget:global:80", "hourly_spend"]
    assert sorted(fired) == expected
    assert [rule for rule, _ in alert_rows(engine)] == expected
    assert Alerts(engine).check() == []  # a later check in the same windows fires nothing


def test_a_new_window_fires_again(engine: Engine) -> None:
    AlertConfigStore(engine).set_hourly_spend(1.0, actor="test")
    hour = datetime(2026, 5, 4, 10, tzinfo=UTC)
    add_rollup(engine, hour, 2.0)
    add_rollup(engine, hour + timedelta(hours=2), 2.0)
    first = Alerts(engine, now=lambda: hour + timedelta(minutes=5)).check()
    later = Alerts(engine, now=lambda: hour + timedelta(hours=2, minutes=5)).check()
    assert [a.window_start for a in first] == [hour]
    assert [a.window_start for a in later] == [hour + timedelta(hours=2)]


def test_budget_thresholds_are_configurable(engine: Engine) -> None:
    AlertConfigStore(engine).set_budget_thresholds((25,), actor="test")
    BudgetStore(engine).set(make_rule("provider", "primary", 4.0), actor="test")
    add_rollup(engine, month_start(datetime.now(UTC), ZoneInfo("UTC")), 1.2)  # 30%
    [fired] = Alerts(engine).check()
    assert fired.rule == "budget:provider:primary:25" and fired.value == pytest.approx(30.0)
    assert "provider budget 'primary' reached 30%" in fired.text


def test_an_api_tokens_budget_alerts_like_any_budget(engine: Engine) -> None:
    TokenStore(engine).create("ci", "operator", actor="test", monthly_usd=2.0)
    start = month_start(datetime.now(UTC), ZoneInfo("UTC"))
    add_rollup(engine, start, 1.7, actor="token:ci")  # 85%
    add_rollup(engine, start, 9.0, actor="alice")  # not the token's
    fired = sorted(a.rule for a in Alerts(engine).check())
    assert fired == ["budget:token:ci:50", "budget:token:ci:80"]


def test_provider_cooldown_fires_once_per_window(engine: Engine) -> None:
    at = datetime(2026, 5, 4, 10, 3, tzinfo=UTC)
    alerts = Alerts(engine, now=lambda: at)
    assert alerts.provider_cooldown("primary") is not None
    assert alerts.provider_cooldown("primary") is None  # the other process's entry, same window
    assert alerts.provider_cooldown("backup") is not None
    assert Alerts(engine, now=lambda: at + timedelta(minutes=10)).provider_cooldown("primary")


def test_cooldown_alert_with_the_database_down_warns_and_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = make_engine("postgresql+psycopg://postgres@127.0.0.1:1/none", migrate=False)
    with caplog.at_level("WARNING", logger="gatehouse.alerts"):
        assert Alerts(down).provider_cooldown("primary") is None
    assert any("could not record the cooldown alert" in r.getMessage() for r in caplog.records)


def test_a_fired_alert_is_a_structured_warning_line(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="gatehouse.alerts"):
        Alerts(engine).provider_cooldown("primary")
    [record] = [r for r in caplog.records if r.name == "gatehouse.alerts"]
    assert record.fields["alert"]["rule"] == "cooldown:primary"  # type: ignore[attr-defined]


def test_rule_changes_are_validated_and_audited_with_the_url_masked(engine: Engine) -> None:
    store = AlertConfigStore(engine)
    with pytest.raises(ConfigError, match="https://"):
        store.set_webhook("ftp://example", None, actor="test")
    with pytest.raises(ConfigError, match="environment variable name"):
        store.set_webhook("https://hooks.example/x", "not a var", actor="test")
    with pytest.raises(ConfigError, match="whole percents"):
        parse_thresholds("50,eighty")
    store.set_webhook("https://hooks.example/services/T0/B0/token123", "SECRET", actor="alice")
    with transaction(engine) as s:
        [audit] = s.scalars(select(SettingsAudit)).all()
        assert (audit.actor, audit.action) == ("alice", "alerts.webhook")
        assert "token123" not in json.dumps(audit.after)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_check_soon_evaluates_at_most_once_per_interval(engine: Engine) -> None:
    AlertConfigStore(engine).set_hourly_spend(1.0, actor="test")
    add_rollup(engine, datetime.now(UTC).replace(minute=0, second=0, microsecond=0), 2.0)
    clock = Clock()
    alerts = Alerts(engine, clock=clock)
    first = alerts.check_soon()
    assert first is not None
    first.join(timeout=30)
    assert [rule for rule, _ in alert_rows(engine)] == ["hourly_spend"]
    assert alerts.check_soon() is None  # within the minute: nothing started
    clock.now += 60
    again = alerts.check_soon()
    assert again is not None
    again.join(timeout=30)
    assert len(alert_rows(engine)) == 1  # same window: the unique key keeps it at one


def test_acknowledge_hides_an_alert_from_the_banner_list(engine: Engine) -> None:
    alerts = Alerts(engine)
    fired = alerts.provider_cooldown("primary")
    assert fired is not None and [a.id for a in alerts.unacknowledged()] == [fired.id]
    seen = alerts.acknowledge(fired.id, actor="alice")
    assert seen.acknowledged_at is not None and alerts.unacknowledged() == []
    with pytest.raises(NotFound, match="no alert 999"):
        alerts.acknowledge(999, actor="alice")
    alerts.acknowledge(fired.id, actor="bob")  # already seen: no second entry
    with engine.connect() as conn:
        audit = conn.execute(
            select(SettingsAudit.actor, SettingsAudit.action, SettingsAudit.target).where(
                SettingsAudit.action == "alert.acknowledge"
            )
        ).all()
    assert audit == [("alice", "alert.acknowledge", fired.rule)]


def test_signature_is_hmac_sha256_of_the_body() -> None:
    body = b'{"kind": "test"}'
    assert sign(body, "k") == "sha256=" + hmac.new(b"k", body, hashlib.sha256).hexdigest()
