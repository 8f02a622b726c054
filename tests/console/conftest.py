"""Console fixtures: the app under AppTest, seeded users and providers, the fake OpenRouter.

Everything reaches the app through the environment tests/conftest.py sets per test
(GATEHOUSE_DATABASE_URL, GATEHOUSE_SECRETS_KEY, GATEHOUSE_HOME); Streamlit's caches are
cleared around each test so no engine, registry or gateway leaks from one test to the next.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from gatehouse_core.auth import UserStore
from gatehouse_core.crypto import SecretBox
from gatehouse_core.db import make_engine
from gatehouse_core.providers import ProviderConfig
from gatehouse_core.registry import Registry
from tests.fakes.openrouter import DEFAULT_KEY, FakeOpenRouter

APP = Path(__file__).resolve().parents[2] / "app.py"
PASSWORD = "console-pass-1"


@pytest.fixture(autouse=True)
def keep_the_real_main_module() -> Iterator[None]:
    """AppTest runs page scripts as `__main__` and leaves one in sys.modules; a later test that
    starts a `spawn` process would then make the child re-run that page (and crash)."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(autouse=True)
def fresh_streamlit_caches() -> Iterator[None]:
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    # Releasing the cached gateway flushes its audit writer; engines are disposed.
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def users() -> UserStore:
    return UserStore(make_engine())


@pytest.fixture
def registry() -> Registry:
    return Registry(make_engine(), SecretBox.from_env(), ttl=0)


@pytest.fixture
def fake_openrouter() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as fake:
        yield fake


@pytest.fixture
def fake_provider(registry: Registry, fake_openrouter: FakeOpenRouter) -> Callable[..., str]:
    """Store a provider pointing at the fake (with the fake's key); returns its name."""

    def add(name: str = "fake", *, api_key: str | None = DEFAULT_KEY, **fields: object) -> str:
        fields.setdefault("base_url", fake_openrouter.base_url)
        fields.setdefault("default_model", "openai/gpt-4o-mini")
        registry.add(ProviderConfig(name=name, **fields), actor="seed", api_key=api_key)
        return name

    return add


def new_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=30)


def sign_in(at: AppTest, username: str, password: str = PASSWORD) -> AppTest:
    at.text_input(key="signin_username").set_value(username)
    at.text_input(key="signin_password").set_value(password)
    return at.button(key="signin_submit").click().run()


@pytest.fixture
def app_as(users: UserStore) -> Callable[[str], AppTest]:
    """An app signed in through the sign-in form as a new user with `role` (named like it)."""

    def open_as(role: str) -> AppTest:
        users.create(role, PASSWORD, role, actor="seed")
        at = sign_in(new_app().run(), role)
        assert not at.exception, at.exception
        return at

    return open_as


def texts(at: AppTest) -> str:
    """Every element's protobuf as text: what the server sends the browser for this run
    (labels, messages, table data, and widget values the app set through session state)."""
    return "\n".join(str(node.proto) for node in at._tree if getattr(node, "proto", None))


def nav_pages(at: AppTest) -> list[str]:
    """The titles of the pages st.navigation registered in the last run, in order, each once
    (signed out, every console URL is registered as an alias of the one door page)."""
    titles = [str(info.get("page_name", "")) for info in at._registered_pages.values()]
    return list(dict.fromkeys(titles))
