"""`gatehouse providers set-management-key` and `gatehouse reconcile` through the real CLI entry
point, against the fake OpenRouter's analytics endpoint, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from gatehouse_core.audit import _insert_batch, normalize_row
from gatehouse_core.registry import Registry
from tests.core.cli import ok, run
from tests.fakes.openrouter import DEFAULT_KEY, Error, FakeOpenRouter

MGMT_KEY = "sk-or-v1-management-key-00005e7c"
MODEL = "openai/gpt-4o-mini"
ROW_KEYS = {
    "day",
    "provider",
    "model",
    "ours_usd",
    "openrouter_usd",
    "drift_usd",
    "drift_pct",
    "ours_requests",
    "openrouter_requests",
    "corrected_generations",
}


@pytest.fixture
def provider(
    db_url: str, capsys: pytest.CaptureFixture[str], fake_openrouter: FakeOpenRouter
) -> str:
    ok(
        capsys,
        "providers", "add", "primary", "--base-url", fake_openrouter.base_url,
        "--model", MODEL, "--api-key-stdin",
        stdin=DEFAULT_KEY + "\n",
    )  # fmt: skip
    return "primary"


@pytest.fixture
def yesterday_billed(engine: Engine, fake_openrouter: FakeOpenRouter) -> datetime:
    """A call we recorded as a timeout at $0 yesterday (UTC) that OpenRouter billed."""
    when = datetime.now(UTC).replace(hour=12, minute=0) - timedelta(days=1)
    row = {
        "request_id": "r1",
        "attempt": 1,
        "created_at": when,
        "provider": "primary",
        "model": MODEL,
        "status": "error",
        "error_type": "timeout",
        "generation_id": "gen-1",
        "final_attempt": True,
    }
    _insert_batch(engine, [normalize_row(row)], dedup=False)
    fake_openrouter.bill("gen-1", MODEL, 0.042, when)
    return when


def set_management_key(capsys: pytest.CaptureFixture[str], key: str = MGMT_KEY) -> str:
    return ok(capsys, "providers", "set-management-key", "primary", "--api-key-stdin", stdin=key)


@pytest.mark.usefixtures("provider")
def test_set_management_key_is_stored_masked_and_audited(
    capsys: pytest.CaptureFixture[str], engine: Engine
) -> None:
    shown = json.loads(ok(capsys, "providers", "show", "primary", "--json"))
    assert shown["management_key"] is None
    out = set_management_key(capsys)
    assert "sk-or-…5e7c" in out and MGMT_KEY not in out
    shown = json.loads(ok(capsys, "providers", "show", "primary", "--json"))
    assert shown["management_key"] == "sk-or-…5e7c"
    [listed] = json.loads(ok(capsys, "providers", "list", "--json"))
    assert listed["management_key"] == "sk-or-…5e7c"
    assert "mgmt key       sk-or-…5e7c" in ok(capsys, "providers", "show", "primary")
    from gatehouse_core.crypto import SecretBox

    [entry] = [
        e
        for e in Registry(engine, SecretBox.from_env()).history()
        if e.action == "provider.set_management_key"
    ]
    assert (entry.before, entry.after) == (
        {"management_key": None},
        {"management_key": "sk-or-…5e7c"},
    )


@pytest.mark.usefixtures("provider")
def test_set_management_key_from_an_environment_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OR_MGMT", MGMT_KEY)
    out = ok(capsys, "providers", "set-management-key", "primary", "--api-key-env", "OR_MGMT")
    assert "sk-or-…5e7c" in out


@pytest.mark.usefixtures("provider")
def test_reconcile_json_has_the_documented_shape_and_corrects_the_billed_timeout(
    capsys: pytest.CaptureFixture[str],
    fake_openrouter: FakeOpenRouter,
    yesterday_billed: datetime,
) -> None:
    set_management_key(capsys)
    fake_openrouter.add_management_key(MGMT_KEY)
    code, out, err = run(capsys, "reconcile", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["timezone"] == "UTC"
    [row] = data["rows"]
    assert set(row) == ROW_KEYS
    assert row["day"] == yesterday_billed.date().isoformat()
    assert (row["ours_usd"], row["openrouter_usd"], row["corrected_generations"]) == (
        pytest.approx(0.042),
        pytest.approx(0.042),
        1,
    )
    [day] = data["days"]
    assert day["ok"] and day["error"] is None and day["generations_checked"]
    assert MGMT_KEY not in out + err
    # The table form, run again: nothing left to correct.
    table = ok(capsys, "reconcile", "--day", yesterday_billed.date().isoformat())
    assert MODEL in table and "0 generation(s) corrected" in table


@pytest.mark.usefixtures("provider")
def test_reconcile_without_a_management_key_says_how_to_set_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "reconcile")
    assert code == 1
    assert "set-management-key NAME --api-key-stdin" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("provider")
def test_reconcile_with_a_refused_key_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    set_management_key(capsys)  # the fake does not know this key: 401
    code, out, err = run(capsys, "reconcile", "--since", "2d")
    assert code == 1
    assert "refused the management key of primary (401" in err
    assert MGMT_KEY not in out + err


@pytest.mark.usefixtures("provider")
def test_a_ledger_timeout_fails_the_day_and_exits_1(
    capsys: pytest.CaptureFixture[str], fake_openrouter: FakeOpenRouter
) -> None:
    set_management_key(capsys)
    fake_openrouter.add_management_key(MGMT_KEY)
    fake_openrouter.fail_analytics(Error(408))
    code, out, err = run(capsys, "reconcile", "--since", "2d", "--json")
    assert code == 1
    first, second = json.loads(out)["days"]
    assert not first["ok"] and "HTTP 408" in first["error"]
    assert second["ok"]
    assert "error: primary" in err and "HTTP 408" in err


@pytest.mark.usefixtures("provider")
def test_bad_ranges_are_refused_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "reconcile", "--since", "1w")
    assert code == 1 and "is not a number of days" in err
    code, _, err = run(capsys, "reconcile", "--day", "yesterday")
    assert code == 1 and "is not a date" in err
    with pytest.raises(SystemExit) as exited:  # argparse: the two are exclusive
        run(capsys, "reconcile", "--day", "2026-11-01", "--since", "7d")
    assert exited.value.code == 2


def test_set_management_key_needs_the_api_key_first(
    db_url: str, capsys: pytest.CaptureFixture[str], fake_openrouter: FakeOpenRouter
) -> None:
    ok(
        capsys,
        "providers", "add", "bare", "--base-url", fake_openrouter.base_url, "--model", MODEL,
    )  # fmt: skip
    code, _, err = run(
        capsys, "providers", "set-management-key", "bare", "--api-key-stdin", stdin=MGMT_KEY
    )
    assert code == 1 and "no API key stored" in err and MGMT_KEY not in err
