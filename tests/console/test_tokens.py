"""The API tokens page (admin): create (the token shown once), list with usage, revoke."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from gatehouse_core.db import make_engine, transaction
from gatehouse_core.schema import ApiToken, SettingsAudit
from gatehouse_core.tokens import TokenStore, hash_token
from gatehouse_core.ui.session import SESSION_KEY
from tests.console.conftest import APP, texts
from tests.spend_rows import request_row, store

TOKENS_PAGE = "pages/tokens.py"
NOW = datetime.now(UTC)
MONTH = NOW.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
EARLIER = MONTH + (NOW - MONTH) / 2


@pytest.fixture
def tokens() -> TokenStore:
    return TokenStore(make_engine())


@pytest.fixture
def admin_tokens(app_as: Callable[[str], AppTest]) -> AppTest:
    signed_in = app_as("admin")
    at = AppTest.from_file(APP.parent / TOKENS_PAGE, default_timeout=30)
    at.session_state[SESSION_KEY] = signed_in.session_state[SESSION_KEY]
    at = at.run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["API tokens"]
    return at


def listed(at: AppTest) -> list[dict[str, object]]:
    return at.dataframe[0].value.to_dict("records")


def token_actions(tokens: TokenStore) -> list[str]:
    with transaction(tokens.engine) as s:
        query = select(SettingsAudit.action).where(SettingsAudit.action.like("token.%"))
        return list(s.scalars(query.order_by(SettingsAudit.id)))


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_tokens_page_is_admin_only(app_as: Callable[[str], AppTest], role: str) -> None:
    at = app_as(role)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(TOKENS_PAGE)


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_the_page_script_itself_refuses_other_roles(
    app_as: Callable[[str], AppTest], role: str, tokens: TokenStore
) -> None:
    tokens.create("svc", "operator", actor="seed")
    signed_in = app_as(role)
    at = AppTest.from_file(APP.parent / TOKENS_PAGE, default_timeout=30)
    at.session_state[SESSION_KEY] = signed_in.session_state[SESSION_KEY]
    at = at.run()
    assert f"Your role ({role}) may not manage API tokens" in at.error[0].value
    assert "svc" not in texts(at)


def test_create_shows_the_token_once_then_never(admin_tokens: AppTest, tokens: TokenStore) -> None:
    at = admin_tokens
    at.text_input(key="tokens_name").set_value("billing-worker")
    at.selectbox(key="tokens_role").set_value("operator")
    at.number_input(key="tokens_monthly").set_value(20.0)
    at.number_input(key="tokens_rpm").set_value(60)
    at.text_input(key="tokens_models").set_value("openai/*, anthropic/claude-*")
    at.text_input(key="tokens_expires").set_value("30d")
    at = at.button(key="tokens_create").click().run()
    assert not at.exception
    (code,) = at.code
    token = code.value
    assert token.startswith("gh_") and len(token) > 40
    assert "shown only this once" in at.warning[0].value
    info = tokens.verify(token)
    assert (info.name, info.role, info.monthly_usd, info.rpm) == (
        "billing-worker",
        "operator",
        20.0,
        60,
    )
    assert info.models == ("openai/*", "anthropic/claude-*") and info.expires_at is not None
    (row,) = listed(at)
    assert row["Token"] == token[:7] + "…" and row["Requests/min"] == 60
    assert hash_token(token) not in texts(at)
    at = at.run()  # any rerun: the token is gone for good
    assert not at.code and token not in texts(at)
    assert hash_token(token) not in texts(at)
    assert token_actions(tokens) == ["token.create"]


@pytest.mark.parametrize(
    ("name", "models", "expires", "field", "message"),
    [
        ("Bad Name!", "", "", "name", "is not a valid token name"),
        ("ok", "not a pattern", "", "models", "is not a model pattern"),
        ("ok", "", "soon", "expires", ""),
    ],
)
def test_bad_input_is_explained_and_nothing_saved(
    admin_tokens: AppTest,
    tokens: TokenStore,
    name: str,
    models: str,
    expires: str,
    field: str,
    message: str,
) -> None:
    at = admin_tokens
    at.text_input(key="tokens_name").set_value(name)
    at.text_input(key="tokens_models").set_value(models)
    at.text_input(key="tokens_expires").set_value(expires)
    at = at.button(key="tokens_create").click().run()
    assert not at.exception
    assert at.error and message in at.error[0].value
    assert not at.code
    assert tokens.list() == [] and token_actions(tokens) == []


def test_a_duplicate_name_is_refused(admin_tokens: AppTest, tokens: TokenStore) -> None:
    tokens.create("svc", "viewer", actor="seed")
    at = admin_tokens
    at.text_input(key="tokens_name").set_value("svc")
    at = at.button(key="tokens_create").click().run()
    assert "already exists" in at.error[0].value and not at.code
    assert len(tokens.list()) == 1


def test_list_shows_usage_this_month_and_never_the_hash(
    admin_tokens: AppTest, tokens: TokenStore
) -> None:
    _, token = tokens.create("svc", "operator", actor="seed", monthly_usd=5.0)
    store(
        tokens.engine,
        [
            request_row("r1", EARLIER, actor="token:svc", source="api", cost_usd=0.75),
            request_row("r2", EARLIER, actor="token:svc", source="api", cost_usd=0.25),
            request_row("r3", EARLIER, actor="alice", cost_usd=9.0),
        ],
    )
    at = admin_tokens.run()
    (row,) = listed(at)
    assert row["Spent this month"] == "$1.00" and row["Calls this month"] == 2
    assert row["Monthly limit"] == "$5.00" and row["Status"] == "active"
    assert row["Last use"] == "never" and row["Models"] == "any"
    with transaction(tokens.engine) as s:
        stored = s.scalar(select(ApiToken.token_hash))
    assert stored not in texts(at) and token not in texts(at)


def test_revoke_needs_confirmation_and_is_audited(
    admin_tokens: AppTest, tokens: TokenStore
) -> None:
    _, token = tokens.create("svc", "operator", actor="seed")
    at = admin_tokens.run()
    at = at.button(key="tokens_revoke").click().run()
    assert "Tick" in at.warning[0].value
    assert tokens.get("svc").revoked_at is None
    at = at.checkbox(key="tokens_revoke_confirm").check().run()
    at = at.button(key="tokens_revoke").click().run()
    assert [s.value for s in at.success] == [
        "Revoked the API token svc: calls with it are refused from now on."
    ]
    assert tokens.get("svc").revoked_at is not None
    assert listed(at)[0]["Status"] == "revoked"
    assert "No active token." in [c.value for c in at.caption]
    assert token_actions(tokens) == ["token.create", "token.revoke"]


def test_a_demoted_admin_is_refused(admin_tokens: AppTest, tokens: TokenStore) -> None:
    at = admin_tokens
    at.text_input(key="tokens_name").set_value("svc")
    at.session_state[SESSION_KEY] = {**dict(at.session_state[SESSION_KEY]), "role": "operator"}
    at = at.button(key="tokens_create").click().run()
    assert any("may not manage API tokens" in e.value for e in at.error)
    assert tokens.list() == [] and not at.code
