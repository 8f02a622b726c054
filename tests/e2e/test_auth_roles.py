"""Auth per role in the browser: for viewer, operator and admin, which pages of the navigation
each reaches (in the tab and by URL); every state-changing action is refused for a role that
may see its page but not use it — refused when clicked, not merely hidden (the user is demoted
while the page is open, so the button is still on screen); and five bad passwords lock an
account at the sign-in form.

`PAGES` and `ACTIONS` are the matrix: a new page or action is one line in each.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, Page, expect

from gatehouse_core.ui.nav import PAGES as NAV_PAGES

from .browser import TIMEOUT_MS, keyed, main_title, wait_for_app
from .conftest import VIEWPORT, Console

pytestmark = pytest.mark.browser

ALL = frozenset({"viewer", "operator", "admin"})
STAFF = frozenset({"operator", "admin"})
ADMIN = frozenset({"admin"})
PASSWORD = "roles-e2e-password-1"
# In-tab navigation, as the back/forward buttons do: the Streamlit session survives.
_GO_TO_PATH = (
    "(path) => { history.pushState({}, '', path); dispatchEvent(new PopStateEvent('popstate')); }"
)


@dataclass(frozen=True)
class PageRow:
    title: str
    url_path: str
    roles: frozenset[str]  # who may open it


PAGES = (
    PageRow("Overview", "home", ALL),
    PageRow("Costs", "spend", ALL),
    PageRow("Requests", "audit-log", ALL),
    PageRow("Budgets & alerts", "budgets", ALL),
    PageRow("Playground", "chat", STAFF),
    PageRow("Models", "catalog", ALL),
    PageRow("Providers", "ai-providers", ADMIN),
    PageRow("Users", "people", ADMIN),
    PageRow("API tokens", "api-tokens", ADMIN),
    PageRow("Change history", "changes", ADMIN),
)


@dataclass(frozen=True)
class Action:
    """A state-changing button: `fill` prepares the form, `happened` says (through the CLI, or
    what the page shows) whether the change was made."""

    name: str
    page: str  # PageRow.title
    button: str  # the widget key
    roles: frozenset[str]  # who may do it
    fill: Callable[[Page], None]
    happened: Callable[[Console, Page], bool]


def _fill_provider(page: Page) -> None:
    keyed(page, "provider_add_name", "input").fill("refused-provider")
    keyed(page, "provider_add_base_url", "input").fill("https://openrouter.ai/api/v1")
    keyed(page, "provider_add_default_model", "input").fill("openai/gpt-4o-mini")


def _fill_user(page: Page) -> None:
    keyed(page, "users_add_username", "input").fill("refused-user")


def _nothing(page: Page) -> None:
    pass


def _listed(console: Console, *argv: str, name: str) -> bool:
    done = console.cli(*argv)
    assert done.returncode == 0, done.stderr
    return name in done.stdout


ACTIONS = (
    Action(
        "add a provider",
        "Providers",
        "provider_add_submit",
        ADMIN,
        _fill_provider,
        lambda c, _: _listed(c, "providers", "list", "--json", name="refused-provider"),
    ),
    Action(
        "add a user",
        "Users",
        "users_add_submit",
        ADMIN,
        _fill_user,
        lambda c, _: _listed(c, "users", "list", "--json", name="refused-user"),
    ),
    Action(
        "refresh the model catalog",
        "Models",
        "models_refresh",
        ADMIN,
        _nothing,
        # no provider is configured here: a refresh that ran says so on the page
        lambda _, page: page.get_by_text("No enabled provider to refresh from").count() > 0,
    ),
)


@pytest.fixture(scope="module")
def database() -> tuple[str, str]:
    """SQLite only: the roles live in one table read the same way on both databases, and each
    console server costs CI time (the walk in test_console_walk.py covers PostgreSQL)."""
    return "sqlite", "sqlite:///gatehouse.db"


def test_the_matrix_names_every_page_of_the_navigation() -> None:
    assert {(p.title, p.url_path) for p in PAGES} == {(s.title, s.url_path) for s in NAV_PAGES}


# ---- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def fresh_page(chromium_browser: Browser) -> Iterator[Callable[[], Page]]:
    """New pages in new browser contexts (no cookie shared between users)."""
    expect.set_options(timeout=TIMEOUT_MS)
    contexts = []

    def make() -> Page:
        context = chromium_browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


def add_user(console: Console, name: str, role: str) -> None:
    done = console.cli("users", "add", name, "--role", role, stdin=f"{PASSWORD}\n")
    assert done.returncode == 0, done.stderr


def sign_in(page: Page, console: Console, name: str, password: str, path: str = "/") -> None:
    page.goto(console.url(path))
    wait_for_app(page)
    keyed(page, "signin_username", "input").fill(name)
    keyed(page, "signin_password", "input").fill(password)
    keyed(page, "signin_submit", "button").click()


def go(page: Page, url_path: str) -> None:
    page.evaluate(_GO_TO_PATH, f"/{url_path}")
    wait_for_app(page)


def nav_titles(page: Page) -> list[str]:
    links = page.get_by_test_id("stSidebarNav").locator("a").all_inner_texts()
    return [text.strip().splitlines()[-1] for text in links]  # the icon's name comes first


# ---- pages per role --------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_each_role_reaches_exactly_its_pages(
    role: str, console: Console, fresh_page: Callable[[], Page]
) -> None:
    name = f"{role}-pages-{console.database}"
    add_user(console, name, role)
    page = fresh_page()
    sign_in(page, console, name, PASSWORD)
    expect(page.get_by_test_id("stSidebar")).to_contain_text(re.compile(rf"{name}\s*{role}"))
    wait_for_app(page)

    allowed = [p.title for p in PAGES if role in p.roles]
    assert sorted(nav_titles(page)) == sorted(allowed)
    for row in PAGES:
        go(page, row.url_path)
        if role in row.roles:
            expect(main_title(page)).to_have_text(row.title)
        else:  # the URL of a page the role may not open lands on the home page instead
            expect(main_title(page)).to_have_text("Overview")
            page.keyboard.press("Escape")  # Streamlit's "page not found" notice
    for row in (p for p in PAGES if role not in p.roles):  # a bookmark: a new session
        page.goto(console.url(f"/{row.url_path}"))
        wait_for_app(page)
        expect(page.get_by_test_id("stSidebar")).to_contain_text(re.compile(rf"{name}\s*{role}"))
        expect(main_title(page)).not_to_have_text(row.title)
        page.keyboard.press("Escape")


# ---- actions refused when clicked ------------------------------------------------------------


RANK = ("viewer", "operator", "admin")
# Per action, the most privileged role that may not use it (the refusal is one check of the
# role's permissions, so lesser roles add CI time, not coverage).
REFUSALS = [
    pytest.param(action, role, id=f"{action.name}-as-{role}")
    for action in ACTIONS
    for role in [max(ALL - action.roles, key=RANK.index)]
]


@pytest.mark.parametrize(("action", "role"), REFUSALS)
def test_an_action_on_screen_is_refused_once_the_role_may_not_use_it(
    action: Action, role: str, console: Console, fresh_page: Callable[[], Page]
) -> None:
    # An admin opens the page and fills the form; demoted while it is open, the button is
    # still on screen: clicking it must change nothing.
    name = f"demoted-{role}-{action.button}-{console.database}".replace("_", "-")
    add_user(console, name, "admin")
    add_user(console, f"spare-{name}", "admin")  # the last admin cannot be demoted
    page = fresh_page()
    row = next(p for p in PAGES if p.title == action.page)
    sign_in(page, console, name, PASSWORD, f"/{row.url_path}")
    expect(main_title(page)).to_have_text(action.page)
    wait_for_app(page)
    action.fill(page)
    button = keyed(page, action.button, "button")
    expect(button).to_be_visible()

    done = console.cli("users", "set-role", name, role)
    assert done.returncode == 0, done.stderr
    button.click()
    wait_for_app(page)

    expect(page.get_by_test_id("stSidebar")).to_contain_text(re.compile(rf"{name}\s*{role}"))
    expect(keyed(page, action.button)).to_have_count(0)
    assert not action.happened(console, page), f"{action.name} went through for a {role}"


# ---- sign-in throttling ----------------------------------------------------------------------


def test_five_bad_passwords_lock_the_account_even_for_the_right_one(
    console: Console, fresh_page: Callable[[], Page]
) -> None:
    name = f"locked-{console.database}"
    add_user(console, name, "viewer")
    page = fresh_page()
    page.goto(console.url("/"))
    wait_for_app(page)
    for attempt in range(5):
        keyed(page, "signin_username", "input").fill(name)
        keyed(page, "signin_password", "input").fill(f"wrong-password-{attempt}")
        keyed(page, "signin_submit", "button").click()
        wait_for_app(page)
        expect(page.get_by_test_id("stAlertContentError").last).to_be_visible()

    keyed(page, "signin_username", "input").fill(name)
    keyed(page, "signin_password", "input").fill(PASSWORD)
    keyed(page, "signin_submit", "button").click()
    wait_for_app(page)

    error = page.get_by_test_id("stAlertContentError").filter(has_text="Too many failed sign-ins")
    expect(error).to_be_visible()
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)  # not signed in
    done = console.cli("users", "unlock", name)  # an admin lifts it: the password works again
    assert done.returncode == 0, done.stderr
    sign_in(page, console, name, PASSWORD)
    expect(page.get_by_test_id("stSidebar")).to_contain_text(re.compile(rf"{name}\s*viewer"))
