"""One `llm_requests` row per attempt, written by the real AuditWriter, on SQLite and
PostgreSQL; rows made while the database is unreachable are written once it returns."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url

from gatehouse_core import (
    AllProvidersFailed,
    Gateway,
    InvalidRequest,
    RateLimit,
    RateLimited,
    StreamInterrupted,
)
from gatehouse_core.audit import AuditWriter
from gatehouse_core.db import make_engine
from gatehouse_core.ratelimit import RateLimiter
from gatehouse_core.schema import LLMRequest
from tests.fakes.openrouter import Error, FakeOpenRouter, MidStreamError, Reply, fake_cost
from tests.fakes.tcp_proxy import TcpProxy

MESSAGES = [{"role": "user", "content": "Say hello to the gateway, please."}]
REAL_KEY = "sk-or-v1-" + "5e1f" * 16
Factory = Callable[..., Gateway]


@pytest.fixture
def writer(engine: Engine, tmp_path: Path) -> AuditWriter:
    return AuditWriter(engine, spill_dir=tmp_path / "spill", flush_interval=0.05)


def rows(engine: Engine, request_id: str) -> list[LLMRequest]:
    query = select(LLMRequest).where(LLMRequest.request_id == request_id)
    with engine.connect() as conn:
        return list(conn.execute(query.order_by(LLMRequest.attempt)))


def test_one_row_per_attempt_with_a_shared_request_id(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine, writer: AuditWriter
) -> None:
    gateway = gateway_factory("a", "b", audit=writer)
    fake_openrouter.enqueue(Error(503), Error(402), model="test/a")
    fake_openrouter.enqueue(Reply(text="hello there", cached_tokens=1, reasoning_tokens=2))

    result = gateway.chat(
        MESSAGES, workflow_id="wf-1", trace_id="tr-1", source="cli", actor="alice"
    )
    assert writer.flush()

    found = rows(engine, result.request_id)
    assert [(r.attempt, r.provider, r.model, r.status, r.http_status) for r in found] == [
        (1, "a", "test/a", "error", 503),
        (2, "a", "test/a", "error", 402),
        (3, "b", "test/b", "ok", 200),
    ]
    assert [r.error_type for r in found] == ["service_unavailable", "payment_required", None]
    assert found[1].error_message.startswith("Insufficient credits")
    ok = found[2]
    assert (ok.model_used, ok.generation_id) == ("test/b", result.generation_id)
    assert (ok.input_tokens, ok.output_tokens) == (result.input_tokens, result.output_tokens)
    assert (ok.cached_tokens, ok.reasoning_tokens) == (1, 2)
    assert float(ok.cost_usd) == pytest.approx(fake_cost(result.input_tokens, result.output_tokens))
    assert ok.cost_source == "provider"
    assert ok.latency_ms is not None
    for r in found:
        assert (r.workflow_id, r.trace_id, r.source, r.actor) == ("wf-1", "tr-1", "cli", "alice")
        assert r.created_at is not None


def test_library_is_the_default_source(
    gateway_factory: Factory, engine: Engine, writer: AuditWriter
) -> None:
    gateway = gateway_factory("a", audit=writer)

    result = gateway.chat(MESSAGES)
    assert writer.flush()

    assert [r.source for r in rows(engine, result.request_id)] == ["library"]


def test_invalid_request_leaves_an_error_row_with_the_message(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine, writer: AuditWriter
) -> None:
    gateway = gateway_factory("a", "b", audit=writer)
    fake_openrouter.always(Error.invalid_model("test/a"))

    with pytest.raises(InvalidRequest) as raised:
        gateway.chat(MESSAGES)
    assert writer.flush()

    (row,) = rows(engine, raised.value.request_id)
    assert (row.status, row.http_status, row.error_message) == (
        "error",
        400,
        "test/a is not a valid model ID",
    )


def test_rate_limit_refusals_are_rejected_rows(
    gateway_factory: Factory, engine: Engine, writer: AuditWriter
) -> None:
    gateway = gateway_factory(
        {"name": "a", "rate_limit": RateLimit(requests_per_minute=1)},
        audit=writer,
        limiter=RateLimiter(),
        queue_timeout=0,
    )
    gateway.chat(MESSAGES)

    with pytest.raises(RateLimited) as refused:
        gateway.chat(MESSAGES)
    assert writer.flush()

    (row,) = rows(engine, refused.value.request_id)
    assert (row.attempt, row.status, row.error_type) == (1, "rejected", "rate_limit_queue")


def test_stream_rows_are_ok_with_ttft_or_incomplete_after_a_cut(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine, writer: AuditWriter
) -> None:
    gateway = gateway_factory("a", audit=writer)
    fake_openrouter.enqueue(Reply(text="one two"), MidStreamError(after_chunks=1))

    complete = gateway.stream(MESSAGES)
    "".join(complete)
    with pytest.raises(StreamInterrupted) as interrupted:
        "".join(gateway.stream(MESSAGES))
    assert writer.flush()

    (ok,) = rows(engine, complete.result.request_id)
    assert (ok.status, ok.output_tokens) == ("ok", 2)
    assert ok.ttft_ms is not None
    (cut,) = rows(engine, interrupted.value.request_id)
    assert (cut.status, cut.http_status, cut.error_type) == (
        "incomplete",
        502,
        "provider_unavailable",
    )


def test_stream_closed_by_the_caller_is_an_incomplete_row(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine, writer: AuditWriter
) -> None:
    gateway = gateway_factory("a", audit=writer)
    fake_openrouter.enqueue(Reply(text="one two three four"))

    stream = gateway.stream(MESSAGES, trace_id="tr-cancel")
    next(stream)
    stream.close()
    assert gateway.join_drains()  # the rest of the answer is read in the background
    assert writer.flush()

    with engine.connect() as conn:
        found = list(conn.execute(select(LLMRequest).where(LLMRequest.trace_id == "tr-cancel")))
    assert [(r.status, r.error_type) for r in found] == [("incomplete", "cancelled")]


def test_audit_rows_never_carry_the_key(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine, writer: AuditWriter
) -> None:
    fake_openrouter.add_key(REAL_KEY)
    gateway = gateway_factory({"name": "a", "api_key": REAL_KEY}, "b", audit=writer)
    fake_openrouter.always(Error(401, f"Key {REAL_KEY} is disabled"), model="test/a")

    result = gateway.chat(MESSAGES)
    assert writer.flush()

    found = rows(engine, result.request_id)
    assert len(found) == 2
    dumped = repr([tuple(r) for r in found])
    assert REAL_KEY not in dumped
    assert REAL_KEY[-12:] not in dumped
    assert "is disabled" in found[0].error_message


def test_the_seed_query_runs_on_postgresql(
    postgres_url: str, gateway_factory: Factory, tmp_path: Path
) -> None:
    engine = make_engine(postgres_url)
    writer = AuditWriter(engine, spill_dir=tmp_path / "spill")
    gateway = gateway_factory("a", audit=writer)

    result = gateway.chat(MESSAGES)
    assert writer.flush()

    seed = text(
        "SELECT created_at, provider, model, input_tokens, output_tokens, cost_usd "
        "FROM llm_requests WHERE created_at > NOW() - INTERVAL '1 day'"
    )
    with engine.connect() as conn:
        found = conn.execute(seed).all()
    engine.dispose()
    assert [(r.provider, r.model, r.input_tokens) for r in found] == [
        ("a", "test/a", result.input_tokens)
    ]


# ---- a database outage ---------------------------------------------------------------------


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[TcpProxy]:
    """127.0.0.1:<proxy.port> forwards to PostgreSQL until stopped."""
    with TcpProxy(make_url(postgres_url).port or 5432) as forwarder:
        yield forwarder


def test_rows_made_during_a_database_outage_are_written_when_it_returns(
    postgres_url: str,
    proxy: TcpProxy,
    gateway_factory: Factory,
    fake_openrouter: FakeOpenRouter,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Everything the gateway does with the database (configs, audit) goes through the proxy.
    proxied = make_url(postgres_url).set(port=proxy.port).render_as_string(hide_password=False)
    monkeypatch.setenv("GATEHOUSE_DATABASE_URL", proxied)
    engine = make_engine(proxied)
    writer = AuditWriter(engine, spill_dir=tmp_path / "spill", max_buffer=2, retry_interval=0.1)
    gateway = gateway_factory("a", audit=writer)
    before = gateway.chat(MESSAGES)
    assert writer.flush()

    proxy.stop()  # the connection path dies; the database itself and the test go on
    fake_openrouter.enqueue(Error(503))
    during = [gateway.chat(MESSAGES, workflow_id="outage") for _ in range(3)]
    assert writer.flush()  # nothing can be written: the rows go to the spill file
    stats = writer.stats
    assert (stats.written, stats.spilled, stats.pending) == (1, 4, 0)
    assert stats.last_error is not None

    proxy.start()
    assert writer.flush()

    direct = make_engine(postgres_url)
    for result in [before, *during]:
        assert len(rows(direct, result.request_id)) == len(result.attempts)
    with direct.connect() as conn:
        total = conn.execute(select(LLMRequest.id)).all()
    direct.dispose()
    engine.dispose()
    assert len(total) == 1 + 2 + 1 + 1  # the first outage call retried once
    assert writer.stats.last_error is None
    assert writer.stats.spilled == 0
    assert not list((tmp_path / "spill").glob("*.jsonl"))


# ---- marks for the rollups: final_attempt and fallback ---------------------------------------


class Sink:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def submit(self, row: dict) -> None:
        self.rows.append(row)

    def close(self) -> None:
        pass


def marks(rows: list) -> list[tuple]:
    get = (lambda r, k: r[k]) if rows and isinstance(rows[0], dict) else getattr
    return [
        (get(r, "provider"), get(r, "status"), get(r, "final_attempt"), get(r, "fallback"))
        for r in rows
    ]


def test_only_the_answer_is_the_final_row_and_it_says_it_fell_back(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    sink = Sink()
    gateway = gateway_factory("a", "b", audit=sink)
    fake_openrouter.enqueue(Error(503), Error(402), model="test/a")

    gateway.chat(MESSAGES)

    assert marks(sink.rows) == [
        ("a", "error", False, False),
        ("a", "error", False, False),
        ("b", "ok", True, True),
    ]


def test_an_answer_from_the_first_provider_is_final_without_fallback(
    gateway_factory: Factory,
) -> None:
    sink = Sink()
    gateway = gateway_factory("a", "b", audit=sink)

    gateway.chat(MESSAGES)

    assert marks(sink.rows) == [("a", "ok", True, False)]


def test_a_failed_call_marks_its_last_attempt_final(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    sink = Sink()
    gateway = gateway_factory("a", "b", audit=sink)
    fake_openrouter.always(Error(402))

    with pytest.raises(AllProvidersFailed):
        gateway.chat(MESSAGES)

    assert marks(sink.rows) == [("a", "error", False, False), ("b", "error", True, True)]


def test_an_invalid_request_is_its_own_final_row(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    sink = Sink()
    gateway = gateway_factory("a", "b", audit=sink)
    fake_openrouter.enqueue(Error(503), Error(400), model="test/a")

    with pytest.raises(InvalidRequest):
        gateway.chat(MESSAGES)

    assert marks(sink.rows) == [("a", "error", False, False), ("a", "error", True, False)]


def test_marks_reach_the_database(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, engine: Engine, writer: AuditWriter
) -> None:
    gateway = gateway_factory("a", "b", audit=writer)
    fake_openrouter.enqueue(Error(402), model="test/a")

    result = gateway.chat(MESSAGES)
    assert writer.flush()

    assert marks(rows(engine, result.request_id)) == [
        ("a", "error", False, False),
        ("b", "ok", True, True),
    ]
