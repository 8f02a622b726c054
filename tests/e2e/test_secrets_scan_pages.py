"""Secrets scan, browser part: a console server at DEBUG logging; an admin uses Providers
(test connection, the expanded edit form and stored JSON), the Playground (an answer, and a call
through a provider whose key the upstream rejects with 401), Requests and Change history. Every
page's HTML and live field values, and the server's whole log, hold no API key, no admin
password and no 12-character piece of either. The CLI, library, HTTP API and database part is
tests/core/test_secrets_scan.py."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.core.test_secrets_scan import Evidence
from tests.fakes.openrouter import DEFAULT_REPLY_TEXT, FakeOpenRouter

from .browser import Walk, keyed, main_title, wait_for_app
from .conftest import Console, launch_console

pytestmark = pytest.mark.browser

ADMIN = "scanner"
PASSWORD = f"Scan-{secrets.token_urlsafe(18)}"
GOOD_KEY = f"sk-or-v1-{secrets.token_hex(32)}"
REJECTED_KEY = f"sk-or-v1-{secrets.token_hex(32)}"


@pytest.fixture(scope="module")
def database() -> tuple[str, str]:
    """SQLite only: what a page shows does not depend on the database (the table dump on
    both databases is the core part's)."""
    return "sqlite", "sqlite:///gatehouse.db"


@pytest.fixture(scope="module")
def console(
    chromium: Path,
    database: tuple[str, str],
    artifacts: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Console]:
    home = tmp_path_factory.mktemp("console-debug")
    yield from launch_console(
        database,
        home,
        artifacts / "streamlit-debug.log",
        GATEHOUSE_LOG_LEVEL="DEBUG",
        GATEHOUSE_CONFIG_TTL="0",  # a provider disabled through the CLI counts at once
    )


def cli_ok(console: Console, *argv: str, stdin: str = "") -> None:
    done = console.cli(*argv, stdin=stdin)
    assert done.returncode == 0, done.stderr


def open_page(page: Page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").locator("a").filter(has_text=title).click()
    expect(main_title(page)).to_have_text(title)
    wait_for_app(page)


def ask(page: Page, text: str) -> None:
    prompt = page.get_by_test_id("stChatInputTextArea")
    prompt.fill(text)
    prompt.press("Enter")
    wait_for_app(page)


def test_no_secret_or_piece_of_one_on_any_page_or_in_the_server_log(
    console: Console, console_page: Page, artifacts: Path
) -> None:
    page, walk = console_page, Walk(console_page, artifacts)
    with FakeOpenRouter(valid_keys={GOOD_KEY}) as fake:
        cli_ok(console, "users", "add", ADMIN, "--role", "admin", stdin=f"{PASSWORD}\n")
        for name, key, priority in (("good", GOOD_KEY, "1"), ("rejected", REJECTED_KEY, "2")):
            cli_ok(
                console, "providers", "add", name, "--base-url", fake.base_url,
                "--model", f"test/{name}", "--priority", priority, "--api-key-stdin", stdin=key,
            )  # fmt: skip
        page.goto(console.url("/ai-providers"))
        wait_for_app(page)
        keyed(page, "signin_username", "input").fill(ADMIN)
        keyed(page, "signin_password", "input").fill(PASSWORD)
        keyed(page, "signin_submit", "button").click()
        expect(main_title(page)).to_have_text("Providers")
        walk.record("providers")
        keyed(page, "provider_test", "button").click()
        wait_for_app(page)
        for expander in page.get_by_test_id("stExpander").all():
            expander.locator("summary").click()
        walk.record("providers-tested-expanded", errors_expected=True)

        open_page(page, "Playground")
        ask(page, "hello from the scan")
        expect(page.get_by_test_id("stChatMessage").last).to_contain_text(DEFAULT_REPLY_TEXT)
        walk.record("playground-answer")
        cli_ok(console, "providers", "disable", "good")  # only the rejected key is left
        ask(page, "through the rejected key")
        walk.record("playground-401", errors_expected=True)
        cli_ok(console, "providers", "enable", "good")

        for title in ("Requests", "Change history"):
            open_page(page, title)
            walk.record(title.lower().replace(" ", "-"))
        assert any(r.api_key == REJECTED_KEY for r in fake.chat_requests)  # the 401 happened

    evidence = Evidence()
    for name, html in walk.visited:
        evidence.add(f"page {name}", html)
    server_log = console.log.read_text(errors="replace")
    assert "LLM request completed" in server_log  # the server logged the calls it made
    evidence.add("the console server's log", server_log)
    named = {
        "the provider key": GOOD_KEY,
        "the rejected key": REJECTED_KEY,
        "the admin password": PASSWORD,
    }
    assert evidence.leaks(named) == []
