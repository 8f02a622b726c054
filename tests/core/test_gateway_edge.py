"""The gateway's edge: caller text cleaned for its audit column, any failure inside an attempt
ended, audited and followed by fallback, only GatewayErrors out (and none that reaches the SDK
and its API key through __cause__/__context__), attempts capped, short failure messages, and a
replaced client kept alive for the calls still holding it."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from sqlalchemy import create_engine

from gatehouse_core import AllProvidersFailed, Gateway, GatewayError, InvalidRequest, Registry
from gatehouse_core.audit import AuditWriter
from gatehouse_core.crypto import SecretBox
from gatehouse_core.db import make_engine
from gatehouse_core.gateway import default_client_factory
from gatehouse_core.policy import MAX_PROVIDERS_PER_CALL
from gatehouse_core.registry import ResolvedProvider
from gatehouse_core.sanitize import column_length
from gatehouse_core.schema import LLMRequest
from tests.fakes.openrouter import DEFAULT_KEY, Error, FakeOpenRouter, Reply

MESSAGES = [{"role": "user", "content": "Say hello to the gateway, please."}]
REAL_KEY = "sk-or-v1-" + "7c3d" * 16
Factory = Callable[..., Gateway]


class Sink:
    """A capturing audit sink: the rows the gateway hands over, in order."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def submit(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def close(self) -> None:
        pass


# ---- caller text at the edge -------------------------------------------------------------------

BAD = {
    "workflow_id": "wf-\ud800-x\x00y" + "w" * 500,
    "trace_id": "\udcff" * 3 + "t" * 300,
    "actor": "al\x00ice\udc80",
    "source": "cli-" + "s" * 100,
}


def test_caller_text_is_cleaned_and_capped_to_its_column(gateway_factory: Factory) -> None:
    sink = Sink()
    gateway = gateway_factory("a", audit=sink)

    result = gateway.chat(MESSAGES, **BAD)

    assert result.text
    (row,) = sink.rows
    for name in BAD:
        value = row[name]
        assert len(value) <= column_length(name)
        assert "\x00" not in value
        value.encode("utf-8")  # would raise UnicodeEncodeError on a lone surrogate
    assert row["workflow_id"].startswith("wf-\ufffd-xyw")
    assert row["actor"] == "alice\ufffd"


def test_rows_with_odd_caller_text_reach_the_database(
    gateway_factory: Factory, sqlite_url: str, tmp_path: Any
) -> None:
    engine = make_engine(sqlite_url)
    writer = AuditWriter(engine, spill_dir=tmp_path / "spill", flush_interval=0.05)
    gateway = gateway_factory("a", audit=writer)

    first = gateway.chat(MESSAGES, **BAD)
    second = gateway.chat(MESSAGES, workflow_id="plain")
    assert writer.flush()

    with engine.connect() as conn:
        found = conn.execute(
            LLMRequest.__table__.select().order_by(LLMRequest.__table__.c.id)
        ).all()
    assert [r.request_id for r in found] == [first.request_id, second.request_id]
    assert found[0].actor == "alice\ufffd"
    engine.dispose()


@pytest.mark.parametrize(
    ("messages", "where"),
    [
        ([{"role": "user", "content": "hi \ud800"}], "messages[0].content"),
        (
            [{"role": "user", "content": [{"type": "text", "text": "x\udcff"}]}],
            "messages[0].content[0].text",
        ),
    ],
)
def test_a_prompt_no_http_body_can_carry_is_refused_before_any_attempt(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, messages: list, where: str
) -> None:
    sink = Sink()
    gateway = gateway_factory("a", "b", audit=sink)

    with pytest.raises(InvalidRequest, match=rf"{re.escape(where)} contains a character"):
        gateway.chat(messages)

    assert fake_openrouter.chat_count == 0
    assert sink.rows == []


# ---- any failure inside an attempt ends it and falls back --------------------------------------


def test_a_client_factory_that_raises_is_an_audited_attempt_then_fallback(
    gateway_factory: Factory,
) -> None:
    sink = Sink()

    def factory(provider: ResolvedProvider, timeout: float) -> openai.OpenAI:
        if provider.config.name == "a":
            raise ValueError("Invalid header value b'GateHouse Caf\\xc3\\xa9'")
        return default_client_factory(provider, timeout)

    gateway = gateway_factory("a", "b", audit=sink, client_factory=factory)

    result = gateway.chat(MESSAGES)

    assert result.provider == "b"
    first = result.attempts[0]
    assert (first.provider, first.status, first.error_type) == ("a", "error", "unexpected_error")
    assert "ValueError" in first.error_message
    assert [(r["provider"], r["status"]) for r in sink.rows] == [("a", "error"), ("b", "ok")]


def test_a_header_the_http_stack_refuses_is_an_audited_attempt_then_fallback(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    sink = Sink()

    def factory(provider: ResolvedProvider, timeout: float) -> openai.OpenAI:
        if provider.config.name != "a":
            return default_client_factory(provider, timeout)
        return openai.OpenAI(
            base_url=provider.config.base_url,
            api_key=provider.api_key,
            max_retries=0,
            default_headers={"X-Title": "GateHouse Café\u200b"},  # not encodable in a header
        )

    gateway = gateway_factory("a", "b", audit=sink, client_factory=factory)

    result = gateway.chat(MESSAGES)

    assert result.provider == "b"
    assert [a.error_type for a in result.attempts] == ["unexpected_error", None]
    assert [r["provider"] for r in sink.rows] == ["a", "b"]
    assert [r.body["model"] for r in fake_openrouter.chat_requests] == ["test/b"]


def test_the_same_failure_on_a_stream_falls_back_too(gateway_factory: Factory) -> None:
    def factory(provider: ResolvedProvider, timeout: float) -> openai.OpenAI:
        if provider.config.name == "a":
            raise RuntimeError("no client today")
        return default_client_factory(provider, timeout)

    gateway = gateway_factory("a", "b", client_factory=factory)

    stream = gateway.stream(MESSAGES)
    text = "".join(stream)

    assert text and stream.result.provider == "b"
    assert stream.result.attempts[0].error_type == "unexpected_error"


# ---- only GatewayErrors, none leading back to the key --------------------------------------------


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port


def test_database_down_before_the_first_snapshot_is_a_gateway_error(closed_port: int) -> None:
    # A plain engine (make_engine would migrate, i.e. connect, first).
    engine = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{closed_port}/nothing")
    gateway = Gateway(Registry(engine, SecretBox.from_env(), ttl=0))

    with pytest.raises(AllProvidersFailed) as failed:
        gateway.chat(MESSAGES)

    assert "configuration could not be loaded" in str(failed.value)
    assert "retry" in str(failed.value)
    assert failed.value.__cause__ is None and failed.value.__context__ is None
    engine.dispose()


def exception_chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [current.__cause__, current.__context__]
    return seen


def reachable_text(exc: BaseException) -> str:
    """Everything one can read off the chain: messages, reprs, attributes, request headers."""
    parts = []
    for e in exception_chain(exc):
        parts += [str(e), repr(e), repr(e.args), repr(vars(e))]
        request = getattr(e, "request", None)
        if request is not None:
            parts.append(repr(dict(request.headers)))
    return "\n".join(parts)


@pytest.mark.parametrize("status", [400, 401, 503])
def test_no_exception_we_raise_leads_back_to_the_api_key(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, status: int
) -> None:
    fake_openrouter.add_key(REAL_KEY)
    gateway = gateway_factory({"name": "a", "api_key": REAL_KEY})
    fake_openrouter.always(Error(status))

    with pytest.raises(GatewayError) as raised:
        gateway.chat(MESSAGES)

    chain = exception_chain(raised.value)
    assert all(isinstance(e, GatewayError) for e in chain), chain
    assert REAL_KEY not in reachable_text(raised.value)


def test_an_interrupted_stream_does_not_lead_back_to_the_api_key(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    from tests.fakes.openrouter import MidStreamError

    fake_openrouter.add_key(REAL_KEY)
    gateway = gateway_factory({"name": "a", "api_key": REAL_KEY})
    fake_openrouter.enqueue(MidStreamError(after_chunks=1))

    with pytest.raises(GatewayError) as raised:
        "".join(gateway.stream(MESSAGES))

    assert all(isinstance(e, GatewayError) for e in exception_chain(raised.value))
    assert REAL_KEY not in reachable_text(raised.value)


# ---- attempts capped, messages summarised --------------------------------------------------------


def test_attempts_per_call_are_capped(gateway_factory: Factory) -> None:
    sink = Sink()
    specs = [{"name": f"p{i:02d}", "api_key": None} for i in range(MAX_PROVIDERS_PER_CALL + 5)]
    gateway = gateway_factory(*specs, audit=sink)

    with pytest.raises(AllProvidersFailed) as failed:
        gateway.chat(MESSAGES)

    assert len(failed.value.attempts) == MAX_PROVIDERS_PER_CALL
    assert len(sink.rows) == MAX_PROVIDERS_PER_CALL
    message = str(failed.value)
    assert f"only the first {MAX_PROVIDERS_PER_CALL} of {MAX_PROVIDERS_PER_CALL + 5}" in message
    assert f"{MAX_PROVIDERS_PER_CALL}× no_key" in message
    assert len(message) < 1500


def test_the_failure_message_counts_error_kinds_instead_of_repeating_attempts(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a", "b")
    fake_openrouter.always(Error(503), model="test/a")
    fake_openrouter.always(Error.unauthorized(), model="test/b")

    with pytest.raises(AllProvidersFailed) as failed:
        gateway.chat(MESSAGES)

    message = str(failed.value)
    assert message.startswith("All providers failed.")
    assert "5 attempt(s) on 2 provider(s) (4× service_unavailable, 1× authentication)" in message
    assert message.count("Service temporarily unavailable") == 1
    assert "b (test/b): HTTP 401: User not found" in message
    assert "Next step: check the provider's API key" in message


# ---- a replaced client stays usable by the calls holding it ----------------------------------------


def test_a_key_change_does_not_cut_a_stream_open_on_another_thread(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")
    fake_openrouter.add_key(REAL_KEY)
    words = " ".join(f"w{i}" for i in range(12))
    fake_openrouter.enqueue(Reply(text=words, chunk_delay=0.02), key=DEFAULT_KEY)
    stream = gateway.stream(MESSAGES)
    first = next(stream)  # thread A holds an open stream on the old client

    gateway.registry.set_key("a", REAL_KEY, actor="test")
    other: list[Any] = []
    thread_b = threading.Thread(target=lambda: other.append(gateway.chat(MESSAGES)))
    thread_b.start()
    thread_b.join(timeout=10)
    rest = "".join(stream)

    assert first + rest == words
    assert stream.result is not None and stream.result.provider == "a"
    assert other and other[0].text  # thread B answered, on the new client
    assert [r.api_key for r in fake_openrouter.chat_requests] == [DEFAULT_KEY, REAL_KEY]


def test_a_key_change_during_a_retry_wait_does_not_break_the_waiting_call(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.add_key(REAL_KEY)
    fake_openrouter.enqueue(Error(503), key=DEFAULT_KEY)
    other: list[Any] = []
    holder: dict[str, Gateway] = {}

    def sleep_while_the_key_changes(seconds: float) -> None:
        gateway = holder["gateway"]
        gateway.registry.set_key("a", REAL_KEY, actor="test")
        thread_b = threading.Thread(target=lambda: other.append(gateway.chat(MESSAGES)))
        thread_b.start()
        thread_b.join(timeout=10)

    holder["gateway"] = gateway_factory("a", sleep=sleep_while_the_key_changes)

    result = holder["gateway"].chat(MESSAGES)

    assert [a.http_status for a in result.attempts] == [503, 200]
    assert other and other[0].text
    assert [r.api_key for r in fake_openrouter.chat_requests] == [
        DEFAULT_KEY,
        REAL_KEY,
        DEFAULT_KEY,  # the waiting call retried on the client it held
    ]


def test_invalid_request_is_still_raised_without_fallback(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a", "b")
    fake_openrouter.enqueue(Error(400))

    with pytest.raises(InvalidRequest) as raised:
        gateway.chat(MESSAGES)

    assert raised.value.__context__ is None
    assert fake_openrouter.chat_count == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<html><body>502 Bad Gateway</body></html>", "not JSON"),
        ("[1, 2, 3]", "no choices"),
        ('{"choices": [], "usage": {"prompt_tokens": "many"}}', "no choices"),
    ],
)
def test_a_200_that_is_no_completion_is_a_failed_attempt_then_a_retry(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, body: str, message: str
) -> None:
    fake_openrouter.enqueue(Error(200, body=body))
    result = gateway_factory("primary").chat([{"role": "user", "content": "hi"}])
    assert result.text and len(result.attempts) == 2
    first = result.attempts[0]
    assert first.status == "error" and message in (first.error_message or "")
    assert result.response is not None and result.response["choices"][0]["message"]["content"]


def test_odd_usage_figures_are_no_counts_and_no_cost(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(
        Error(
            200,
            body='{"id": "gen-1", "model": "m", "choices": [{"index": 0, "message": '
            '{"role": "assistant", "content": "ok"}, "finish_reason": "stop"}], '
            '"usage": {"prompt_tokens": "12", "completion_tokens": 3.0, "cost": true}}',
        )
    )
    result = gateway_factory("primary").chat([{"role": "user", "content": "hi"}])
    assert result.text == "ok"
    assert (result.input_tokens, result.output_tokens) == (None, 3)
    assert result.cost_source != "provider"  # `true` is not a price
