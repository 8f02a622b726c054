"""`gatehouse alerts set|webhook|list|test|check`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gatehouse_core.db import make_engine
from tests.core.cli import ok, run
from tests.core.test_spend_alerts import SECRET, Receiver, verified
from tests.core.test_spend_budgets import add_rollup


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """stderr of a command argparse refuses (exit code 2)."""
    with pytest.raises(SystemExit) as caught:
        run(capsys, *argv)
    assert caught.value.code == 2
    return capsys.readouterr().err


def test_rules_are_set_listed_and_audited(capsys: pytest.CaptureFixture[str]) -> None:
    assert "$50.00" in ok(capsys, "alerts", "set", "--hourly-spend", "50")
    assert "50%, 80%, 90%" in ok(capsys, "alerts", "set", "--budget-thresholds", "90,50,80")
    listed = json.loads(ok(capsys, "alerts", "list", "--json"))
    assert listed["rules"] == {
        "hourly_spend_usd": 50.0,
        "budget_thresholds": [50, 80, 90],
        "webhook_url": None,
        "secret_env": None,
    }
    assert listed["alerts"] == [] and listed["deliveries"] == []
    history = json.loads(ok(capsys, "history", "--json"))
    assert [h["action"] for h in history][:2] == ["alerts.budget_thresholds", "alerts.hourly_spend"]


def test_bad_thresholds_are_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "alerts", "set", "--budget-thresholds", "50,x")
    assert "whole percents" in err


def test_webhook_test_and_check_deliver_signed_posts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    with Receiver([]) as receiver:
        out = ok(capsys, "alerts", "webhook", receiver.url, "--secret-env", "HOOK_SECRET")
        assert "signed with $HOOK_SECRET" in out and "secret-path" not in out
        assert "try 1: delivered" in ok(capsys, "alerts", "test")
        ok(capsys, "alerts", "set", "--hourly-spend", "1")
        add_rollup(make_engine(), datetime.now(UTC).replace(minute=0, second=0, microsecond=0), 3)
        assert "fired: GateHouse spent $3.00" in ok(capsys, "alerts", "check")
        assert "No new alerts." in ok(capsys, "alerts", "check")
        assert len(receiver.requests) == 2 and all(verified(h, b) for h, b in receiver.requests)
    listed = json.loads(ok(capsys, "alerts", "list", "--json"))
    assert [a["kind"] for a in listed["alerts"]] == ["hourly_spend", "test"]
    assert [d["status"] for d in listed["deliveries"]] == ["delivered", "delivered"]
    assert "secret-path" not in json.dumps(listed)


def test_test_without_a_webhook_says_how_to_add_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "alerts", "test")
    assert code == 1 and "gatehouse alerts webhook URL" in err


def test_secret_is_never_taken_as_an_argument(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "alerts", "webhook", "https://h.example/x", "--secret-env", "a b")
    assert code == 1 and "environment variable name" in err
