"""The console in a real browser: first admin, a provider with a key, a streamed playground
answer, then a viewer who can neither see nor reach the Providers page.

One ordered walk against one server: each step needs what the previous one left (the admin,
the provider, its key). Every page visited is screenshotted to test-artifacts/e2e/ and checked
for tracebacks, error boxes and, once the key is saved, the key's plaintext.

The walk runs on SQLite and on PostgreSQL. `GATEHOUSE_TEST_UPDATE_SCREENSHOTS=1` also copies a
few of the SQLite run's screenshots to docs/screenshots/ (after a UI change; review them before
committing).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from gatehouse_core.crypto import mask_key
from tests.fakes.openrouter import DEFAULT_REPLY_TEXT, FakeOpenRouter

from .browser import Walk, keyed, main_title, wait_for_app
from .conftest import REPO, Console

pytestmark = pytest.mark.browser

ADMIN, ADMIN_PASSWORD = "alice", "alice-e2e-pass"
VIEWER, VIEWER_PASSWORD = "victor", "victor-e2e-pass"
PROVIDER = "e2e-fake"
MODEL = "openai/gpt-4o-mini"
# The Providers page by its navigation URL path, and by its file's stem (which Streamlit's
# legacy pages/ folder convention would serve without app.py, were it allowed to).
PROVIDERS_URL_PATHS = ("ai-providers", "providers")
# Navigate to a URL inside the tab, as the back/forward buttons do: the Streamlit session (and
# who is signed in) survives, where page.goto would open a new, signed-out session.
_GO_TO_PATH = (
    "(path) => { history.pushState({}, '', path); dispatchEvent(new PopStateEvent('popstate')); }"
)
DOC_SCREENSHOTS = {
    "first-admin": "first-run.png",
    "provider-test-connection": "providers.png",
    "playground-answer": "playground.png",
    "models-refreshed": "models.png",
}


# ---- locators and small actions -------------------------------------------------------


def nav(page: Page) -> Locator:
    return page.get_by_test_id("stSidebarNav")


def open_page(page: Page, title: str) -> None:
    nav(page).locator("a").filter(has_text=title).click()
    expect(main_title(page)).to_have_text(title)
    wait_for_app(page)


def success(page: Page, text: str) -> Locator:
    # Filtered by text: while a rerun draws, the previous run's alerts can still be on screen.
    return page.get_by_test_id("stAlertContentSuccess").filter(has_text=text)


def model_count(page: Page) -> Locator:
    """The Models page's `N models` caption under the catalog table (a stale copy may
    linger while a rerun draws: assert on its count or filter it by text)."""
    return page.get_by_test_id("stCaptionContainer").filter(has_text=re.compile(r"^\d+ models"))


def sign_in(page: Page, username: str, password: str) -> None:
    keyed(page, "signin_username", "input").fill(username)
    keyed(page, "signin_password", "input").fill(password)
    keyed(page, "signin_submit", "button").click()


def expect_no_providers_page(page: Page) -> None:
    """Nothing of the Providers page is rendered: no title, forms or buttons."""
    expect(main_title(page)).not_to_have_text("Providers")
    for key in ("provider_select", "provider_test", "provider_add_name", "provider_edit_base_url"):
        expect(keyed(page, key)).to_have_count(0)


# ---- the walk, step by step -----------------------------------------------------------


def first_request_by_file_name(page: Page, walk: Walk, console: Console) -> None:
    """The fresh server's very first request names the providers script: app.py still runs."""
    page.goto(console.url("/providers"))
    expect(main_title(page)).to_have_text("Welcome to GateHouse")
    expect_no_providers_page(page)
    walk.record("first-request-providers-url")


def create_first_admin(page: Page, walk: Walk, console: Console) -> None:
    page.goto(console.url("/"))
    expect(main_title(page)).to_have_text("Welcome to GateHouse")
    expect(nav(page)).to_have_count(0)  # the setup form and nothing else
    keyed(page, "first_admin_username", "input").fill(ADMIN)
    keyed(page, "first_admin_password", "input").fill(ADMIN_PASSWORD)
    keyed(page, "first_admin_confirm", "input").fill(ADMIN_PASSWORD)
    walk.record("first-admin")
    keyed(page, "first_admin_submit", "button").click()
    expect(main_title(page)).to_have_text("Overview")  # signed in as the new admin: home
    walk.forbid(ADMIN_PASSWORD, "the admin's password")  # the form's fields were emptied
    expect(page.get_by_test_id("stSidebar")).to_contain_text(re.compile(rf"{ADMIN}\s*admin"))
    walk.record("playground-without-provider")


def add_provider(page: Page, walk: Walk, base_url: str, api_key: str) -> None:
    open_page(page, "Providers")
    walk.record("providers-empty")
    keyed(page, "provider_add_name", "input").fill(PROVIDER)
    keyed(page, "provider_add_base_url", "input").fill(base_url)
    keyed(page, "provider_add_default_model", "input").fill(MODEL)
    key_field = keyed(page, "provider_add_api_key", "input")
    expect(key_field).to_have_attribute("type", "password")
    key_field.fill(api_key)
    keyed(page, "provider_add_submit", "button").click()
    expect(success(page, f"Added provider {PROVIDER} with its API key")).to_be_visible()
    walk.forbid(api_key, "the provider's API key")
    walk.forbid(api_key.removeprefix("sk-or-v1-")[:-4], "the secret part of the API key")
    # Dataframes get no `.st-key-` class; the providers table is the page's first one.
    expect(page.get_by_test_id("stDataFrame").first).to_contain_text(mask_key(api_key))
    expect(keyed(page, "provider_add_api_key", "input")).to_have_value("")
    walk.record("provider-added")


def check_connection(page: Page, walk: Walk, fake: FakeOpenRouter, api_key: str) -> None:
    keyed(page, "provider_test", "button").click()
    expect(success(page, f"{PROVIDER}: reachable and the key works")).to_be_visible()
    key_metric = page.get_by_test_id("stMetric").filter(
        has=page.get_by_test_id("stMetricLabel").get_by_text("Key", exact=True)
    )
    expect(key_metric.get_by_test_id("stMetricValue")).to_have_text("valid")
    # The key typed in the browser, stored encrypted, is what reached the upstream.
    assert [r.api_key for r in fake.requests if r.endpoint == "/key"] == [api_key]
    walk.record("provider-test-connection")

    # Opened up, the edit form, stored JSON and history still show only the masked key.
    for expander in page.get_by_test_id("stExpander").all():
        expander.locator("summary").click()
    expect(page.get_by_test_id("stJson")).to_contain_text(fake.base_url)
    expect(page.get_by_test_id("stExpander").filter(has_text=f"Edit {PROVIDER}")).to_contain_text(
        f"Stored API key: {mask_key(api_key)}"
    )
    walk.record("providers-expanded")


def chat_in_playground(page: Page, walk: Walk, fake: FakeOpenRouter, api_key: str) -> None:
    open_page(page, "Playground")
    prompt = page.get_by_test_id("stChatInputTextArea")
    prompt.fill("Say hello to the browser test")
    prompt.press("Enter")
    answer = page.get_by_test_id("stChatMessage").last
    expect(answer).to_contain_text(DEFAULT_REPLY_TEXT)
    expect(answer.get_by_test_id("stCaptionContainer")).to_contain_text(
        re.compile(rf"{PROVIDER} . {re.escape(MODEL)} . \d+ in / \d+ out tokens . \$[0-9.]+ \(")
    )
    walk.record("playground-answer")
    assert [(r.api_key, r.body["stream"]) for r in fake.chat_requests] == [(api_key, True)]


def browse_models_as_admin(page: Page, walk: Walk) -> None:
    open_page(page, "Models")
    expect(model_count(page)).to_have_count(1)
    keyed(page, "models_refresh", "button").click()
    expect(page.get_by_test_id("stExpander").filter(has_text="Refreshed")).to_contain_text(
        re.compile(r"Refreshed 1 of 1 providers: \d+ models in the catalog")
    )
    walk.record("models-refreshed")
    search = keyed(page, "models_search", "input")
    search.fill(MODEL)
    search.press("Enter")
    expect(model_count(page).filter(has_text=f"matching “{MODEL}”")).to_have_count(1)
    wait_for_app(page)
    expect(page.get_by_test_id("stDataFrame").first).to_contain_text(MODEL)
    walk.record("models-search")


def add_viewer_with_cli(console: Console) -> None:
    done = console.cli("users", "add", VIEWER, "--role", "viewer", stdin=f"{VIEWER_PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    assert f"Added user {VIEWER} (viewer)" in done.stdout


def sign_out(page: Page, walk: Walk) -> None:
    keyed(page, "signout", "button").click()
    expect(keyed(page, "signin_username", "input")).to_be_visible()
    expect(nav(page)).to_have_count(0)
    walk.record("signed-out")


def viewer_sees_models_only(page: Page, walk: Walk) -> None:
    sign_in(page, VIEWER, VIEWER_PASSWORD)
    # The admin signed out on Models: signing in lands on the page the URL names (issue 8
    # item 9), which a viewer may use; Overview is the home page at `/`.
    expect(main_title(page)).to_have_text("Models")
    open_page(page, "Overview")
    open_page(page, "Models")
    walk.forbid(VIEWER_PASSWORD, "the viewer's password")
    expect(page.get_by_test_id("stSidebar")).to_contain_text(re.compile(rf"{VIEWER}\s*viewer"))
    walk.record("viewer-models")
    # A role with a single page gets no navigation at all; either way no Providers entry.
    expect(page.locator('[data-testid="stSidebarNav"] a[href*="providers"]')).to_have_count(0)
    expect(nav(page).filter(has_text="Providers")).to_have_count(0)
    expect(keyed(page, "models_refresh")).to_have_count(0)
    expect(model_count(page)).to_have_count(1)


def viewer_cannot_reach_providers_by_url(page: Page, walk: Walk, console: Console) -> None:
    for path in PROVIDERS_URL_PATHS:  # in the signed-in session
        page.evaluate(_GO_TO_PATH, f"/{path}")
        wait_for_app(page)
        expect(main_title(page)).to_have_text("Overview")
        expect_no_providers_page(page)
        walk.record(f"viewer-url-{path}", errors_expected=True)  # a refusal may be shown
    for path in PROVIDERS_URL_PATHS:  # in a new session, e.g. a bookmark: the session cookie
        page.goto(console.url(f"/{path}"))  # still signs the viewer in, still as a viewer
        wait_for_app(page)
        expect(page.get_by_test_id("stSidebar")).to_contain_text(re.compile(rf"{VIEWER}\s*viewer"))
        expect_no_providers_page(page)
        walk.record(f"new-session-url-{path}", errors_expected=True)
        page.keyboard.press("Escape")  # closes Streamlit's "page not found" notice
        expect(page.get_by_role("dialog")).to_have_count(0)
    expect(main_title(page)).to_have_text("Overview")
    expect_no_providers_page(page)
    walk.record("viewer-from-providers-url")


def update_doc_screenshots(console: Console, artifacts: Path) -> None:
    if os.environ.get("GATEHOUSE_TEST_UPDATE_SCREENSHOTS", "") in ("", "0"):
        return
    if console.database != "sqlite":  # the README's default, and its sidebar reads like one
        return
    target = REPO / "docs" / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    for name, doc_name in DOC_SCREENSHOTS.items():
        (shot,) = artifacts.glob(f"[0-9][0-9]-{name}.png")
        shutil.copyfile(shot, target / doc_name)


def test_admin_sets_up_a_provider_and_a_viewer_cannot_reach_it(
    console: Console,
    console_page: Page,
    fake_upstream: FakeOpenRouter,
    api_key: str,
    artifacts: Path,
) -> None:
    page, walk = console_page, Walk(console_page, artifacts)
    first_request_by_file_name(page, walk, console)
    create_first_admin(page, walk, console)
    add_provider(page, walk, fake_upstream.base_url, api_key)
    check_connection(page, walk, fake_upstream, api_key)
    chat_in_playground(page, walk, fake_upstream, api_key)
    browse_models_as_admin(page, walk)
    add_viewer_with_cli(console)
    sign_out(page, walk)
    walk.forbid(mask_key(api_key), "the provider's masked API key")
    walk.forbid(fake_upstream.base_url, "the provider's base URL")
    viewer_sees_models_only(page, walk)
    viewer_cannot_reach_providers_by_url(page, walk, console)
    assert api_key not in console.log.read_text(errors="replace"), "API key in the server log"
    update_doc_screenshots(console, artifacts)
