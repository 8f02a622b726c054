"""The shell (app.py): first-admin setup, sign-in, roles and navigation, sidebar, sign-out."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from streamlit.testing.v1 import AppTest

from gatehouse_core.auth import LockoutPolicy, UserStore
from gatehouse_core.sessions import SessionStore
from tests.conftest import POSTGRES_ADMIN_URL
from tests.console.conftest import PASSWORD, nav_pages, new_app, sign_in


def setup_admin(at: AppTest, username: str, password: str, confirm: str | None = None) -> AppTest:
    at.text_input(key="first_admin_username").set_value(username)
    at.text_input(key="first_admin_password").set_value(password)
    at.text_input(key="first_admin_confirm").set_value(password if confirm is None else confirm)
    return at.button(key="first_admin_submit").click().run()


# ---- first run ---------------------------------------------------------------------------


def test_first_run_shows_only_the_first_admin_form() -> None:
    at = new_app().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Welcome to GateHouse"]
    assert [b.key for b in at.button] == ["first_admin_submit"]
    assert len(at.sidebar) == 0
    assert nav_pages(at) == ["Set up GateHouse"]


def test_first_admin_form_shows_errors_inline_and_creates_nothing(users: UserStore) -> None:
    at = setup_admin(new_app().run(), "Bad Name!", "short")
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("not a valid username" in e for e in errors)
    assert any("at least 8 characters" in e for e in errors)
    at = setup_admin(at, "alice", PASSWORD, confirm="different-1")
    assert [e.value for e in at.error] == ["the two passwords differ"]
    assert not users.has_users()
    assert at.text_input(key="first_admin_password").value == ""  # never sent back


def test_first_admin_is_created_and_signed_in(users: UserStore) -> None:
    at = setup_admin(new_app().run(), "alice", PASSWORD)
    assert not at.exception
    assert users.get("alice").role == "admin"
    assert "**alice**" in at.sidebar.markdown[0].value
    assert nav_pages(at) == [
        "Overview",
        "Costs",
        "Requests",
        "Budgets & alerts",
        "Playground",
        "Models",
        "Providers",
        "Users",
        "API tokens",
        "Change history",
    ]
    assert any("Welcome, alice" in s.value for s in at.success)
    # The setup form is gone for good: a new browser session gets the sign-in form.
    fresh = new_app().run()
    assert [t.value for t in fresh.title] == ["Sign in to GateHouse"]


# ---- sign-in -----------------------------------------------------------------------------


def test_wrong_password_is_refused(users: UserStore) -> None:
    users.create("alice", PASSWORD, "admin", actor="seed")
    at = sign_in(new_app().run(), "alice", "wrong-password")
    assert not at.exception
    assert [e.value for e in at.error] == ["Wrong username or password."]
    assert at.text_input(key="signin_password").value == ""
    assert nav_pages(at) == ["Sign in"]


def test_repeated_failures_show_when_to_retry(users: UserStore) -> None:
    users.create("alice", PASSWORD, "viewer", actor="seed")
    at = new_app().run()
    for _ in range(LockoutPolicy().max_failures):
        at = sign_in(at, "alice", "wrong-password")
    assert "Too many failed sign-ins for 'alice'. Try again after" in at.error[0].value
    at = sign_in(at, "alice", PASSWORD)
    assert "Too many failed sign-ins" in at.error[0].value
    assert nav_pages(at) == ["Sign in"]


def test_disabled_user_cannot_sign_in(users: UserStore) -> None:
    users.create("alice", PASSWORD, "admin", actor="seed")
    users.create("bob", PASSWORD, "viewer", actor="seed")
    users.set_disabled("bob", True, actor="alice")
    at = sign_in(new_app().run(), "bob")
    assert "disabled" in at.error[0].value


def test_disabling_a_signed_in_user_ends_their_session(
    app_as: Callable[[str], AppTest], users: UserStore
) -> None:
    users.create("root", PASSWORD, "admin", actor="seed")
    at = app_as("viewer")
    users.set_disabled("viewer", True, actor="root")
    at.run()
    assert [t.value for t in at.title] == ["Sign in to GateHouse"]
    assert "disabled or removed" in at.info[0].value


def test_sign_out_ends_the_session(app_as: Callable[[str], AppTest]) -> None:
    at = app_as("operator")
    at.button(key="signout").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Sign in to GateHouse"]
    assert at.info[0].value == "You have been signed out."
    assert "pg_history" not in at.session_state
    at.run()
    assert nav_pages(at) == ["Sign in"]


# ---- roles and navigation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "pages"),
    [
        (
            "admin",
            [
                "Overview",
                "Costs",
                "Requests",
                "Budgets & alerts",
                "Playground",
                "Models",
                "Providers",
                "Users",
                "API tokens",
                "Change history",
            ],
        ),
        (
            "operator",
            ["Overview", "Costs", "Requests", "Budgets & alerts", "Playground", "Models"],
        ),
        ("viewer", ["Overview", "Costs", "Requests", "Budgets & alerts", "Models"]),
    ],
)
def test_navigation_holds_only_the_roles_pages(
    app_as: Callable[[str], AppTest], role: str, pages: list[str]
) -> None:
    assert nav_pages(app_as(role)) == pages


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_providers_page_cannot_be_opened_without_admin(
    app_as: Callable[[str], AppTest], role: str
) -> None:
    at = app_as(role)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/providers.py")


def test_viewer_lands_on_overview_and_cannot_open_playground(
    app_as: Callable[[str], AppTest],
) -> None:
    at = app_as("viewer")
    assert [t.value for t in at.title] == ["Overview"]
    with pytest.raises(ValueError):
        at.switch_page("pages/playground.py")


def test_page_guard_stops_a_role_without_permission() -> None:
    def page() -> None:
        import streamlit as st

        from gatehouse_core.ui import guard, session

        session.sign_in(session.SignedIn("vera", "viewer"))
        guard.require("providers")
        st.write("secret admin content")

    at = AppTest.from_function(page, default_timeout=30).run()
    assert "Your role (viewer) may not manage providers" in at.error[0].value
    assert not [m for m in at.markdown if "secret admin content" in m.value]


# ---- sidebar -----------------------------------------------------------------------------


def test_sidebar_shows_user_environment_and_provider_summary(
    app_as: Callable[[str], AppTest], fake_provider: Callable[..., str]
) -> None:
    fake_provider("primary")
    fake_provider("backup", api_key=None, priority=2)
    at = app_as("viewer")
    sidebar = [m.value for m in at.sidebar.markdown]
    assert sidebar[0].endswith("**viewer**  \nviewer")
    assert any("**sqlite**" in m for m in sidebar)
    assert any("secrets key from GATEHOUSE_SECRETS_KEY" in m for m in sidebar)
    assert any("**2** of 2 enabled" in m for m in sidebar)
    assert any("backup without a usable key" in m for m in sidebar)
    assert not at.sidebar.warning


def test_development_secrets_key_is_a_loud_warning(
    app_as: Callable[[str], AppTest], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEHOUSE_SECRETS_KEY")
    at = app_as("viewer")
    assert "Development secrets key in use" in at.sidebar.warning[0].value


def test_unreachable_database_shows_cause_and_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "GATEHOUSE_DATABASE_URL", "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/nowhere"
    )
    at = new_app().run()
    assert not at.exception
    message = at.error[0].value
    assert "Cannot reach the database" in message and "GATEHOUSE_DATABASE_URL" in message
    assert "hunter2" not in message


# ---- single sign-on ------------------------------------------------------------------------

SSO_SECRETS = {
    "auth": {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "x" * 32,
        "client_id": "gatehouse",
        "client_secret": "not-a-real-secret",
        "server_metadata_url": "https://idp.example/.well-known/openid-configuration",
    },
    "gatehouse": {"sso_roles": {"ann@example.com": "admin", "@example.com": "viewer"}},
}


def sso_app(users: UserStore, email: str | None, logged_in: bool = True) -> AppTest:
    users.create("local-admin", PASSWORD, "admin", actor="seed")
    at = new_app()
    at.secrets.update(SSO_SECRETS)
    at.user = {"is_logged_in": logged_in, "email": email}
    return at.run()


def test_sso_is_offered_when_configured(users: UserStore) -> None:
    at = sso_app(users, None, logged_in=False)
    assert at.button(key="signin_sso_default").label == "Sign in with single sign-on"


def test_sso_identity_gets_its_mapped_role(users: UserStore) -> None:
    at = sso_app(users, "Ann@Example.com")
    assert not at.exception
    assert at.sidebar.markdown[0].value.startswith(":material/account_circle: **ann@example.com**")
    assert nav_pages(at) == [
        "Overview",
        "Costs",
        "Requests",
        "Budgets & alerts",
        "Playground",
        "Models",
        "Providers",
        "Users",
        "API tokens",
        "Change history",
    ]


def test_sso_identity_without_a_mapping_is_refused(users: UserStore) -> None:
    at = sso_app(users, "eve@elsewhere.org")
    assert "eve@elsewhere.org may not use this console" in at.error[0].value
    assert nav_pages(at) == ["Sign in"]


def test_setup_and_sign_in_on_postgresql(postgres_url: str, users: UserStore) -> None:
    at = setup_admin(new_app().run(), "alice", PASSWORD)
    assert not at.exception
    assert users.get("alice").role == "admin"
    assert any("**postgresql**" in m.value for m in at.sidebar.markdown)
    at = sign_in(new_app().run(), "alice")
    assert nav_pages(at) == [
        "Overview",
        "Costs",
        "Requests",
        "Budgets & alerts",
        "Playground",
        "Models",
        "Providers",
        "Users",
        "API tokens",
        "Change history",
    ]


def test_database_lost_mid_session_shows_cause_not_traceback(
    postgres_url: str, app_as: Callable[[str], AppTest]
) -> None:
    at = app_as("admin")
    name = make_url(postgres_url).database
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()
    at.run()
    assert not at.exception
    assert "Cannot reach the database" in at.error[0].value


def test_unexpected_error_is_one_scrubbed_line() -> None:
    def page() -> None:
        from gatehouse_core.ui.errors import shown

        with shown():
            raise RuntimeError("boom with sk-or-v1-0123456789abcdef0123 inside")

    at = AppTest.from_function(page, default_timeout=30).run()
    assert not at.exception
    message = at.error[0].value
    assert message.startswith("Unexpected error (RuntimeError): boom with [REDACTED] inside")
    assert "sk-or-v1-0123456789abcdef0123" not in message


# ---- server-side sessions, lockout message, deep links ---------------------------------------


def test_unknown_username_gets_the_same_lockout_as_a_real_one(users: UserStore) -> None:
    users.create("alice", PASSWORD, "viewer", actor="seed")
    messages = {}
    for name in ("alice", "ghost"):
        at = new_app().run()
        for _ in range(LockoutPolicy().max_failures):
            at = sign_in(at, name, "wrong-password")
        # The same words; only the name and the clock time may differ.
        text = at.error[0].value.replace(repr(name), "NAME")
        messages[name] = re.sub(r"\d\d:\d\d UTC \(in \d+ minutes?\)", "TIME", text)
    assert messages["alice"] == messages["ghost"]
    assert messages["ghost"].startswith("Too many failed sign-ins for NAME. Try again after")


def test_sign_in_creates_a_server_side_session_and_sign_out_revokes_it(
    app_as: Callable[[str], AppTest], users: UserStore
) -> None:
    sessions = SessionStore(users.engine)
    at = app_as("operator")
    [live] = sessions.list_for("operator")
    at.button(key="signout").click().run()
    assert sessions.list_for("operator") == []
    assert sessions.resolve_id(live.id) is None


def test_sign_out_everywhere_ends_the_users_other_tabs(
    app_as: Callable[[str], AppTest], users: UserStore
) -> None:
    at = app_as("viewer")
    other_tab = sign_in(new_app().run(), "viewer")
    at.button(key="signout_everywhere").click().run()
    assert at.info[0].value == "You have been signed out everywhere."
    other_tab.run()
    assert "Your session has ended" in other_tab.info[0].value
    assert nav_pages(other_tab) == ["Sign in"]


def test_sso_sign_in_gets_a_session_too(users: UserStore) -> None:
    at = sso_app(users, "ann@example.com")
    assert not at.exception
    [live] = SessionStore(users.engine).list_for("ann@example.com")
    assert (live.role, live.via) == ("admin", "sso")


def test_signed_out_door_answers_every_console_url(users: UserStore) -> None:
    users.create("alice", PASSWORD, "admin", actor="seed")
    at = new_app().run()
    paths = {str(info.get("url_pathname", "")) for info in at._registered_pages.values()}
    assert {"chat", "catalog", "ai-providers", "people"} <= paths  # no "Page not found"
