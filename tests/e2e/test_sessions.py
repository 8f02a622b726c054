"""Console sessions in a real browser (issue 10): sign-in survives a reload and a new tab, a
second replica accepts the cookie, sign-out kills the cookie everywhere, idle and absolute
expiry, roles hold, deep links land where asked, no secret in a URL, the page or the logs,
and the strict Content-Security-Policy still lets the console render without other origins.

Two console processes share one database: `console` (default settings) and `short_console`
(GATEHOUSE_SESSION_IDLE=6s, GATEHOUSE_SESSION_MAX=14s, for the expiry tests).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from gatehouse_core.sessions import COOKIE_NAME

from .browser import TIMEOUT_MS, keyed, main_title, wait_for_app
from .conftest import VIEWPORT, Console, launch_console

pytestmark = pytest.mark.browser

ADMIN, ADMIN_PASSWORD = "sam", "sam-e2e-password-1"
VIEWER, VIEWER_PASSWORD = "vic", "vic-e2e-password-1"
IDLE_S, MAX_S = 6, 14


@pytest.fixture(scope="module")
def accounts(console: Console) -> None:
    for name, password, role in (
        (ADMIN, ADMIN_PASSWORD, "admin"),
        (VIEWER, VIEWER_PASSWORD, "viewer"),
    ):
        result = console.cli("users", "add", name, "--role", role, stdin=password + "\n")
        assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def short_console(
    console: Console, database: tuple[str, str], artifacts: Path
) -> Iterator[Console]:
    """A second replica on the same database, with short session lifetimes."""
    yield from launch_console(
        database,
        console.home,
        artifacts / "streamlit-short.log",
        GATEHOUSE_SESSION_IDLE=f"{IDLE_S}s",
        GATEHOUSE_SESSION_MAX=f"{MAX_S}s",
    )


@pytest.fixture
def context(chromium_browser: Browser) -> Iterator[BrowserContext]:
    expect.set_options(timeout=TIMEOUT_MS)
    ctx = chromium_browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


def open_at(context: BrowserContext, url: str) -> Page:
    page = context.new_page()
    page.goto(url)
    wait_for_app(page)
    return page


def sign_in(page: Page, username: str, password: str) -> None:
    keyed(page, "signin_username", "input").fill(username)
    keyed(page, "signin_password", "input").fill(password)
    keyed(page, "signin_submit", "button").click()
    expect(page.get_by_test_id("stSidebar")).to_be_visible()
    wait_for_app(page)


def session_cookie(context: BrowserContext, timeout_s: float = 15) -> dict:
    """The session cookie once the page's hand-off request has set it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for cookie in context.cookies():
            if cookie["name"] == COOKIE_NAME:
                return cookie
        time.sleep(0.2)
    pytest.fail("the session cookie was never set")


def expect_sign_in_form(page: Page) -> None:
    expect(main_title(page)).to_have_text("Sign in to GateHouse")
    expect(page.get_by_text("Page not found")).to_have_count(0)


def test_deep_link_sign_in_reload_and_new_tab(
    accounts: None, console: Console, context: BrowserContext
) -> None:
    page = open_at(context, console.url("/ai-providers"))
    expect_sign_in_form(page)  # no false "Page not found" for a deep link (issue 8 item 9)
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    expect(main_title(page)).to_have_text("Providers")  # landed where the link pointed
    cookie = session_cookie(context)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]
    page.reload()
    wait_for_app(page)
    expect(main_title(page)).to_have_text("Providers")
    assert page.url.endswith("/ai-providers")
    second = open_at(context, console.url("/catalog"))
    expect(main_title(second)).to_have_text("Models")
    expect(second.get_by_test_id("stSidebar")).to_contain_text(ADMIN)


def test_second_replica_accepts_the_same_session(
    accounts: None, console: Console, short_console: Console, context: BrowserContext
) -> None:
    page = open_at(context, short_console.url("/"))
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    session_cookie(context)
    # Cookies are per host, not per port: the same browser reaches the other process.
    other = open_at(context, console.url("/people"))
    expect(main_title(other)).to_have_text("Users")


def test_sign_out_kills_the_cookie_everywhere(
    accounts: None, console: Console, chromium_browser: Browser, context: BrowserContext
) -> None:
    page = open_at(context, console.url("/"))
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    saved = session_cookie(context)
    keyed(page, "signout", "button").click()
    expect_sign_in_form(page)
    expect(page.get_by_text("You have been signed out.")).to_be_visible()
    # No empty sidebar shell after sign-out (issue 8 item 13).
    expect(page.get_by_test_id("stSidebar")).to_be_hidden()
    expect(page.get_by_test_id("stExpandSidebarButton")).to_have_count(0)
    # The cookie was cleared here, and its old value, replayed elsewhere, is refused.
    deadline = time.monotonic() + 10
    while any(c["name"] == COOKIE_NAME for c in context.cookies()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(c["name"] == COOKIE_NAME for c in context.cookies())
    replay = chromium_browser.new_context(viewport=VIEWPORT)
    try:
        replay.add_cookies([{k: saved[k] for k in ("name", "value", "domain", "path")}])
        expect_sign_in_form(open_at(replay, console.url("/ai-providers")))
    finally:
        replay.close()


def test_viewer_cookie_never_reaches_an_admin_page(
    accounts: None, console: Console, context: BrowserContext
) -> None:
    page = open_at(context, console.url("/"))
    sign_in(page, VIEWER, VIEWER_PASSWORD)
    session_cookie(context)
    for path in ("/ai-providers", "/people", "/providers", "/users"):
        other = open_at(context, console.url(path))
        expect(main_title(other)).not_to_have_text("Providers")
        expect(main_title(other)).not_to_have_text("Users")
        assert "provider_add_submit" not in other.content()
        assert "users_add_submit" not in other.content()
        other.close()


def test_idle_session_expires(
    accounts: None, short_console: Console, context: BrowserContext
) -> None:
    page = open_at(context, short_console.url("/catalog"))
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    session_cookie(context)
    time.sleep(IDLE_S + 1.5)  # waiting out the setting, not measuring anything
    page.reload()
    wait_for_app(page)
    expect_sign_in_form(page)


def test_busy_session_still_ends_at_its_absolute_lifetime(
    accounts: None, short_console: Console, context: BrowserContext
) -> None:
    page = open_at(context, short_console.url("/catalog"))
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    session_cookie(context)
    started = time.monotonic()
    still_in_after_idle = False
    while time.monotonic() - started < MAX_S + 3:  # bounded: a few reloads
        time.sleep(0.5)
        page.reload()
        wait_for_app(page)
        signed_in = page.get_by_test_id("stSidebar").is_visible()
        if time.monotonic() - started > IDLE_S + 1 and signed_in:
            still_in_after_idle = True  # activity kept it past the idle limit
        if not signed_in:
            break
    assert still_in_after_idle
    expect_sign_in_form(page)


def test_no_password_or_token_in_urls_pages_or_logs(
    accounts: None, console: Console, context: BrowserContext
) -> None:
    urls: list[str] = []
    context.on("request", lambda request: urls.append(request.url))
    page = open_at(context, console.url("/chat"))
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    token = session_cookie(context)["value"]
    pages = [page.content()]
    page.reload()
    wait_for_app(page)
    pages.append(page.content())
    log = console.log.read_text(errors="replace")
    for secret, what in ((ADMIN_PASSWORD, "the password"), (token, "the session token")):
        assert not [u for u in urls if secret in u], f"{what} is in a URL"
        assert not [h for h in pages if secret in h], f"{what} is in the page HTML"
        assert secret not in log, f"{what} is in the server log"


def test_strict_csp_still_renders_with_no_other_origin(
    accounts: None, console: Console, context: BrowserContext
) -> None:
    with urllib.request.urlopen(console.url("/"), timeout=10) as response:
        headers = response.headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    foreign: list[str] = []
    violations: list[str] = []
    context.on(
        "request",
        lambda r: (
            foreign.append(r.url)
            if not r.url.startswith((console.base_url, "data:", "blob:"))
            else None
        ),
    )
    page = context.new_page()
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.goto(console.url("/"))
    wait_for_app(page)
    sign_in(page, ADMIN, ADMIN_PASSWORD)
    expect(main_title(page)).to_have_text("Overview")  # the home page, with its Plotly charts
    page.reload()
    wait_for_app(page)
    icon = page.locator("link[rel='shortcut icon'], link[rel='icon']").first.get_attribute("href")
    assert icon and "gstatic" not in icon and "googleapis" not in icon  # shipped, not fetched
    assert foreign == []  # issue 8 item 14: nothing from a font CDN or anywhere else
    assert violations == []
