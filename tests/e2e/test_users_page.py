"""The Users page in a real browser (issue 8): an admin adds a user with a generated first
password shown once, that user signs in with it, and disabling them ends their session."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from .browser import TIMEOUT_MS, keyed, main_title, wait_for_app
from .conftest import VIEWPORT, Console

pytestmark = pytest.mark.browser

ADMIN, ADMIN_PASSWORD = "uma", "uma-e2e-password-1"
NEWCOMER = "newbie"


@pytest.fixture(scope="module")
def admin(console: Console) -> None:
    result = console.cli("users", "add", ADMIN, "--role", "admin", stdin=ADMIN_PASSWORD + "\n")
    assert result.returncode == 0, result.stderr


@pytest.fixture
def contexts(chromium_browser: Browser) -> Iterator[list[BrowserContext]]:
    expect.set_options(timeout=TIMEOUT_MS)
    made = [chromium_browser.new_context(viewport=VIEWPORT) for _ in range(2)]
    for ctx in made:
        ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield made
    finally:
        for ctx in made:
            ctx.close()


def signed_in(context: BrowserContext, console: Console, path: str, user: str, pw: str) -> Page:
    page = context.new_page()
    page.goto(console.url(path))
    wait_for_app(page)
    keyed(page, "signin_username", "input").fill(user)
    keyed(page, "signin_password", "input").fill(pw)
    keyed(page, "signin_submit", "button").click()
    expect(page.get_by_test_id("stSidebar")).to_be_visible()
    wait_for_app(page)
    return page


def test_admin_adds_a_user_who_signs_in_and_is_signed_out_when_disabled(
    console: Console, admin: None, contexts: list[BrowserContext]
) -> None:
    admin_context, newcomer_context = contexts
    page = signed_in(admin_context, console, "/people", ADMIN, ADMIN_PASSWORD)
    expect(main_title(page)).to_have_text("Users")

    keyed(page, "users_add_username", "input").fill(NEWCOMER)
    keyed(page, "users_add_submit", "button").click()
    wait_for_app(page)
    shown = page.get_by_test_id("stCode")
    expect(shown).to_have_count(1)
    password = shown.inner_text().strip()
    assert len(password) >= 12
    listed = json.loads(console.cli("users", "list", "--json").stdout)
    assert {u["username"]: u["role"] for u in listed}[NEWCOMER] == "viewer"

    theirs = signed_in(newcomer_context, console, "/", NEWCOMER, password)
    expect(theirs.get_by_test_id("stSidebar")).to_contain_text(NEWCOMER)

    page.reload()  # the password was shown once: never again
    wait_for_app(page)
    expect(page.get_by_test_id("stCode")).to_have_count(0)
    expect(page.locator("body")).not_to_contain_text(password)
    page.get_by_test_id("stSelectbox").filter(has_text="User").first.click()
    page.get_by_role("option", name=NEWCOMER, exact=True).click()
    wait_for_app(page)
    keyed(page, "users_disable", "button").click()
    wait_for_app(page)
    listed = json.loads(console.cli("users", "list", "--json").stdout)
    assert {u["username"]: u["disabled"] for u in listed}[NEWCOMER] is True

    theirs.reload()  # disabling ended their session: the door again
    wait_for_app(theirs)
    expect(keyed(theirs, "signin_username", "input")).to_be_visible()
