"""The sidebar's provider health is drawn after the page ran, so it includes this run's calls."""

from __future__ import annotations

from collections.abc import Callable

from streamlit.testing.v1 import AppTest

from tests.fakes.openrouter import Error, FakeOpenRouter


def test_a_failing_call_shows_in_the_sidebar_in_the_same_run(
    app_as: Callable[[str], AppTest],
    fake_provider: Callable[..., str],
    fake_openrouter: FakeOpenRouter,
) -> None:
    fake_provider("fake")
    fake_openrouter.always(Error.unauthorized())
    at = (
        app_as("operator")
        .switch_page("pages/playground.py")
        .run()
        .chat_input(key="pg_input")
        .set_value("Hello")
        .run()
    )
    sidebar = [m.value for m in at.sidebar.markdown]
    assert ":orange[:material/warning: fake failing]" in sidebar
    assert not any("no recent failures" in line for line in sidebar)


def test_health_is_drawn_even_when_the_page_stops_early(
    app_as: Callable[[str], AppTest],
) -> None:
    at = (
        app_as("admin").switch_page("pages/playground.py").run()
    )  # no provider: the Playground calls st.stop()
    assert "No provider is configured" in at.warning[0].value
    assert ":material/warning: no provider configured" in [m.value for m in at.sidebar.markdown]
