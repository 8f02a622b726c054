"""Fault soaks. The small one: threads calling chat() and stream() (some abandoning their streams)
against an upstream that fails a random 40% in every way the fake knows. Every call ends in a
result or a GatewayError, every upstream request has exactly one audit row, and every call has
exactly one row marked final. Counts are kept small for CI; GATEHOUSE_SOAK_SCALE grows them
(tests/soak.py).

The issue's shape (issue 13, "Fault soak"): 8 threads, chat and stream, two providers on two
upstreams that each fail a random 15% (429 with Retry-After, 500, 502, 503, timeouts, resets,
200-with-error bodies, mid-stream cuts); 80 calls at scale 1, 2,000 at GATEHOUSE_SOAK_SCALE=25.
Every call ends in a result or a GatewayError within its deadline, and each upstream's request
count equals that provider's audit rows exactly, with no (request_id, attempt) twice."""

from __future__ import annotations

import collections
import gc
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from gatehouse_core import Gateway, GatewayError, RateLimit
from gatehouse_core.ratelimit import RateLimiter
from tests.fakes.openrouter import (
    Drop,
    Error,
    Error200,
    FakeOpenRouter,
    MidStreamError,
    Reply,
    Slow,
    StreamCut,
)
from tests.soak import scaled, soak_scale

pytestmark = pytest.mark.soak

MESSAGES = [{"role": "user", "content": "hello"}]
THREADS, CALLS_PER_THREAD = 4, scaled(15)
FAULTS: list[Callable[[], Any]] = [
    lambda: Error(503),
    lambda: Drop(),
    lambda: MidStreamError(after_chunks=1),
    lambda: StreamCut(after_chunks=1),
    lambda: Error200(code=502),
    lambda: Slow(0.6),  # past the 0.3 s attempt deadline
    lambda: Reply(text="a b c d e f", chunk_delay=0.01),
    lambda: Error.rate_limit(retry_after_ms=10),
]


class Sink:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def submit(self, row: dict[str, Any]) -> None:
        with self._lock:
            self.rows.append(row)

    def close(self) -> None:
        pass


def call_many(gateway: Gateway, seed: int, raw: list[str]) -> None:
    rng = random.Random(seed)
    for _ in range(CALLS_PER_THREAD):
        try:
            if rng.random() < 0.5:
                gateway.chat(MESSAGES)
                continue
            stream = gateway.stream(MESSAGES)
            if rng.random() < 0.7:
                "".join(stream)
                continue
            for _ in stream:
                break
            if rng.random() < 0.5:
                stream.close()
            else:
                del stream
                gc.collect()
        except GatewayError:
            pass
        except BaseException as exc:  # noqa: BLE001 -- what the soak is looking for
            raw.append(repr(exc))


def test_faults_end_in_results_or_gateway_errors_with_one_row_per_request(
    gateway_factory: Callable[..., Gateway], fake_openrouter: FakeOpenRouter
) -> None:
    rng = random.Random(7)
    fake_openrouter.enqueue(
        *[
            rng.choice(FAULTS)() if rng.random() < 0.4 else Reply(text="x y z", chunk_delay=0.005)
            for _ in range(max(1000, 20 * THREADS * CALLS_PER_THREAD))
        ]
    )
    limits = RateLimit(concurrent_requests=3, tokens_per_minute=10**6)
    sink = Sink()
    gateway = gateway_factory(
        {"name": "a", "rate_limit": limits},
        {"name": "b", "rate_limit": limits},
        audit=sink,
        limiter=RateLimiter(),
        timeout=0.3,
        call_timeout=5,
    )
    raw: list[str] = []

    threads = [
        threading.Thread(target=call_many, args=(gateway, seed, raw)) for seed in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60 * max(1.0, soak_scale()))
    assert gateway.join_drains(10)

    assert raw == []
    sent = [r for r in sink.rows if r["status"] != "rejected"]
    assert len(sent) == fake_openrouter.chat_count
    by_call: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in sink.rows:
        by_call[row["request_id"]].append(row)
    assert len(by_call) == THREADS * CALLS_PER_THREAD
    for rows in by_call.values():
        assert sum(row["final_attempt"] for row in rows) == 1
        assert sorted(row["attempt"] for row in rows) == list(range(1, len(rows) + 1))


SHAPE_THREADS, SHAPE_CALLS_PER_THREAD = 8, scaled(10)
SHAPE_FAULT_RATE = 0.15
SHAPE_FAULTS: list[Callable[[], Any]] = [
    lambda: Error.rate_limit(retry_after=1),  # retried on the same provider
    lambda: Error.rate_limit(retry_after=3600),  # past the 30 s cap: the next provider at once
    lambda: Error(500),
    lambda: Error(502),
    lambda: Error(503),
    lambda: Slow(0.6),  # past the 0.3 s attempt deadline: a timeout
    lambda: Drop(),  # connection reset before any answer
    lambda: Error200(code=502),
    lambda: MidStreamError(after_chunks=1),
    lambda: StreamCut(after_chunks=1),
]
CALL_TIMEOUT = 5.0
# How far past its deadline a call may end on a loaded 2-core CI machine: the deadline is a
# budget for waiting, and a thread scheduled late still has to write its audit row and return.
DEADLINE_SLACK = 3.0


def scripted(fake: FakeOpenRouter, seed: int, count: int) -> None:
    rng = random.Random(seed)
    fake.enqueue(
        *[
            rng.choice(SHAPE_FAULTS)()
            if rng.random() < SHAPE_FAULT_RATE
            else Reply(text="x y z", chunk_delay=0.002)
            for _ in range(count)
        ]
    )


def call_and_time(gateway: Gateway, seed: int, raw: list[str], spans: list[float]) -> None:
    rng = random.Random(seed)
    for _ in range(SHAPE_CALLS_PER_THREAD):
        started = time.monotonic()
        try:
            if rng.random() < 0.5:
                gateway.chat(MESSAGES)
            else:
                "".join(gateway.stream(MESSAGES))
        except GatewayError:
            pass
        except BaseException as exc:  # noqa: BLE001 -- what the soak is looking for
            raw.append(repr(exc))
        spans.append(time.monotonic() - started)


def test_the_issue_shaped_soak_two_upstreams_audit_rows_equal_their_requests(
    gateway_factory: Callable[..., Gateway], fake_openrouter: FakeOpenRouter
) -> None:
    calls = SHAPE_THREADS * SHAPE_CALLS_PER_THREAD
    with FakeOpenRouter() as second:
        upstreams = {"a": fake_openrouter, "b": second}
        for seed, fake in enumerate(upstreams.values(), start=11):
            scripted(fake, seed, 3 * calls)  # more than any run can take; then default replies
        limits = RateLimit(concurrent_requests=4, tokens_per_minute=10**7)
        sink = Sink()
        gateway = gateway_factory(
            {"name": "a", "rate_limit": limits, "base_url": fake_openrouter.base_url},
            {"name": "b", "rate_limit": limits, "base_url": second.base_url},
            audit=sink,
            limiter=RateLimiter(),
            timeout=0.3,
            call_timeout=CALL_TIMEOUT,
        )
        raw: list[str] = []
        spans: list[float] = []
        threads = [
            threading.Thread(target=call_and_time, args=(gateway, seed, raw, spans))
            for seed in range(SHAPE_THREADS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120 * max(1.0, soak_scale()))
        assert not any(thread.is_alive() for thread in threads)
        assert gateway.join_drains(10)
        seen = {name: fake.chat_count for name, fake in upstreams.items()}

    assert raw == []
    assert len(spans) == calls
    assert max(spans) <= CALL_TIMEOUT + DEADLINE_SLACK, sorted(spans)[-5:]
    sent = [r for r in sink.rows if r["status"] != "rejected"]
    assert {name: sum(r["provider"] == name for r in sent) for name in upstreams} == seen
    keys = [(r["request_id"], r["attempt"]) for r in sink.rows]
    assert len(keys) == len(set(keys))
    by_call: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in sink.rows:
        by_call[r["request_id"]].append(r)
    assert len(by_call) == calls
    assert all(sum(r["final_attempt"] for r in rows) == 1 for rows in by_call.values())
    # The faults were met, and fell back: some calls were answered by the second provider
    # after the first failed, and the statuses the upstreams sent show up in the rows.
    statuses = {r["http_status"] for r in sent}
    assert {429, 500, 502, 503} <= statuses, statuses
    finals = collections.Counter(
        (r["provider"], r["status"])
        for rows in by_call.values()
        for r in rows
        if r["final_attempt"]
    )
    assert finals[("b", "ok")] > 0, finals
