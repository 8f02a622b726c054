"""Budgets & alerts and API tokens in a real browser: an admin sets a budget and creates a
token (shown once), a fired alert puts the banner on every page, and acknowledging clears it.

The admin comes from the real CLI; the alert is fired through the library against the console's
database, as a gateway process would. Screenshots go to test-artifacts/e2e/;
`GATEHOUSE_TEST_UPDATE_SCREENSHOTS=1` copies the SQLite run's to docs/screenshots/.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from gatehouse_core.db import make_engine
from gatehouse_core.spend.alerts import Alerts

from .browser import Walk, keyed, main_title, wait_for_app
from .conftest import Console
from .test_spend_walk import update_doc_screenshots

pytestmark = pytest.mark.browser

ADMIN, PASSWORD = "bea", "bea-e2e-password-1"
DOC_SCREENSHOTS = {"budgets": "budgets.png", "tokens": "tokens.png"}
BANNER = ".st-key-alert_banner"


def console_engine(console: Console):  # type: ignore[no-untyped-def]
    url = console.env["GATEHOUSE_DATABASE_URL"]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = f"sqlite:///{console.home / url.removeprefix('sqlite:///')}"
    return make_engine(url)


def open_page(page: Page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").locator("a").filter(has_text=title).click()
    expect(main_title(page)).to_have_text(title)
    wait_for_app(page)


def test_admin_budget_token_once_and_the_alert_banner(
    console: Console, console_page: Page, artifacts: Path
) -> None:
    done = console.cli("users", "add", ADMIN, "--role", "admin", stdin=f"{PASSWORD}\n")
    assert done.returncode == 0, done.stderr
    page, walk = console_page, Walk(console_page, artifacts)
    page.goto(console.url("/"))
    keyed(page, "signin_username", "input").fill(ADMIN)
    keyed(page, "signin_password", "input").fill(PASSWORD)
    keyed(page, "signin_submit", "button").click()
    expect(main_title(page)).to_have_text("Overview")
    walk.forbid(PASSWORD, "the admin's password")

    # A global budget of $25 a month, set in the form.
    open_page(page, "Budgets & alerts")
    keyed(page, "budgets_monthly", "input").fill("25")
    keyed(page, "budgets_save", "button").click()
    wait_for_app(page)
    expect(page.get_by_test_id("stAlertContentSuccess")).to_contain_text(
        "Set the global budget: $25.00 a month, action block."
    )
    listed = json.loads(console.cli("budgets", "list", "--json").stdout)
    assert [(b["scope"], b["monthly_usd"], b["action"]) for b in listed] == [
        ("global", 25.0, "block")
    ]

    # A token: shown once in a copy box, gone after a reload.
    open_page(page, "API tokens")
    keyed(page, "tokens_name", "input").fill("ci-bot")
    keyed(page, "tokens_create", "button").click()
    wait_for_app(page)
    code = page.get_by_test_id("stCode")
    expect(code).to_have_count(1)
    token = code.inner_text().strip()
    assert token.startswith("gh_")
    walk.forbid(token, "the API token")
    tokens = json.loads(console.cli("tokens", "list", "--json").stdout)
    assert [(t["name"], t["role"], t["status"]) for t in tokens] == [
        ("ci-bot", "operator", "active")
    ]
    page.reload()
    wait_for_app(page)
    expect(main_title(page)).to_have_text("API tokens")
    expect(page.get_by_test_id("stCode")).to_have_count(0)
    walk.record("tokens")  # also checks the token is nowhere in the page any more

    # An alert fired elsewhere: the banner shows on every page until acknowledged.
    engine = console_engine(console)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    Alerts(engine).fire(
        "hourly_spend",
        "hourly_spend",
        50.0,
        61.25,
        hour,
        hour + timedelta(hours=1),
        "GateHouse spent $61.25 this hour, over the $50.00/hour alert",
    )
    engine.dispose()
    # Another process fired it: this console sees it once its cached read (a few seconds) lapses.
    for _ in range(20):
        page.reload()
        wait_for_app(page)
        if page.locator(BANNER).count():
            break
        page.wait_for_timeout(1000)
    expect(page.locator(BANNER)).to_contain_text("$61.25 this hour")
    open_page(page, "Budgets & alerts")
    expect(page.locator(BANNER)).to_contain_text("1 unacknowledged cost alert")
    walk.record("budgets", errors_expected=True)  # the banner is an error box
    keyed(page, "banner_ack", "button").first.click()
    wait_for_app(page)
    expect(page.locator(BANNER)).to_have_count(0)
    open_page(page, "Overview")
    expect(page.locator(BANNER)).to_have_count(0)
    alerts = json.loads(console.cli("alerts", "list", "--json").stdout)["alerts"]
    assert alerts[0]["acknowledged_at"] is not None
    update_doc_screenshots(console, artifacts, DOC_SCREENSHOTS)
