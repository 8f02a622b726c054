"""The Models page: the catalog table, search, recommended models, and the admin refresh."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest

from gatehouse_core.catalog import DEFAULT_CATALOG, RECOMMENDED_MODELS
from gatehouse_core.ui import models as models_ui
from tests.fakes.openrouter import FakeOpenRouter


def model_ids(at: AppTest) -> list[str]:
    return list(at.dataframe[0].value["Model id"])


def test_viewer_sees_the_catalog_and_recommendations_without_refresh(
    app_as: Callable[[str], AppTest],
) -> None:
    at = app_as("viewer").switch_page("pages/models.py").run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Models"]
    assert sorted(model_ids(at)) == sorted(e.id for e in DEFAULT_CATALOG)
    table = at.dataframe[0].value
    sonnet = table[table["Model id"] == "anthropic/claude-sonnet-4"].iloc[0]
    assert (sonnet["Input $/1M"], sonnet["Output $/1M"], sonnet["Context"]) == (3.0, 15.0, 1000000)
    recommended = at.dataframe[1].value
    assert list(recommended["Model id"]) == [r["model_id"] for r in RECOMMENDED_MODELS]
    with pytest.raises(KeyError):
        at.button(key="models_refresh")


def test_search_filters_by_id_or_name(app_as: Callable[[str], AppTest]) -> None:
    at = app_as("viewer").switch_page("pages/models.py").run()
    at.text_input(key="models_search").set_value("CLAUDE").run()
    ids = model_ids(at)
    assert ids and all("claude" in i for i in ids)
    assert at.main.caption[-1].value.startswith(f"{len(ids)} models matching")
    at.text_input(key="models_search").set_value("no-such-model-anywhere").run()
    assert at.info[0].value == "No model matches “no-such-model-anywhere”."


def test_admin_refresh_shows_each_provider_and_stores_the_models(
    app_as: Callable[[str], AppTest],
    fake_provider: Callable[..., str],
    fake_openrouter: FakeOpenRouter,
) -> None:
    fake_provider("fake")
    fake_provider("broken", base_url="http://127.0.0.1:1/api/v1", priority=2)
    at = app_as("admin").switch_page("pages/models.py").run()
    at = at.button(key="models_refresh").click().run()
    assert not at.exception
    lines = [m.value for m in at.markdown]
    assert f":green[✓] fake: {len(fake_openrouter.models)} models" in lines
    assert any(line.startswith(":red[✗] broken:") for line in lines)
    assert set(m["id"] for m in fake_openrouter.models) <= set(model_ids(at))


def test_free_only_filter_keeps_the_free_models(app_as: Callable[[str], AppTest]) -> None:
    at = app_as("viewer").switch_page("pages/models.py").run()
    at.checkbox(key="models_free").check().run()
    assert model_ids(at) == ["meta-llama/llama-3.3-70b-instruct:free"]
    assert list(at.dataframe[0].value["Free"]) == ["free"]


def test_author_context_and_price_filters_combine(app_as: Callable[[str], AppTest]) -> None:
    at = app_as("viewer").switch_page("pages/models.py").run()
    at.multiselect(key="models_authors").set_value(["anthropic", "google"])
    at.number_input(key="models_min_context").set_value(1_000_000)
    at.number_input(key="models_max_input").set_value(1.0).run()
    assert sorted(model_ids(at)) == ["google/gemini-2.5-flash", "google/gemini-2.5-flash-lite"]
    at.number_input(key="models_max_output").set_value(0.01).run()
    assert at.info[0].value == "No model passes these filters."


def test_an_unknown_price_never_passes_a_price_limit(app_as: Callable[[str], AppTest]) -> None:
    at = app_as("viewer").switch_page("pages/models.py").run()
    at.number_input(key="models_max_input").set_value(1000.0).run()
    assert "openrouter/auto" not in model_ids(at)  # its price is variable
    assert len(model_ids(at)) == len(DEFAULT_CATALOG) - 1


def test_the_table_is_tall_enough_to_show_twenty_rows() -> None:
    assert models_ui.table_height(len(DEFAULT_CATALOG)) == 21 * models_ui.ROW_PX + 3
    assert models_ui.table_height(3) == 4 * models_ui.ROW_PX + 3  # no empty space
    assert models_ui.table_height(5000) == models_ui.MAX_TABLE_PX  # then it scrolls
