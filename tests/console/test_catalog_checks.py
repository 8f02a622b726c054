"""Registry and catalog checks seen in the console: distinct counts after a refresh, mistyped
default models flagged, a base URL move that would re-target the stored key, bad DB URLs."""

from __future__ import annotations

from collections.abc import Callable

from streamlit.testing.v1 import AppTest

from gatehouse_core.registry import Registry
from tests.console.conftest import texts
from tests.fakes.openrouter import FakeOpenRouter


def test_refresh_reports_distinct_models_not_the_sum_over_providers(
    app_as: Callable[[str], AppTest],
    fake_provider: Callable[..., str],
    fake_openrouter: FakeOpenRouter,
) -> None:
    fake_provider("one")
    fake_provider("two", priority=2)  # the same upstream: the same models again
    at = app_as("admin").switch_page("pages/models.py").run()
    at = at.button(key="models_refresh").click().run()
    assert not at.exception
    count = len({m["id"] for m in fake_openrouter.models})
    assert f"Refreshed 2 of 2 providers: {count} models in the catalog" in texts(at)
    table = at.dataframe[0].value
    assert set(
        table[table["Model id"].isin([m["id"] for m in fake_openrouter.models])]["Source"]
    ) == {"one"}


def test_providers_table_flags_a_default_model_missing_from_the_catalog(
    app_as: Callable[[str], AppTest],
    fake_provider: Callable[..., str],
) -> None:
    fake_provider("good")
    fake_provider("typo", default_model="openai/gpt-4o-mimi", priority=2)
    at = app_as("admin").switch_page("pages/models.py").run()
    at.button(key="models_refresh").click().run()
    at = at.switch_page("pages/providers.py").run()
    rows = {r["Name"]: r["Default model"] for r in at.dataframe[0].value.to_dict("records")}
    assert rows == {"good": "openai/gpt-4o-mini", "typo": "openai/gpt-4o-mimi ⚠ not in the catalog"}


def test_editing_the_base_url_to_another_host_asks_for_the_key_again(
    app_as: Callable[[str], AppTest],
    fake_provider: Callable[..., str],
    registry: Registry,
) -> None:
    fake_provider("primary")
    at = app_as("admin").switch_page("pages/providers.py").run()
    at.text_input(key="provider_edit_base_url").set_value("https://elsewhere.example/v1")
    at = at.button(key="provider_edit_submit").click().run()
    assert any("another host (elsewhere.example)" in e.value for e in at.error)
    assert registry.get("primary").config.base_url.startswith("http://127.0.0.1:")


def test_unparseable_database_url_is_not_echoed_on_the_console(monkeypatch) -> None:
    from tests.console.conftest import new_app

    for url in ("postgresql+psycopg://u:hunter2@db:port/x", "hunter2 is not a url"):
        monkeypatch.setenv("GATEHOUSE_DATABASE_URL", url)
        at = new_app().run()
        assert not at.exception
        assert at.error and "GATEHOUSE_DATABASE_URL" in at.error[0].value
        assert "hunter2" not in texts(at)
