"""Gateway.stream against the fake OpenRouter: deltas, the final result, both usage-chunk
forms, keep-alive comments, retry and fallback before the first token, interruption after."""

from __future__ import annotations

import gc
from collections.abc import Callable

import pytest

from gatehouse_core import ChatStream, Gateway, InvalidRequest, RateLimit, StreamInterrupted
from gatehouse_core.catalog import Catalog
from gatehouse_core.policy import backoff_seconds
from gatehouse_core.ratelimit import RateLimiter
from tests.core.conftest import RAND
from tests.fakes.openrouter import (
    Error,
    Error200,
    FakeOpenRouter,
    MidStreamError,
    Reply,
    StreamCut,
    count_completion_tokens,
    count_prompt_tokens,
    fake_cost,
)

MESSAGES = [{"role": "user", "content": "Say hello to the gateway, please."}]
BACKOFFS = [backoff_seconds(n, lambda: RAND) for n in range(3)]
Factory = Callable[..., Gateway]


def models_sent(fake: FakeOpenRouter) -> list[str]:
    return [r.body["model"] for r in fake.chat_requests]


def drain(stream: ChatStream) -> list[str]:
    return list(stream)


def test_stream_yields_text_deltas(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")
    fake_openrouter.enqueue(Reply(text="one two three"))

    stream = gateway.stream(MESSAGES)

    assert stream.result is None
    assert drain(stream) == ["one", " two", " three"]
    body = fake_openrouter.chat_requests[0].body
    assert body["stream"] is True
    assert body["usage"] == {"include": True}


@pytest.mark.parametrize("form", ["empty_choices", "empty_delta"])
def test_result_after_the_stream_has_usage_cost_and_ttft(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, form: str
) -> None:
    gateway = gateway_factory("a")
    fake_openrouter.enqueue(
        Reply(text="one two three", usage_chunk=form, cached_tokens=2, reasoning_tokens=4)
    )

    stream = gateway.stream(MESSAGES, workflow_id="wf-1")
    text = "".join(stream)

    result = stream.result
    prompt = count_prompt_tokens({"messages": MESSAGES})
    completion = count_completion_tokens(text) + 4
    assert (result.text, result.provider, result.model) == ("one two three", "a", "test/a")
    assert (result.input_tokens, result.output_tokens) == (prompt, completion)
    assert (result.cached_tokens, result.reasoning_tokens) == (2, 4)
    assert (result.cost_usd, result.cost_source) == (fake_cost(prompt, completion), "provider")
    assert result.finish_reason == "stop"
    assert result.generation_id.startswith("gen-")
    assert result.ttft_ms is not None
    assert 0 <= result.ttft_ms <= result.latency_ms


def test_keepalive_comments_never_reach_the_text(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")
    fake_openrouter.enqueue(Reply(text="alpha beta", keepalive_comments=True))

    stream = gateway.stream(MESSAGES)

    assert "".join(stream) == "alpha beta"
    assert stream.result.text == "alpha beta"


def test_stream_reports_the_model_that_answered(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")
    fake_openrouter.enqueue(Reply(model_used="anthropic/claude-sonnet-4.5"))

    stream = gateway.stream(MESSAGES, model="openrouter/auto")
    drain(stream)

    assert stream.result.model == "anthropic/claude-sonnet-4.5"
    assert stream.result.attempts[0].model == "openrouter/auto"


# ---- before the first token: retry and fallback -----------------------------------------------


def test_error_before_the_first_token_falls_back(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, sleeps: list[float]
) -> None:
    gateway = gateway_factory("a", "b")
    fake_openrouter.always(Error(502), model="test/a")
    fake_openrouter.enqueue(Reply(text="from b"), model="test/b")

    stream = gateway.stream(MESSAGES)

    assert "".join(stream) == "from b"
    assert stream.result.provider == "b"
    assert models_sent(fake_openrouter) == ["test/a"] * 4 + ["test/b"]
    assert sleeps == BACKOFFS


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        (MidStreamError(after_chunks=0), "provider_unavailable"),
        (StreamCut(after_chunks=0), "connection_error"),
        (Error200(code=503), "service_unavailable"),
    ],
    ids=["error-event", "cut", "200-with-error"],
)
def test_failure_before_any_token_is_retried(
    gateway_factory: Factory,
    fake_openrouter: FakeOpenRouter,
    sleeps: list[float],
    fault: object,
    error_type: str,
) -> None:
    gateway = gateway_factory("a", "b")
    fake_openrouter.enqueue(fault, Reply(text="second try"))

    stream = gateway.stream(MESSAGES)

    assert "".join(stream) == "second try"
    assert stream.result.provider == "a"
    assert [(a.status, a.error_type) for a in stream.result.attempts] == [
        ("error", error_type),
        ("ok", None),
    ]
    assert sleeps == BACKOFFS[:1]


def test_bad_request_on_a_stream_raises_before_any_token(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a", "b")
    fake_openrouter.always(Error.invalid_model("test/a"), model="test/a")

    with pytest.raises(InvalidRequest, match="is not a valid model ID"):
        drain(gateway.stream(MESSAGES))

    assert models_sent(fake_openrouter) == ["test/a"]


# ---- after the first token: StreamInterrupted ------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "partial"),
    [(MidStreamError(after_chunks=2), "one two"), (StreamCut(after_chunks=1), "one")],
    ids=["error-event", "cut"],
)
def test_failure_after_the_first_token_interrupts_and_keeps_the_partial_text(
    gateway_factory: Factory,
    fake_openrouter: FakeOpenRouter,
    sleeps: list[float],
    fault: MidStreamError | StreamCut,
    partial: str,
) -> None:
    gateway = gateway_factory("a", "b")
    reply = Reply(text="one two three four")
    fake_openrouter.enqueue(type(fault)(after_chunks=fault.after_chunks, reply=reply))
    received: list[str] = []

    stream = gateway.stream(MESSAGES)
    with pytest.raises(StreamInterrupted) as interrupted:
        for delta in stream:
            received.append(delta)

    assert "".join(received) == partial
    assert interrupted.value.partial_text == partial
    assert [(a.provider, a.status) for a in interrupted.value.attempts] == [("a", "incomplete")]
    assert "partial answer is kept" in str(interrupted.value)
    assert models_sent(fake_openrouter) == ["test/a"]  # no retry, no fallback after a token
    assert sleeps == []
    assert stream.result is None


def test_mid_stream_error_keeps_the_providers_message_and_code(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")
    fake_openrouter.enqueue(MidStreamError(after_chunks=1, code=429, message="Rate limit exceeded"))

    with pytest.raises(StreamInterrupted, match="Rate limit exceeded") as interrupted:
        drain(gateway.stream(MESSAGES))

    attempt = interrupted.value.attempts[0]
    assert (attempt.http_status, attempt.error_type) == (429, "rate_limited")


# ---- an abandoned stream -----------------------------------------------------------------------

SLOW_WORDS = " ".join(f"w{i}" for i in range(8))


class Sink:
    """A capturing audit sink: the rows the gateway hands over, in order."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def submit(self, row: dict) -> None:
        self.rows.append(row)

    def close(self) -> None:
        pass


def test_a_closed_stream_records_the_tokens_cost_and_generation_the_upstream_bills(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    sink = Sink()
    gateway = gateway_factory("a", audit=sink)
    fake_openrouter.enqueue(Reply(text=SLOW_WORDS, chunk_delay=0.02))

    stream = gateway.stream(MESSAGES)
    assert next(stream) == "w0"
    stream.close()
    assert gateway.join_drains()

    (row,) = sink.rows
    prompt = count_prompt_tokens({"messages": MESSAGES})
    assert (row["status"], row["error_type"]) == ("incomplete", "cancelled")
    assert (row["input_tokens"], row["output_tokens"]) == (prompt, 8)
    assert (row["cost_usd"], row["cost_source"]) == (fake_cost(prompt, 8), "provider")
    assert row["generation_id"].startswith("gen-")
    assert row["final_attempt"] is True


def test_closing_a_stream_frees_its_concurrency_slot_at_once(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    limiter = RateLimiter()
    limit = RateLimit(concurrent_requests=1)
    gateway = gateway_factory({"name": "a", "rate_limit": limit}, limiter=limiter)
    fake_openrouter.enqueue(Reply(text=SLOW_WORDS, chunk_delay=0.05))

    stream = gateway.stream(MESSAGES)
    next(stream)
    assert limiter.acquire("a", limit, 1, 0) is None  # held while the caller reads
    stream.close()

    permit = limiter.acquire("a", limit, 1, 0)
    assert permit is not None
    permit.release()
    assert gateway.join_drains()


def test_an_abandoned_stream_settles_its_token_estimate_with_the_real_usage(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    # Estimate: 8 prompt + 200 max_tokens = 208 of 250 tokens; the real usage is 8 + 8 = 16.
    gateway = gateway_factory(
        {"name": "a", "rate_limit": RateLimit(tokens_per_minute=250)},
        limiter=RateLimiter(),
        queue_timeout=0,
    )
    fake_openrouter.enqueue(Reply(text=SLOW_WORDS, chunk_delay=0.02))
    stream = gateway.stream(MESSAGES, max_tokens=200)
    next(stream)
    stream.close()
    assert gateway.join_drains()

    result = gateway.chat(MESSAGES, max_tokens=200)  # fits only if the estimate was corrected

    assert result.provider == "a"


def test_a_dropped_stream_is_released_and_audited_at_garbage_collection(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    sink = Sink()
    limiter = RateLimiter()
    limit = RateLimit(concurrent_requests=1)
    gateway = gateway_factory({"name": "a", "rate_limit": limit}, limiter=limiter, audit=sink)
    fake_openrouter.enqueue(Reply(text=SLOW_WORDS, chunk_delay=0.02))

    stream = gateway.stream(MESSAGES)
    for _ in stream:
        break
    del stream
    gc.collect()

    permit = limiter.acquire("a", limit, 1, 0)
    assert permit is not None
    permit.release()
    assert gateway.join_drains()
    (row,) = sink.rows
    assert (row["status"], row["error_type"], row["output_tokens"]) == (
        "incomplete",
        "cancelled",
        8,
    )
    assert row["cost_source"] == "provider"


def test_without_a_final_usage_chunk_the_abandoned_stream_records_an_estimate(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    sink = Sink()
    gateway = gateway_factory("a", audit=sink)
    gateway.catalog = Catalog(gateway.registry.engine)
    fake_openrouter.enqueue(
        Reply(text=SLOW_WORDS, chunk_delay=0.02, omit_usage=True), model="openai/gpt-4o-mini"
    )

    stream = gateway.stream(MESSAGES, model="openai/gpt-4o-mini")
    next(stream)
    stream.close()
    assert gateway.join_drains()

    (row,) = sink.rows
    assert row["cost_source"] == "estimated"
    assert row["cost_usd"] > 0
    assert row["input_tokens"] == len(MESSAGES[0]["content"]) // 4
    assert row["generation_id"].startswith("gen-")


def test_the_result_survives_a_second_iteration(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")

    stream = gateway.stream(MESSAGES)
    first = "".join(stream)
    again = list(stream)

    assert first and again == []
    assert stream.result is not None and stream.result.text == first


# ---- time to first token -------------------------------------------------------------------------


class TickingClock:
    """A clock that only moves when the gateway sleeps: waits become exact numbers."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_ttft_counts_from_the_callers_start_and_each_attempt_keeps_its_own(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    clock = TickingClock()
    gateway = gateway_factory("a", clock=clock, sleep=clock.sleep)
    fake_openrouter.enqueue(Error(503), Reply(text="one two"))

    stream = gateway.stream(MESSAGES)
    "".join(stream)

    result = stream.result
    assert result.ttft_ms == pytest.approx(BACKOFFS[0] * 1000)  # the failed try and its wait
    assert [a.ttft_ms for a in result.attempts] == [None, 0.0]
    assert result.attempts[1].to_json()["ttft_ms"] == 0.0


# ---- the upstream's own chunks -----------------------------------------------------------------

LOOKUP = {"name": "lookup", "arguments": '{"city": "Oslo"}'}


def test_chunks_hand_back_every_upstream_chunk_with_tool_call_deltas(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")
    fake_openrouter.enqueue(Reply(text="", tool_calls=(LOOKUP,)))

    stream = gateway.stream(MESSAGES)
    assert stream.request_id and stream.provider is None  # the provider is known at the first chunk
    chunks = list(stream.chunks())

    assert stream.provider == "a"
    assert all(c["id"] == chunks[0]["id"] for c in chunks)
    calls = [
        d["tool_calls"][0]
        for c in chunks
        for ch in c["choices"]
        if (d := ch["delta"]).get("tool_calls")
    ]
    assert calls[0]["function"]["name"] == "lookup" and calls[0]["id"].startswith("call_")
    assert "".join(c["function"]["arguments"] for c in calls) == LOOKUP["arguments"]
    assert chunks[-1]["usage"]["cost"] > 0
    assert stream.result is not None and stream.result.finish_reason == "tool_calls"
    assert stream.result.request_id == stream.request_id


def test_n_choices_stream_every_index_while_the_text_is_the_first_choice(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")
    fake_openrouter.enqueue(Reply(text="one two"))

    stream = gateway.stream(MESSAGES, n=2)
    chunks = list(stream.chunks())

    indexes = {ch["index"] for c in chunks for ch in c["choices"]}
    assert indexes == {0, 1}
    assert stream.result.text == "one two"


def test_text_iteration_skips_chunks_without_text(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")
    fake_openrouter.enqueue(Reply(text="", tool_calls=(LOOKUP,)))

    stream = gateway.stream(MESSAGES)

    assert list(stream) == []
    assert stream.result.finish_reason == "tool_calls"


def test_a_tool_call_stream_cut_after_its_first_delta_is_interrupted_not_retried(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a", "b")
    fake_openrouter.enqueue(StreamCut(after_chunks=0, reply=Reply(text="", tool_calls=(LOOKUP,))))

    with pytest.raises(StreamInterrupted):
        list(gateway.stream(MESSAGES).chunks())

    assert models_sent(fake_openrouter) == ["test/a"]  # the caller already has a delta


# ---- a cut stream is billed: its tokens and cost are recorded ---------------------------------


def test_a_stream_whose_connection_resets_records_an_estimate_and_its_generation(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    sink = Sink()
    gateway = gateway_factory("a", audit=sink)
    gateway.catalog = Catalog(gateway.registry.engine)
    reply = Reply(text="one two three four five six seven eight")
    fake_openrouter.enqueue(StreamCut(after_chunks=3, reply=reply), model="openai/gpt-4o-mini")

    with pytest.raises(StreamInterrupted):
        drain(gateway.stream(MESSAGES, model="openai/gpt-4o-mini"))

    (row,) = sink.rows
    assert (row["status"], row["cost_source"]) == ("incomplete", "estimated")
    assert row["input_tokens"] == len(MESSAGES[0]["content"]) // 4
    assert row["output_tokens"] == len("one two three ") // 4 + 1  # characters received / 4
    assert row["cost_usd"] > 0
    assert row["generation_id"].startswith("gen-")
