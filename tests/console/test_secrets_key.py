"""A wrong or malformed GATEHOUSE_SECRETS_KEY: clear messages on the pages, never a traceback."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.fernet import Fernet
from streamlit.testing.v1 import AppTest

from tests.fakes.openrouter import DEFAULT_KEY


def page_text(at: AppTest) -> str:
    parts = [e.value for e in (*at.error, *at.warning, *at.info, *at.markdown, *at.caption)]
    return "\n".join(str(p) for p in parts)


@pytest.fixture
def admin_after_key_swap(
    app_as: Callable[[str], AppTest],
    fake_provider: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> AppTest:
    """An admin's app after `primary`'s key was stored under a secrets key no longer set."""
    fake_provider("primary")
    monkeypatch.setenv("GATEHOUSE_SECRETS_KEY", Fernet.generate_key().decode())
    return app_as("admin")


def test_key_that_cannot_decrypt_names_the_provider_and_the_fix(
    admin_after_key_swap: AppTest,
) -> None:
    at = admin_after_key_swap
    at.switch_page("pages/providers.py").run()
    assert not at.exception
    text = page_text(at)
    assert "primary" in text and "GATEHOUSE_SECRETS_KEY=<new>,<old>" in text
    assert DEFAULT_KEY not in text


def test_malformed_secrets_key_is_an_error_message_not_a_traceback(
    app_as: Callable[[str], AppTest],
    fake_provider: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_provider("primary")
    monkeypatch.setenv("GATEHOUSE_SECRETS_KEY", "not-a-fernet-key")
    at = app_as("admin")
    at.switch_page("pages/providers.py").run()
    assert not at.exception
    assert any("not a valid Fernet key" in e.value for e in at.error)


def test_playground_call_with_an_undecryptable_key_says_how_to_fix_it(
    admin_after_key_swap: AppTest,
) -> None:
    at = admin_after_key_swap
    at.switch_page("pages/playground.py").run()
    at = at.chat_input(key="pg_input").set_value("Hello").run()
    assert not at.exception
    errors = [e.value for m in at.chat_message if m.name == "assistant" for e in m.error]
    assert errors and "Cannot decrypt the stored API key of primary" in errors[0]
    assert "gatehouse secrets rotate" in errors[0]
