"""The Users page (admin): list, add, role, disable/enable, unlock, reset password, sessions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from gatehouse_core.auth import UserStore
from gatehouse_core.db import transaction
from gatehouse_core.errors import AuthError
from gatehouse_core.schema import SettingsAudit
from gatehouse_core.sessions import SessionStore
from gatehouse_core.ui.session import SESSION_KEY
from tests.console.conftest import APP, PASSWORD, new_app, sign_in, texts

USERS_PAGE = "pages/users.py"


@pytest.fixture
def admin_users(app_as: Callable[[str], AppTest]) -> AppTest:
    """The Users page script itself, run by an admin who signed in through the form.

    The page runs as its own script (its guard reads the signed-in user from the session),
    so reruns stay on it; that the navigation offers it only to admins is tested above.
    """
    signed_in = app_as("admin")
    at = AppTest.from_file(APP.parent / USERS_PAGE, default_timeout=30)
    at.session_state[SESSION_KEY] = signed_in.session_state[SESSION_KEY]
    at = at.run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Users"]
    return at


def reopen(at: AppTest) -> AppTest:
    return at.run()


def pick(at: AppTest, username: str) -> AppTest:
    return at.selectbox(key="users_pick").set_value(username).run()


def actions(users: UserStore) -> list[str]:
    with transaction(users.engine) as s:
        return list(s.scalars(select(SettingsAudit.action).order_by(SettingsAudit.id)))


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_users_page_is_admin_only(app_as: Callable[[str], AppTest], role: str) -> None:
    at = app_as(role)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(USERS_PAGE)


def test_lists_users_with_role_and_status(admin_users: AppTest, users: UserStore) -> None:
    users.create("bob", PASSWORD, "viewer", actor="seed")
    users.set_disabled("bob", True, actor="seed")
    at = reopen(admin_users)
    table = at.dataframe[0].value
    assert list(table["Username"]) == ["admin", "bob"]
    assert list(table["Status"]) == ["active", "disabled"]
    assert list(table["Signed in (sessions)"]) == [1, 0]


def test_added_user_gets_a_generated_password_shown_once(
    admin_users: AppTest, users: UserStore
) -> None:
    at = admin_users
    at.text_input(key="users_add_username").set_value("carol")
    at.selectbox(key="users_add_role").set_value("operator")
    at = at.button(key="users_add_submit").click().run()
    assert not at.exception
    password = at.code[0].value
    assert len(password) >= 16 and "shown only this once" in at.warning[0].value
    assert users.authenticate("carol", password).role == "operator"
    at = reopen(at)
    assert [t.value for t in at.title] == ["Users"]
    assert not at.code and password not in texts(at)


def test_add_with_a_bad_name_or_short_password_saves_nothing(
    admin_users: AppTest, users: UserStore
) -> None:
    at = admin_users
    at.text_input(key="users_add_username").set_value("Bad Name!")
    at.text_input(key="users_add_password").set_value("short")
    at = at.button(key="users_add_submit").click().run()
    errors = " ".join(e.value for e in at.error)
    assert "not a valid username" in errors and "at least 8 characters" in errors
    assert [u.username for u in users.list_users()] == ["admin"]
    assert at.text_input(key="users_add_password").value == ""


def test_role_change_and_the_last_admin_rule(admin_users: AppTest, users: UserStore) -> None:
    users.create("bob", PASSWORD, "viewer", actor="seed")
    at = pick(reopen(admin_users), "bob")
    at.selectbox(key="users_role").set_value("operator")
    at = at.button(key="users_set_role").click().run()
    assert users.get("bob").role == "operator"
    at = pick(at, "admin")
    at.selectbox(key="users_role").set_value("viewer")
    at = at.button(key="users_set_role").click().run()
    assert "'admin' is the last enabled admin" in at.error[0].value
    assert users.get("admin").role == "admin"
    at = at.button(key="users_disable").click().run()
    assert "last enabled admin" in at.error[0].value
    assert not users.get("admin").disabled


def test_disable_ends_sessions_and_enable_restores(admin_users: AppTest, users: UserStore) -> None:
    users.create("bob", PASSWORD, "viewer", actor="seed")
    bob = sign_in(new_app().run(), "bob")
    at = pick(reopen(admin_users), "bob").button(key="users_disable").click().run()
    assert users.get("bob").disabled
    bob.run()
    assert [t.value for t in bob.title] == ["Sign in to GateHouse"]
    at = at.button(key="users_enable").click().run()
    assert not users.get("bob").disabled
    assert users.authenticate("bob", PASSWORD).username == "bob"


def test_unlock_a_locked_account(admin_users: AppTest, users: UserStore) -> None:
    users.create("bob", PASSWORD, "viewer", actor="seed")
    for _ in range(5):
        with pytest.raises(AuthError):
            users.authenticate("bob", "wrong guess")
    at = pick(reopen(admin_users), "bob")
    assert any("bob** · viewer · locked until" in m.value for m in at.markdown)
    at.button(key="users_unlock").click().run()
    assert users.get("bob").locked_until is None


def test_reset_password_shows_it_once_and_signs_the_user_out(
    admin_users: AppTest, users: UserStore
) -> None:
    users.create("bob", PASSWORD, "viewer", actor="seed")
    bob = sign_in(new_app().run(), "bob")
    at = pick(reopen(admin_users), "bob").button(key="users_reset_password").click().run()
    new_password = at.code[0].value
    assert users.authenticate("bob", new_password).username == "bob"
    with pytest.raises(AuthError):
        users.authenticate("bob", PASSWORD)
    bob.run()
    assert [t.value for t in bob.title] == ["Sign in to GateHouse"]


def test_revoke_sessions_signs_the_user_out_everywhere(
    admin_users: AppTest, users: UserStore
) -> None:
    users.create("bob", PASSWORD, "viewer", actor="seed")
    tabs = [sign_in(new_app().run(), "bob") for _ in range(2)]
    at = pick(reopen(admin_users), "bob")
    assert at.button(key="users_revoke_sessions").label == "Sign out everywhere (2)"
    at = at.button(key="users_revoke_sessions").click().run()
    assert "2 session(s) ended" in at.success[0].value
    for tab in tabs:
        tab.run()
        assert "Your session has ended" in tab.info[0].value
    assert SessionStore(users.engine).list_for("bob") == []


def test_every_change_is_audited_without_passwords(admin_users: AppTest, users: UserStore) -> None:
    users.create("bob", PASSWORD, "viewer", actor="seed")
    at = pick(reopen(admin_users), "bob")
    at = at.button(key="users_reset_password").click().run()
    password = at.code[0].value
    at = at.button(key="users_disable").click().run()
    at.button(key="users_enable").click().run()
    recorded = actions(users)
    for action in ("user.set_password", "user.disable", "user.enable"):
        assert action in recorded
    with transaction(users.engine) as s:
        dumped = str([(a.before, a.after) for a in s.scalars(select(SettingsAudit))])
    assert password not in dumped and PASSWORD not in dumped


def test_a_click_from_a_page_opened_before_a_demotion_changes_nothing(
    admin_users: AppTest, users: UserStore
) -> None:
    # Streamlit runs on_click callbacks before the page's guard: the callback checks itself.
    users.create("spare", PASSWORD, "admin", actor="seed")  # the last admin cannot be demoted
    at = admin_users
    at.text_input(key="users_add_username").set_value("mallory")
    users.set_role("admin", "viewer", actor="seed")

    at = at.button(key="users_add_submit").click().run()

    assert not at.exception
    assert "mallory" not in [u.username for u in users.list_users()]
    assert "may not manage console users" in texts(at)
