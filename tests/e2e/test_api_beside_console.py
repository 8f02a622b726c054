"""The README's one start command serves the console and the HTTP API on one port.

`streamlit run app.py` → the console at `/` and the API at `/api/v1`, sharing one gateway:
the official openai SDK pointed at the console's port gets an answer from the fake upstream,
and the call is audited with the token's name. No browser needed.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from playwright.sync_api import Browser, expect

from tests.fakes.openrouter import FakeOpenRouter, Reply

from .conftest import Console, launch_console

MODEL = "openai/gpt-4o-mini"


@pytest.fixture(scope="module")
def served(
    database: tuple[str, str], artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Console]:
    home = tmp_path_factory.mktemp("api-console")
    yield from launch_console(database, home, artifacts / "api-console.log")


def _ok(console: Console, *args: str, stdin: str = "") -> str:
    done = console.cli(*args, stdin=stdin)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_openai_sdk_at_the_console_port_gets_an_audited_answer(
    served: Console, fake_upstream: FakeOpenRouter, api_key: str
) -> None:
    _ok(served, "providers", "add", "primary", "--base-url", fake_upstream.base_url,
        "--model", MODEL, "--api-key-stdin", stdin=f"{api_key}\n")  # fmt: skip
    token = json.loads(_ok(served, "tokens", "create", "svc", "--role", "operator", "--json"))
    fake_upstream.enqueue(Reply(text="served beside the console"))

    client = openai.OpenAI(base_url=served.url("/api/v1"), api_key=token["token"], max_retries=0)
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}]
    )

    assert answer.choices[0].message.content == "served beside the console"
    assert fake_upstream.chat_count == 1
    rows = []
    for _ in range(100):  # bounded: the audit writer flushes every 0.2 s
        rows = json.loads(_ok(served, "requests", "--json"))
        if rows:
            break
    assert [(r["actor"], r["source"], r["status"]) for r in rows] == [("token:svc", "api", "ok")]


def test_console_health_and_the_api_document_share_the_port(served: Console) -> None:
    with urllib.request.urlopen(served.url("/readyz"), timeout=10) as response:
        assert json.load(response)["status"] == "ok"
    with urllib.request.urlopen(served.url("/api/v1/openapi.json"), timeout=10) as response:
        document = json.load(response)
    served_at = document["servers"][0]["url"] if document.get("servers") else ""
    assert f"{served_at}/v1/chat/completions".endswith("/api/v1/chat/completions")
    assert "/v1/chat/completions" in document["paths"]
    with urllib.request.urlopen(served.url("/"), timeout=10) as response:
        assert response.status == 200


@pytest.mark.browser
def test_the_api_docs_page_renders_the_endpoints_under_the_consoles_csp(
    served: Console, chromium_browser: Browser
) -> None:
    context = chromium_browser.new_context()
    try:
        page = context.new_page()
        violations: list[str] = []
        page.on(
            "console",
            lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
        )
        elsewhere: list[str] = []
        page.on(
            "request",
            lambda r: None if r.url.startswith(served.base_url) else elsewhere.append(r.url),
        )

        answer = page.goto(served.url("/api/docs"))

        assert (
            answer is not None and "default-src 'self'" in answer.headers["content-security-policy"]
        )
        paths = page.locator(".opblock-summary-path")
        expect(paths.filter(has_text="/v1/chat/completions").first).to_be_visible(timeout=30_000)
        expect(paths.filter(has_text="/v1/settings/providers").first).to_be_visible()
        assert violations == [] and elsewhere == []
    finally:
        context.close()
