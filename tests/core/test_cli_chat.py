"""`gatehouse chat` and `gatehouse providers test` through the real CLI entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.core.cli import run
from tests.fakes.openrouter import DEFAULT_KEY, Error, FakeOpenRouter, Reply

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def provider(
    fake_openrouter: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch, capsys
) -> FakeOpenRouter:
    monkeypatch.setenv("TEST_OR_KEY", DEFAULT_KEY)
    code, _, err = run(
        capsys,
        "providers",
        "add",
        "primary",
        "--base-url",
        fake_openrouter.base_url,
        "--model",
        "openai/gpt-4o-mini",
        "--api-key-env",
        "TEST_OR_KEY",
    )
    assert code == 0, err
    return fake_openrouter


def test_chat_prints_the_answer_and_an_accounting_line(provider, capsys) -> None:
    provider.enqueue(Reply(text="Four words exactly here", cost=0.00042))
    code, out, err = run(capsys, "chat", "How are you?", "--workflow-id", "wf-7")
    assert code == 0
    assert out == "Four words exactly here\n"
    assert "primary · openai/gpt-4o-mini" in err and "$0.000420 (provider)" in err
    sent = provider.chat_requests[-1].body
    assert sent["messages"] == [{"role": "user", "content": "How are you?"}]
    assert sent["usage"] == {"include": True}


def test_chat_json_has_the_chat_result_fields(provider, capsys) -> None:
    code, out, _ = run(capsys, "chat", "hi", "--json", "--system", "Be brief", "--max-tokens", "50")
    assert code == 0
    data = json.loads(out)
    assert {
        "text",
        "provider",
        "model",
        "request_id",
        "generation_id",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "cost_usd",
        "cost_source",
        "latency_ms",
        "ttft_ms",
        "finish_reason",
        "attempts",
    } <= set(data)
    assert data["provider"] == "primary" and data["cost_source"] == "provider"
    assert data["attempts"][0]["status"] == "ok"
    body = provider.chat_requests[-1].body
    assert body["messages"][0] == {"role": "system", "content": "Be brief"}
    assert body["max_tokens"] == 50


def test_chat_stream_prints_deltas_and_ttft(provider, capsys) -> None:
    code, out, err = run(capsys, "chat", "stream please", "--stream")
    assert code == 0
    assert out == "Hello from fake OpenRouter\n"
    assert "first token" in err
    assert provider.chat_requests[-1].body["stream"] is True


def test_chat_leaves_audit_rows_that_requests_json_shows(provider, capsys) -> None:
    provider.enqueue(Error(status=502), Reply(text="second time lucky"))
    code, out, _ = run(capsys, "chat", "retry me", "--trace-id", "tr-1")
    assert code == 0 and out == "second time lucky\n"
    code, out, _ = run(capsys, "requests", "--json")
    rows = json.loads(out)
    assert [(r["attempt"], r["status"], r["http_status"]) for r in reversed(rows)] == [
        (1, "error", 502),
        (2, "ok", 200),
    ]
    assert {r["trace_id"] for r in rows} == {"tr-1"} and {r["source"] for r in rows} == {"cli"}
    assert len({r["request_id"] for r in rows}) == 1


def test_chat_failure_is_one_line_with_the_cause(provider, capsys) -> None:
    provider.always(Error.insufficient_credits())
    code, out, err = run(capsys, "chat", "hi")
    assert code == 1 and out == ""
    assert err.startswith("error: All providers failed.") and err.count("\n") == 1
    assert "402" in err and "add credits" in err
    assert "Traceback" not in err and DEFAULT_KEY not in err


def test_chat_with_an_invalid_model_id_is_refused_before_any_call(provider, capsys) -> None:
    code, _, err = run(capsys, "chat", "hi", "--model", "not a model")
    assert code == 1 and "is not a model id" in err
    assert provider.chat_count == 0


def test_providers_test_reports_reachability_and_key(provider, capsys) -> None:
    code, out, _ = run(capsys, "providers", "test", "primary")
    assert code == 0
    assert "reachable  yes" in out and "api key    valid" in out
    assert DEFAULT_KEY not in out
    code, out, _ = run(capsys, "providers", "test", "primary", "--json")
    data = json.loads(out)
    assert data["ok"] is True and data["reachable"] is True and data["key_valid"] is True


def test_providers_test_exits_1_when_the_key_is_rejected(provider, capsys, monkeypatch) -> None:
    monkeypatch.setenv("BAD_KEY", "sk-or-v1-not-a-valid-key-9999")
    assert run(capsys, "providers", "set-key", "primary", "--api-key-env", "BAD_KEY")[0] == 0
    code, out, _ = run(capsys, "providers", "test", "primary")
    assert code == 1 and "INVALID" in out and "sk-or-v1-not-a-valid-key-9999" not in out


def test_chat_in_a_subprocess_against_the_fake(provider) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "gatehouse_core", "chat", "from a subprocess"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Hello from fake OpenRouter\n"
    assert provider.chat_requests[-1].body["messages"][0]["content"] == "from a subprocess"


def test_a_key_pasted_as_the_model_is_refused_without_echoing_it(provider, capsys) -> None:
    for pasted in (DEFAULT_KEY, "gsk_" + "k" * 40):
        code, out, err = run(capsys, "chat", "hi", "--model", pasted)
        assert code == 1 and "looks like an API key" in err
        assert pasted not in out + err
    assert provider.chat_requests == []
