"""The Change history page (admin only): changes field by field, filters, secrets masked."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest

from gatehouse_core.registry import Registry
from tests.console.conftest import texts

KEY = "sk-or-v1-" + "3f9a" * 15 + "beef"


@pytest.fixture
def changed(fake_provider: Callable[..., str], registry: Registry) -> None:
    fake_provider("fake", api_key=KEY)
    registry.update("fake", actor="bob", priority=7)


def open_history(app_as: Callable[[str], AppTest]) -> AppTest:
    at = app_as("admin").switch_page("pages/history.py").run()
    assert not at.exception, at.exception
    return at


def test_admin_sees_each_change_field_by_field(
    changed: None, app_as: Callable[[str], AppTest]
) -> None:
    at = open_history(app_as)
    assert [t.value for t in at.title] == ["Change history"]
    table = at.dataframe[0].value
    update = table[table["Action"] == "provider.update"]
    assert list(update["Actor"]) == ["bob"]
    row = update[update["Field"].str.endswith("priority")].iloc[0]
    assert (row["Change"], row["Before"], row["After"]) == ("changed", "1", "7")
    assert set(table["Action"]) >= {"provider.create", "provider.update", "user.create"}


def test_filters_by_actor_action_and_target(
    changed: None, app_as: Callable[[str], AppTest]
) -> None:
    at = open_history(app_as)
    at = at.selectbox(key="history_actor").set_value("bob").run()
    assert set(at.dataframe[0].value["Action"]) == {"provider.update"}
    at = at.selectbox(key="history_actor").set_value("(any)").run()
    at = at.selectbox(key="history_target").set_value("admin").run()
    # The admin's account was created, and the admin signed in to open this page.
    assert set(at.dataframe[0].value["Action"]) == {"user.create", "session.sign_in"}


def test_keys_appear_only_masked(changed: None, app_as: Callable[[str], AppTest]) -> None:
    at = open_history(app_as)
    assert KEY not in texts(at) and "3f9a3f9a" not in texts(at)
    table = at.dataframe[0].value
    keys = table[table["Field"] == "api_key"]
    assert list(keys["After"])[-1] == "sk-or-…beef"


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_change_history_is_admin_only(app_as: Callable[[str], AppTest], role: str) -> None:
    at = app_as(role)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("pages/history.py")
