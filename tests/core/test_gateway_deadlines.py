"""GATEHOUSE_REQUEST_TIMEOUT bounds an attempt's total time, not the idle time between bytes,
and GATEHOUSE_CALL_TIMEOUT bounds the whole call. An upstream that trickles keep-alive bytes or
slow chunks is cut: the attempt is classified as a timeout, audited, and the call falls back.
Small timeouts keep these fast; the assertions are about outcomes, not wall time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gatehouse_core import AllProvidersFailed, Gateway, StreamInterrupted
from tests.fakes.openrouter import FakeOpenRouter, Reply

MESSAGES = [{"role": "user", "content": "Say hello to the gateway, please."}]
Factory = Callable[..., Gateway]
TRICKLE = Reply(text="too late", trickle_seconds=4.0, trickle_interval=0.05)


class Sink:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def submit(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def close(self) -> None:
        pass


def test_a_trickling_json_answer_is_cut_at_the_deadline_and_falls_back(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    sink = Sink()
    gateway = gateway_factory("a", "b", timeout=0.4, audit=sink)
    fake_openrouter.always(TRICKLE, model="test/a")

    result = gateway.chat(MESSAGES)

    assert (result.provider, result.text) == ("b", "Hello from fake OpenRouter")
    assert [a.error_type for a in result.attempts] == ["timeout"] * 4 + [None]
    assert "GATEHOUSE_REQUEST_TIMEOUT" in result.attempts[0].error_message
    assert [(r["provider"], r["error_type"]) for r in sink.rows][:4] == [("a", "timeout")] * 4


def test_a_stream_trickling_keepalives_before_its_first_token_is_cut_and_falls_back(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a", "b", timeout=0.4)
    fake_openrouter.always(TRICKLE, model="test/a")

    stream = gateway.stream(MESSAGES)
    text = "".join(stream)

    assert text == "Hello from fake OpenRouter"
    assert stream.result.provider == "b"
    assert [a.error_type for a in stream.result.attempts] == ["timeout"] * 4 + [None]


def test_a_stream_of_slow_chunks_is_cut_at_the_deadline(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    sink = Sink()
    gateway = gateway_factory("a", "b", timeout=0.4, audit=sink)
    words = " ".join(f"w{i}" for i in range(40))
    fake_openrouter.enqueue(Reply(text=words, chunk_delay=0.1))

    with pytest.raises(StreamInterrupted) as cut:
        "".join(gateway.stream(MESSAGES))

    assert cut.value.partial_text and words.startswith(cut.value.partial_text)
    assert cut.value.partial_text != words
    last = cut.value.attempts[-1]
    assert (last.status, last.error_type) == ("incomplete", "timeout")
    assert [(r["status"], r["error_type"]) for r in sink.rows] == [("incomplete", "timeout")]


def test_the_call_deadline_bounds_retries_and_fallback(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    sink = Sink()
    gateway = gateway_factory("a", "b", timeout=30, call_timeout=0.5, audit=sink)
    fake_openrouter.always(TRICKLE)

    with pytest.raises(AllProvidersFailed) as failed:
        gateway.chat(MESSAGES)

    assert "GATEHOUSE_CALL_TIMEOUT" in str(failed.value)
    attempts = failed.value.attempts
    assert attempts and all(a.error_type == "timeout" for a in attempts)
    assert len(sink.rows) == len(attempts)  # every attempt made is audited
    assert fake_openrouter.chat_count == len(attempts)


def test_a_callers_own_timeout_argument_shortens_the_attempt(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a", "b", timeout=30)
    fake_openrouter.always(TRICKLE, model="test/a")

    result = gateway.chat(MESSAGES, timeout=0.3)

    assert result.provider == "b"
    assert result.attempts[0].error_type == "timeout"
