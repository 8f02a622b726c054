"""`gatehouse models` and `gatehouse models refresh`, through the real entry point."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from gatehouse_core.catalog import DEFAULT_CATALOG
from gatehouse_core.cli import main
from tests.fakes.openrouter import FakeOpenRouter

JSON_KEYS = {
    "id",
    "name",
    "context_length",
    "prompt_price",
    "completion_price",
    "cache_read_price",
    "request_price",
    "source",
    "refreshed_at",
}


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as server:
        yield server


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def add_provider(name: str, base_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["providers", "add", name, "--base-url", base_url, "--model", "openai/gpt-4o-mini"]
    assert main(argv) == 0
    capsys.readouterr()


def run_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict]:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_models_lists_the_offline_defaults_before_any_refresh(capsys):
    assert main(["models"]) == 0

    out = capsys.readouterr().out
    header, *rows = out.splitlines()
    assert header.split()[:5] == ["ID", "NAME", "CONTEXT", "$/1M", "IN"]
    sonnet = next(r for r in rows if r.startswith("anthropic/claude-sonnet-4 "))
    assert "1,000,000" in sonnet and " 3 " in sonnet and " 15 " in sonnet and "default" in sonnet
    assert (
        f"{len(DEFAULT_CATALOG)} models ({len(DEFAULT_CATALOG)} from the offline defaults)" in out
    )
    assert "gatehouse models refresh" in out


def test_models_json_lists_objects_with_the_documented_keys(capsys):
    models = run_json(["models", "--json"], capsys)

    assert len(models) == len(DEFAULT_CATALOG)
    assert all(set(m) == JSON_KEYS for m in models)
    mini = next(m for m in models if m["id"] == "openai/gpt-4o-mini")
    assert (mini["prompt_price"], mini["completion_price"]) == (0.00000015, 0.0000006)
    assert mini["refreshed_at"] == "2025-12-02T00:00:00+00:00"


def test_models_search_filters_by_id_or_name(capsys):
    models = run_json(["models", "--search", "Gemini", "--json"], capsys)

    assert [m["id"] for m in models] == [
        "google/gemini-2.5-flash",
        "google/gemini-2.5-flash-lite",
        "google/gemini-2.5-pro",
    ]


def test_models_search_without_matches_says_so(capsys):
    assert main(["models", "--search", "no-such-model"]) == 0

    assert capsys.readouterr().out.strip() == "No models match 'no-such-model'."


def test_refresh_reports_each_provider_and_stores_the_reachable_ones(capsys, fake):
    port = closed_port()
    add_provider("up", fake.base_url, capsys)
    add_provider("down", f"http://127.0.0.1:{port}/api/v1", capsys)

    assert main(["models", "refresh"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("up: 335 models in ")
    assert lines[1] == (
        f"down: failed: http://127.0.0.1:{port}/api/v1/models did not answer like an "
        "OpenAI-compatible API; check the provider's base URL (the server log has the details)"
    )
    assert lines[2] == "Refreshed 1 of 2 providers: 335 models in the catalog"
    found = run_json(["models", "--json", "--search", "gpt-4o-mini"], capsys)
    assert {m["source"] for m in found} == {"up"}


def test_refresh_json_prints_one_result_per_provider(capsys, fake):
    add_provider("up", fake.base_url, capsys)

    results = run_json(["models", "refresh", "--json"], capsys)

    assert len(results) == 1
    assert results[0] | {"latency_ms": None} == {
        "provider": "up",
        "ok": True,
        "count": 335,
        "error": None,
        "latency_ms": None,
    }


def test_json_before_the_refresh_action_is_honoured(capsys, fake):
    add_provider("up", fake.base_url, capsys)

    results = run_json(["models", "--json", "refresh"], capsys)

    assert [r["provider"] for r in results] == ["up"]


def test_refresh_exits_nonzero_when_every_provider_fails(capsys):
    add_provider("down", f"http://127.0.0.1:{closed_port()}/api/v1", capsys)

    assert main(["models", "refresh"]) == 1

    assert "Refreshed 0 of 1 providers" in capsys.readouterr().out


def test_refresh_without_providers_says_how_to_add_one(capsys):
    assert main(["models", "refresh"]) == 1

    assert "gatehouse providers add" in capsys.readouterr().err


def test_refresh_and_list_as_a_subprocess(capsys, fake):
    add_provider("up", fake.base_url, capsys)
    run = [sys.executable, "-m", "gatehouse_core", "models"]

    refreshed = subprocess.run(
        [*run, "refresh"], capture_output=True, text=True, timeout=60, env=os.environ.copy()
    )
    listed = subprocess.run(
        [*run, "--search", "llama-3.3-70b", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )

    assert refreshed.returncode == 0, refreshed.stderr
    assert "Refreshed 1 of 1 providers: 335 models in the catalog" in refreshed.stdout
    assert listed.returncode == 0, listed.stderr
    ids = [m["id"] for m in json.loads(listed.stdout)]
    assert "meta-llama/llama-3.3-70b-instruct:free" in ids
