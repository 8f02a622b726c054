"""The spend pages in a real browser: Overview as home, Costs with its charts and a CSV
download, Requests with one call's attempt chain opened by link.

Spend history is written straight into the console's database (the same hand-made rows the
AppTests use); the users come from the real CLI. Screenshots go to test-artifacts/e2e/;
`GATEHOUSE_TEST_UPDATE_SCREENSHOTS=1` copies the SQLite run's to docs/screenshots/.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from gatehouse_core.db import make_engine
from tests.spend_rows import known_dataset, store

from .browser import Walk, keyed, main_title, wait_for_app
from .conftest import REPO, Console

pytestmark = pytest.mark.browser

USER, PASSWORD = "carla", "carla-e2e-pass"
DOC_SCREENSHOTS = {
    "overview": "overview.png",
    "costs": "costs.png",
    "request-detail": "requests.png",
}


def seed(console: Console) -> None:
    url = console.env["GATEHOUSE_DATABASE_URL"]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = f"sqlite:///{console.home / url.removeprefix('sqlite:///')}"
    engine = make_engine(url)
    store(engine, known_dataset(datetime.now(UTC)))
    engine.dispose()
    done = console.cli("users", "add", USER, "--role", "viewer", stdin=f"{PASSWORD}\n")
    assert done.returncode == 0, done.stderr


def open_page(page: Page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").locator("a").filter(has_text=title).click()
    expect(main_title(page)).to_have_text(title)


def test_overview_costs_and_a_request_detail(
    console: Console, console_page: Page, artifacts: Path
) -> None:
    seed(console)
    page, walk = console_page, Walk(console_page, artifacts)
    page.goto(console.url("/"))
    keyed(page, "signin_username", "input").fill(USER)
    keyed(page, "signin_password", "input").fill(PASSWORD)
    keyed(page, "signin_submit", "button").click()
    expect(main_title(page)).to_have_text("Overview")
    walk.forbid(PASSWORD, "the user's password")
    metrics = page.get_by_test_id("stMetric")
    expect(metrics.filter(has_text="Today")).to_contain_text("$0.50")
    expect(metrics.filter(has_text="Error rate")).to_contain_text("20.0%")
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(1)
    walk.record("overview")

    open_page(page, "Costs")
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(5)
    walk.record("costs")
    with page.expect_download() as info:
        keyed(page, "costs_csv", "button").click()
    csv_text = Path(info.value.path()).read_text()
    assert csv_text.splitlines()[0].startswith("Model,Calls,Attempts")
    assert "m/one,4," in csv_text and "m/two,1," in csv_text

    open_page(page, "Requests")
    expect(page.get_by_test_id("stDataFrame")).to_have_count(1)
    walk.record("requests")
    picker = keyed(page, "requests_detail", "input")
    picker.click()
    picker.fill("r-a")
    page.keyboard.press("Enter")
    wait_for_app(page)
    call = page.get_by_test_id("stMarkdown").filter(has_text="2 attempts")
    expect(call).to_contain_text("ended ok on beta")
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(1)
    walk.record("request-detail")
    update_doc_screenshots(console, artifacts)


def update_doc_screenshots(
    console: Console, artifacts: Path, shots: dict[str, str] = DOC_SCREENSHOTS
) -> None:
    if os.environ.get("GATEHOUSE_TEST_UPDATE_SCREENSHOTS", "") in ("", "0"):
        return
    if console.database != "sqlite":
        return
    target = REPO / "docs" / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    for name, doc_name in shots.items():
        (shot,) = artifacts.glob(f"[0-9][0-9]-{name}.png")
        shutil.copyfile(shot, target / doc_name)
