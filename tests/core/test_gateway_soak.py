"""A small fault soak: threads calling chat() and stream() (some abandoning their streams)
against an upstream that fails a random 40% in every way the fake knows. Every call ends in a
result or a GatewayError, every upstream request has exactly one audit row, and every call has
exactly one row marked final. Counts are kept small for CI; GATEHOUSE_SOAK_SCALE grows them
(tests/soak.py)."""

from __future__ import annotations

import collections
import gc
import random
import threading
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
