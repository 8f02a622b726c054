"""The Providers page (admin): table, add/edit with inline errors, key masking, enable/disable,
default, delete with confirmation, the connection test, and the read-only env provider."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest

from gatehouse_core.auth import UserStore
from gatehouse_core.catalog import Catalog
from gatehouse_core.providers import RateLimit
from gatehouse_core.registry import Registry
from gatehouse_core.ui.providers import LIMIT_FIELDS
from tests.console.conftest import PASSWORD, texts
from tests.fakes.openrouter import DEFAULT_KEY, FakeOpenRouter

NEW_KEY = "sk-or-v1-brand-new-key-9999z9y8"


@pytest.fixture
def providers_page(app_as: Callable[[str], AppTest]) -> AppTest:
    at = app_as("admin")
    return at.switch_page("pages/providers.py").run()


def fill_add_form(at: AppTest, **values: object) -> AppTest:
    for field, value in values.items():
        at.text_input(key=f"provider_add_{field}").set_value(value)
    return at.button(key="provider_add_submit").click().run()


def assert_key_field_cleared(at: AppTest, key: str) -> None:
    """The server told the browser to empty the field (else the typed key would stay in it)."""
    proto = at.text_input(key=key).proto
    assert (proto.set_value, proto.value) == (True, "")


def rows(at: AppTest) -> list[dict]:
    return at.dataframe[0].value.to_dict("records")  # the providers table comes first


def test_page_without_providers_invites_to_add_one(providers_page: AppTest) -> None:
    at = providers_page
    assert not at.exception
    assert [t.value for t in at.title] == ["Providers"]
    assert "No provider yet" in at.info[0].value
    assert at.button(key="provider_add_submit")


def test_added_key_is_stored_encrypted_and_only_shown_masked(
    providers_page: AppTest, registry: Registry, fake_openrouter: FakeOpenRouter
) -> None:
    at = fill_add_form(
        providers_page, name="primary", base_url=fake_openrouter.base_url, api_key=DEFAULT_KEY
    )
    assert not at.exception
    assert at.success[0].value == "Added provider primary with its API key."
    [row] = rows(at)
    assert (row["Name"], row["API key"], row["Status"], row["Source"]) == (
        "primary",
        "sk-or-…a1b2",
        "default · enabled",
        "database",
    )
    assert registry.api_key("primary") == DEFAULT_KEY
    assert_key_field_cleared(at, "provider_add_api_key")
    assert DEFAULT_KEY not in texts(at)
    assert DEFAULT_KEY not in texts(at.run())  # nor on any later run
    assert registry.history(limit=1)[0].actor == "admin"


def test_validation_errors_are_shown_under_their_fields(
    providers_page: AppTest, registry: Registry
) -> None:
    at = fill_add_form(
        providers_page,
        name="Not A Slug",
        base_url="ftp://example.com",
        default_model="no-slash",
        api_key="sk-or-v1-typed-but-refused-1234",
    )
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("'Not A Slug' is not a valid name" in e for e in errors)
    assert any("'ftp://example.com' is not an http(s) URL" in e for e in errors)
    assert any("'no-slash' is not a model id" in e for e in errors)
    assert registry.providers() == []
    assert at.text_input(key="provider_add_name").value == "Not A Slug"  # kept to fix
    assert_key_field_cleared(at, "provider_add_api_key")  # the key is not kept
    assert "sk-or-v1-typed-but-refused-1234" not in texts(at)


def test_bad_header_line_and_duplicate_name_are_reported(
    providers_page: AppTest, fake_provider: Callable[..., str]
) -> None:
    fake_provider("primary")
    at = providers_page.run()
    at.text_area(key="provider_add_headers").set_value("X-Title GateHouse")
    at = fill_add_form(at, name="primary")
    errors = [e.value for e in at.error]
    assert any("line 1 ('X-Title GateHouse') is not NAME=VALUE" in e for e in errors)
    at.text_area(key="provider_add_headers").set_value("X-Title=GateHouse")
    at = fill_add_form(at, name="primary")
    assert any("a provider named 'primary' already exists" in e.value for e in at.error)


def test_edit_changes_settings_and_replaces_the_key(
    providers_page: AppTest, registry: Registry, fake_provider: Callable[..., str]
) -> None:
    fake_provider("primary")
    at = providers_page.run()
    assert at.text_input(key="provider_edit_default_model").value == "openai/gpt-4o-mini"
    at.text_input(key="provider_edit_default_model").set_value("anthropic/claude-sonnet-4")
    at.number_input(key="provider_edit_requests_per_minute").set_value(60)
    at.text_input(key="provider_edit_api_key").set_value(NEW_KEY)
    at = at.button(key="provider_edit_submit").click().run()
    assert not at.exception
    assert at.success[0].value == "Saved primary and replaced its API key."
    config = registry.get("primary").config
    assert (config.default_model, config.rate_limit.requests_per_minute) == (
        "anthropic/claude-sonnet-4",
        60,
    )
    assert registry.api_key("primary") == NEW_KEY
    assert rows(at)[0]["API key"] == "sk-or-…z9y8"
    assert rows(at)[0]["Rate limits"] == "60 rpm"
    assert_key_field_cleared(at, "provider_edit_api_key")
    assert NEW_KEY not in texts(at)


def test_edit_without_a_key_keeps_the_stored_key(
    providers_page: AppTest, registry: Registry, fake_provider: Callable[..., str]
) -> None:
    fake_provider("primary")
    at = providers_page.run()
    at.number_input(key="provider_edit_priority").set_value(7)
    at.button(key="provider_edit_submit").click().run()
    assert registry.get("primary").config.priority == 7
    assert registry.api_key("primary") == DEFAULT_KEY


def test_edit_errors_are_inline_and_change_nothing(
    providers_page: AppTest, registry: Registry, fake_provider: Callable[..., str]
) -> None:
    fake_provider("primary")
    at = providers_page.run()
    at.text_input(key="provider_edit_base_url").set_value("not a url")
    at = at.button(key="provider_edit_submit").click().run()
    assert any("'not a url' is not an http(s) URL" in e.value for e in at.error)
    assert registry.get("primary").config.base_url.startswith("http://127.0.0.1:")


def test_disable_enable_and_make_default(
    providers_page: AppTest, registry: Registry, fake_provider: Callable[..., str]
) -> None:
    fake_provider("primary")
    fake_provider("backup", priority=2)
    at = providers_page.run()
    at.selectbox(key="provider_select").select("backup").run()
    at = at.button(key="provider_make_default").click().run()
    assert at.success[0].value == "backup is now the default provider."
    assert registry.get("backup").config.is_default
    at = at.button(key="provider_toggle").click().run()
    assert at.success[0].value == "Disabled backup. primary is now the default provider."
    assert not registry.get("backup").config.enabled
    assert registry.get("primary").config.is_default  # the default moved on
    assert at.button(key="provider_toggle").label == "Enable"
    at.button(key="provider_toggle").click().run()
    assert registry.get("backup").config.enabled


def test_delete_needs_confirmation(
    providers_page: AppTest, registry: Registry, fake_provider: Callable[..., str]
) -> None:
    fake_provider("primary")
    at = providers_page.run()
    at = at.button(key="provider_delete").click().run()
    assert "Delete primary and its stored API key?" in at.warning[0].value
    at = at.button(key="provider_delete_cancel").click().run()
    assert [v.name for v in registry.providers()] == ["primary"]
    assert not at.warning
    at.button(key="provider_delete").click().run()
    at = at.button(key="provider_delete_confirm").click().run()
    assert not at.exception
    assert registry.providers() == []
    assert at.success[0].value == "Deleted primary and its key."
    entry = registry.history(limit=1)[0]
    assert (entry.action, entry.actor, entry.before["api_key"]) == (
        "provider.delete",
        "admin",
        "sk-or-…a1b2",
    )


def test_connection_test_reports_reachability_and_key(
    providers_page: AppTest, fake_provider: Callable[..., str]
) -> None:
    fake_provider("primary")
    at = providers_page.run()
    at = at.button(key="provider_test").click().run()
    assert not at.exception
    assert at.success[0].value == "primary: reachable and the key works."
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Key"] == "valid"
    assert DEFAULT_KEY not in texts(at)


def test_connection_test_shows_a_rejected_key(
    providers_page: AppTest, fake_provider: Callable[..., str]
) -> None:
    fake_provider("primary", api_key="sk-or-v1-not-accepted-0000")
    at = providers_page.run()
    at = at.button(key="provider_test").click().run()
    assert "the API key was rejected (401)" in at.error[0].value
    assert {m.label: m.value for m in at.metric}["Key"] == "rejected"


def test_environment_provider_is_read_only(
    app_as: Callable[[str], AppTest], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEGEN_API_KEY", "sk-or-v1-from-the-environment-77")
    at = app_as("admin").switch_page("pages/providers.py").run()
    assert rows(at)[0]["Source"] == "environment"
    assert "read-only here" in at.info[0].value
    for key in ("provider_toggle", "provider_delete", "provider_edit_submit"):
        with pytest.raises(KeyError):
            at.button(key=key)
    assert "sk-or-v1-from-the-environment-77" not in texts(at)


def test_stored_json_is_shown_without_keys(
    providers_page: AppTest, fake_provider: Callable[..., str]
) -> None:
    fake_provider("primary")
    at = providers_page.run()
    document = at.json[0].value
    assert '"name": "primary"' in document or '"name":"primary"' in document
    assert DEFAULT_KEY not in document


def test_saving_a_model_the_catalog_does_not_list_warns(
    providers_page: AppTest, registry: Registry, fake_provider: Callable[..., str]
) -> None:
    fake_provider("primary")
    Catalog(registry.engine).refresh([registry.get("primary").config])
    at = providers_page.run()
    at.text_input(key="provider_edit_default_model").set_value("acme/not-a-listed-model")
    at = at.button(key="provider_edit_submit").click().run()
    assert at.success[0].value == "Saved primary."
    assert "acme/not-a-listed-model is not in the model catalog" in at.warning[0].value


def test_emptying_a_limit_in_the_edit_form_removes_it(
    providers_page: AppTest, registry: Registry, fake_provider: Callable[..., str]
) -> None:
    fake_provider(
        "primary",
        rate_limit=RateLimit(requests_per_minute=60, tokens_per_minute=9000, concurrent_requests=4),
    )
    at = providers_page.run()
    for field in LIMIT_FIELDS:
        at.number_input(key=f"provider_edit_{field}").set_value(None)
    at = at.button(key="provider_edit_submit").click().run()
    assert not at.exception
    assert registry.get("primary").config.rate_limit == RateLimit()
    assert rows(at)[0]["Rate limits"] == "none"
    # The fields can be empty in the browser too: they are None-capable (no snapping to 1).
    for field in LIMIT_FIELDS:
        assert at.number_input(key=f"provider_edit_{field}").value is None


def test_disabling_the_default_in_the_edit_form_says_who_took_over(
    providers_page: AppTest, registry: Registry, fake_provider: Callable[..., str]
) -> None:
    fake_provider("primary")
    fake_provider("backup", priority=2)
    at = providers_page.run()
    at.checkbox(key="provider_edit_enabled").uncheck()
    at = at.button(key="provider_edit_submit").click().run()
    assert at.success[0].value == "Saved primary. backup is now the default provider."
    at = at.button(key="provider_toggle").click().run()  # enable primary again
    assert at.success[0].value == "Enabled primary."  # restores nothing silently
    assert registry.get("backup").config.is_default


def test_out_of_range_numbers_are_explained_under_their_fields(
    providers_page: AppTest, registry: Registry, fake_provider: Callable[..., str]
) -> None:
    fake_provider("primary")
    at = providers_page.run()
    at.number_input(key="provider_edit_priority").set_value(0)
    at.number_input(key="provider_edit_requests_per_minute").set_value(-5)
    at = at.button(key="provider_edit_submit").click().run()
    errors = [e.value for e in at.error]
    assert "must be a whole number of at least 1 (1 is tried first)" in errors
    assert "must be at least 1, not -5; leave it empty for no limit" in errors
    assert registry.get("primary").config.priority == 1  # nothing half-saved


def test_a_huge_invalid_name_is_shortened_in_its_message(
    providers_page: AppTest, registry: Registry
) -> None:
    at = fill_add_form(providers_page, name="X" * 5000)
    [message] = [e.value for e in at.error if "not a valid name" in e.value]
    assert len(message) < 400 and "characters]" in message
    assert registry.providers() == []


def test_table_puts_health_next_to_the_name_without_checkboxes(
    providers_page: AppTest, fake_provider: Callable[..., str]
) -> None:
    fake_provider("primary")
    at = providers_page.run()
    columns = list(at.dataframe[0].value.columns)
    assert columns[:3] == ["Name", "Health", "Status"]
    assert "CheckboxColumn" not in str(at.dataframe[0].proto)
    assert "checkbox" not in str(at.dataframe[0].proto)


def test_missing_key_message_points_to_the_page_not_the_cli(
    app_as: Callable[[str], AppTest], fake_provider: Callable[..., str]
) -> None:
    fake_provider("fake", api_key=None)
    at = (
        app_as("admin")
        .switch_page("pages/playground.py")
        .run()
        .chat_input(key="pg_input")
        .set_value("Hello")
        .run()
    )
    [message] = [e.value for e in at.error]
    assert "Providers page" in message and "gatehouse providers" not in message


def test_a_stored_management_key_is_shown_masked_in_the_manage_caption(
    providers_page: AppTest, registry: Registry, fake_provider: Callable[..., str]
) -> None:
    fake_provider("primary")
    at = providers_page.run()
    assert "management key" not in " ".join(c.value for c in at.caption)
    management_key = "sk-or-v1-management-key-00005e7c"
    registry.set_management_key("primary", management_key, actor="admin")
    at = at.run()
    assert not at.exception
    captions = " ".join(c.value for c in at.caption)
    assert "management key: sk-or-…5e7c" in captions
    assert management_key not in texts(at)


def test_adding_from_a_page_opened_before_a_demotion_is_refused(
    providers_page: AppTest, users: UserStore, registry: Registry
) -> None:
    # Streamlit runs on_click callbacks before the page's guard: the callback checks itself.
    users.create("spare", PASSWORD, "admin", actor="seed")  # the last admin cannot be demoted
    users.set_role("admin", "operator", actor="seed")

    at = fill_add_form(
        providers_page,
        name="sneaky",
        base_url="https://openrouter.ai/api/v1",
        default_model="openai/gpt-4o-mini",
    )

    assert not at.exception
    assert [v.config.name for v in registry.providers()] == []
    assert "may not manage providers" in texts(at)
