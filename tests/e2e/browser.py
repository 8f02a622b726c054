"""Helpers for driving the Streamlit console in a real browser.

`wait_for_app` waits the way Streamlit's own e2e suite does; `Walk` records every page a test
visits (a full-page screenshot in test-artifacts/e2e/, the HTML and the live input values) and
checks each for tracebacks, error boxes and leaked secrets.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
TIMEOUT_MS = 30_000
MAX_SHOT_HEIGHT = 4000

APP = '[data-testid="stApp"]'
# Streamlit scrolls inside these, so the document alone is only as tall as the viewport. (The
# main area's test id changes to stAppScrollToBottomContainer on pages with a chat input; its
# class stays.)
_CONTENT_HEIGHT = """() => Math.max(window.innerHeight, ...[".stMain", '[data-testid="stSidebarContent"]']
    .map((css) => document.querySelector(css)?.scrollHeight ?? 0))"""
_TWO_FRAMES = "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
# Form fields' live values: React keeps them in properties that page.content() does not show.
_FIELD_VALUES = """() => Array.from(document.querySelectorAll("input, textarea"))
    .map((e) => e.value).join("\\n")"""


def wait_for_app(page: Page, timeout: int = TIMEOUT_MS) -> None:
    """Until the app is connected, its script run has finished and nothing is still loading."""
    expect(page.locator(f'{APP}[data-test-connection-state="CONNECTED"]')).to_be_attached(
        timeout=timeout
    )
    expect(page.locator(f'{APP}[data-test-script-state="notRunning"]')).to_be_attached(
        timeout=timeout
    )
    expect(page.locator('[data-testid="stSkeleton"]')).to_have_count(0, timeout=timeout)


def full_page_screenshot(page: Page, path: Path) -> None:
    """Grow the viewport to the content's height for the shot, then put it back."""
    viewport = page.viewport_size or {"width": 1400, "height": 900}
    height = min(int(page.evaluate(_CONTENT_HEIGHT)), MAX_SHOT_HEIGHT)
    page.set_viewport_size({"width": viewport["width"], "height": height})
    page.evaluate(_TWO_FRAMES)  # let the grid canvases repaint at the new size
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(viewport)
        page.evaluate(_TWO_FRAMES)


def keyed(page: Page, key: str, inner: str = "") -> Locator:
    """The element of the widget with `key` (Streamlit adds CSS class `st-key-<key>`)."""
    return page.locator(f".st-key-{key} {inner}".strip())


def main_title(page: Page) -> Locator:
    """The page's `st.title` (stMainBlockContainer is there with and without a chat input)."""
    return page.locator('[data-testid="stMainBlockContainer"] h1')


class Walk:
    """Records each page visited and holds it to the rules every page must keep."""

    def __init__(self, page: Page, artifacts: Path) -> None:
        self.page = page
        self.artifacts = artifacts
        self.visited: list[tuple[str, str]] = []  # (name, HTML + field values)
        self.forbidden: dict[str, str] = {}  # secret -> what it is, for the failure message

    def forbid(self, secret: str, what: str) -> None:
        """From now on, `secret` must not appear in any recorded page."""
        self.forbidden[secret] = what

    def record(self, name: str, *, errors_expected: bool = False) -> str:
        """Screenshot the settled page, then check it; returns its HTML and field values."""
        wait_for_app(self.page)
        full_page_screenshot(self.page, self.artifacts / f"{len(self.visited) + 1:02d}-{name}.png")
        text = self.page.content() + "\n" + self.page.evaluate(_FIELD_VALUES)
        self.visited.append((name, text))
        exceptions = self.page.locator('[data-testid="stException"]')
        if exceptions.count():
            pytest.fail(f"{name}: the page shows an exception: {exceptions.all_inner_texts()}")
        errors = self.page.locator('[data-testid="stAlertContentError"]')
        if not errors_expected and errors.count():
            pytest.fail(f"{name}: the page shows an error: {errors.all_inner_texts()}")
        self.assert_clean(name, text)
        return text

    def assert_clean(self, name: str, text: str) -> None:
        for secret, what in self.forbidden.items():
            if secret in text:
                # Never print the secret itself, only where it was found.
                pytest.fail(f"{what} appears in plaintext in the page {name!r}")
