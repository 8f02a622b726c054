"""`gatehouse budgets set|list|remove`: audited changes, month-to-date spend, clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gatehouse_core.db import make_engine
from gatehouse_core.spend.budget_rules import month_start
from tests.core.cli import ok, run
from tests.core.test_spend_budgets import add_rollup


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """stderr of a command argparse refuses (exit code 2)."""
    with pytest.raises(SystemExit) as caught:
        run(capsys, *argv)
    assert caught.value.code == 2
    return capsys.readouterr().err


def test_set_list_remove_round_trip(capsys: pytest.CaptureFixture[str]) -> None:
    assert "global budget: $50.00 a month, action block" in ok(
        capsys, "budgets", "set", "--monthly", "50"
    )
    ok(capsys, "budgets", "set", "--monthly", "$5", "--provider", "primary", "--action", "alert")
    add_rollup(make_engine(), month_start(datetime.now(UTC), ZoneInfo("UTC")), 2.5)
    listed = json.loads(ok(capsys, "budgets", "list", "--json"))
    assert [(b["scope"], b["value"], b["action"], b["spent_usd"]) for b in listed] == [
        ("global", None, "block", 2.5),
        ("provider", "primary", "alert", 2.5),
    ]
    assert listed[1]["used_percent"] == 50.0 and listed[1]["reserved_usd"] == 0.0
    assert set(listed[0]) == {
        "scope", "value", "monthly_usd", "action", "spent_usd", "reserved_usd", "used_percent",
        "month_start",
    }  # fmt: skip
    table = ok(capsys, "budgets", "list")
    assert "primary" in table and "50.0%" in table
    assert "Removed the provider budget 'primary'" in ok(
        capsys, "budgets", "remove", "--provider", "primary"
    )
    history = json.loads(ok(capsys, "history", "--json"))
    assert [h["action"] for h in history][:3] == ["budget.remove", "budget.set", "budget.set"]


def test_list_without_budgets_says_how_to_add_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert "gatehouse budgets set --monthly" in ok(capsys, "budgets", "list")


@pytest.mark.parametrize("amount", ["0", "-3", "lots"])
def test_a_bad_amount_is_a_usage_error_naming_it(
    capsys: pytest.CaptureFixture[str], amount: str
) -> None:
    err = usage_error(capsys, "budgets", "set", "--monthly", amount)
    assert "is not an amount of USD above 0" in err and "Traceback" not in err


def test_removing_a_missing_budget_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "budgets", "remove", "--actor", "bob")
    assert code == 1 and out == ""
    assert err.strip() == (
        "error: there is no actor budget 'bob'; `gatehouse budgets list` shows the budgets"
    )


def test_only_one_scope_at_a_time(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "budgets", "set", "--monthly", "5", "--provider", "a", "--actor", "b")
    assert "not allowed with argument" in err
