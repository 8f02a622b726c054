"""`gatehouse tokens create|list|revoke`: the token printed once, never listed, revocable."""

from __future__ import annotations

import json

import pytest

from gatehouse_core.db import make_engine
from gatehouse_core.tokens import TokenStore
from tests.core.cli import ok, run


def test_create_prints_the_token_once_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    out = ok(capsys, "tokens", "create", "ci", "--role", "operator")
    token = out.strip()
    assert token.startswith("gh_") and "\n" not in token
    assert TokenStore(make_engine()).verify(token).name == "ci"


def test_create_json_has_the_token_and_every_limit(capsys: pytest.CaptureFixture[str]) -> None:
    out = ok(
        capsys,
        *("tokens", "create", "ci", "--role", "viewer", "--monthly-usd", "2.5", "--rpm", "10"),
        *("--models", "openai/*,anthropic/*", "--expires", "30d", "--json"),
    )
    data = json.loads(out)
    assert data["token"].startswith("gh_")
    assert data["role"] == "viewer" and data["monthly_usd"] == 2.5 and data["rpm"] == 10
    assert data["models"] == ["openai/*", "anthropic/*"] and data["expires_at"]
    assert data["status"] == "active"


def test_list_never_shows_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    token = ok(capsys, "tokens", "create", "ci", "--role", "admin").strip()
    table = ok(capsys, "tokens", "list")
    listed = json.loads(ok(capsys, "tokens", "list", "--json"))
    assert token not in table and token not in json.dumps(listed)
    assert token[:7] + "…" in table
    assert [t["name"] for t in listed] == ["ci"]
    assert set(listed[0]) >= {"name", "role", "prefix", "status", "last_used_at", "expires_at"}


def test_revoke_then_the_token_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "tokens", "create", "ci", "--role", "admin")
    assert "Revoked API token ci" in ok(capsys, "tokens", "revoke", "ci")
    assert json.loads(ok(capsys, "tokens", "list", "--json"))[0]["status"] == "revoked"
    history = json.loads(ok(capsys, "history", "--json"))
    assert [h["action"] for h in history][:2] == ["token.revoke", "token.create"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--role", "root"), "invalid choice"),
        (("--role", "admin", "--rpm", "0"), "not a whole number of at least 1"),
        (("--role", "admin", "--monthly-usd", "-3"), "not a positive amount of USD"),
    ],
)
def test_bad_options_are_refused_by_the_parser(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SystemExit) as caught:
        run(capsys, "tokens", "create", "ci", *args)
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--expires", "soon"), "expires: 'soon' is not a time span"),
        (("--models", "bad pattern"), "models: 'bad pattern' is not a model pattern"),
    ],
)
def test_bad_values_fail_with_one_clear_line(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, out, err = run(capsys, "tokens", "create", "ci", "--role", "admin", *args)
    assert code == 1 and out == ""
    assert message in err and "Traceback" not in err
    assert TokenStore(make_engine()).list() == []


def test_revoking_an_unknown_token_fails_clearly(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "tokens", "revoke", "nope")
    assert code == 1 and "No API token named 'nope'" in err


def test_list_shows_this_months_calls_and_spend(capsys: pytest.CaptureFixture[str]) -> None:
    ok(capsys, "tokens", "create", "ci", "--role", "operator")
    [listed] = json.loads(ok(capsys, "tokens", "list", "--json"))
    assert (listed["month_calls"], listed["month_cost_usd"]) == (0, 0.0)
    assert "SPENT $" in ok(capsys, "tokens", "list")
