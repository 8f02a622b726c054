"""Redis outage mid-run: calls through the gateway from several threads while the Redis server
that holds the shared rate limits and budgets is stopped and started again (a private
redis-server on its own port, never the machine's shared one). No call fails, each part warns
once when it falls back to per-process figures, sharing resumes once Redis answers, and every
upstream request has exactly one audit row."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import select

from gatehouse_core import Gateway, RateLimit
from gatehouse_core.audit import AuditWriter
from gatehouse_core.catalog import Catalog, CatalogEntry
from gatehouse_core.db import make_engine
from gatehouse_core.ratelimit import REDIS_RETRY_SECONDS, WINDOW_MARGIN_SECONDS, RateLimiter
from gatehouse_core.schema import LLMRequest
from gatehouse_core.spend.budget_rules import BudgetStore, make_rule
from gatehouse_core.spend.budgets import Budgets
from tests.core.redis_server import RedisServer, own_redis_server
from tests.fakes.openrouter import FakeOpenRouter, Reply
from tests.soak import scaled, soak_scale

pytestmark = [pytest.mark.redis, pytest.mark.soak]

MESSAGES = [{"role": "user", "content": "hello through an outage"}]
NAMESPACE = "gatehouse-outage"
THREADS = 4
RPM = 100_000  # far above the demand: the test is about where the count lives, not refusals
LIMITS = RateLimit(requests_per_minute=RPM, tokens_per_minute=10**9)


class SkewedClock:
    """time.monotonic(), moved forward on demand: the retry period passes without waiting."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


class Progress:
    """Calls done so far; the main thread waits for a count to stop or start Redis."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.claimed = 0
        self.done = 0
        self._cond = threading.Condition()

    def claim(self) -> int | None:
        """The next call's number, or None when all `total` are taken."""
        with self._cond:
            if self.claimed >= self.total:
                return None
            self.claimed += 1
            return self.claimed

    def add(self) -> None:
        with self._cond:
            self.done += 1
            self._cond.notify_all()

    def wait_for(self, count: int) -> None:
        with self._cond:
            stuck = f"stuck at {self.done}"
            assert self._cond.wait_for(lambda: self.done >= count, 60 * max(1.0, soak_scale())), (
                stuck
            )


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with own_redis_server() as server:
        yield server


def requests_in_redis(url: str) -> int:
    """The shared request count of provider "a" as any other process sees it in Redis."""
    storage = storage_from_string(url, key_prefix=NAMESPACE)
    item = RateLimitItemPerSecond(RPM, 60 + WINDOW_MARGIN_SECONDS, namespace="a")
    return RPM - MovingWindowRateLimiter(storage).get_window_stats(item, "requests").remaining


def call_until(gateway: Gateway, progress: Progress, failures: list[str]) -> None:
    for _ in range(progress.total):  # bounded; the shared count ends it
        n = progress.claim()
        if n is None:
            return
        try:
            if n % 2:
                gateway.chat(MESSAGES, max_tokens=20)
            else:
                "".join(gateway.stream(MESSAGES, max_tokens=20))
        except BaseException as exc:  # noqa: BLE001 -- any failure at all is what we look for
            failures.append(repr(exc))
        progress.add()


def test_calls_ride_through_a_redis_outage_and_sharing_resumes_after_it(
    server: RedisServer,
    gateway_factory: Callable[..., Gateway],
    fake_openrouter: FakeOpenRouter,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    engine = make_engine()
    BudgetStore(engine).set(make_rule("global", None, 1000.0, "block"), actor="test")
    catalog = Catalog(
        engine,
        ttl=3600,
        defaults=[CatalogEntry("test/a", "a", None, 2e-6, 2e-6, None, 0.0, "t", None)],
    )
    clock = SkewedClock()
    limiter = RateLimiter(server.url, namespace=NAMESPACE, clock=clock)
    budgets = Budgets(engine, catalog, server.url, namespace=NAMESPACE, clock=clock)
    writer = AuditWriter(engine, spill_dir=tmp_path / "spill", flush_interval=0.05)
    gateway = gateway_factory(
        {"name": "a", "rate_limit": LIMITS},
        limiter=limiter,
        budgets=budgets,
        audit=writer,
        queue_timeout=5,
    )
    fake_openrouter.default_reply = Reply(text="still here", chunk_delay=0.002)
    assert limiter.storage_kind == "redis" and budgets.storage_kind == "redis"
    total = scaled(90)
    progress, failures = Progress(total), []
    threads = [
        threading.Thread(target=call_until, args=(gateway, progress, failures))
        for _ in range(THREADS)
    ]
    for thread in threads:
        thread.start()

    progress.wait_for(total // 3)
    server.stop()  # mid-run, with calls in flight
    progress.wait_for(2 * total // 3)
    server.start()  # empty: nothing was saved
    clock.offset += REDIS_RETRY_SECONDS + 1  # the retry period is over for both parts
    for thread in threads:
        thread.join(60 * max(1.0, soak_scale()))

    assert failures == []
    assert not any(thread.is_alive() for thread in threads)
    warnings = collections.Counter(r.name for r in caplog.records if r.levelno >= logging.WARNING)
    assert warnings == {"gatehouse.ratelimit": 1, "gatehouse.budgets": 1}

    # Sharing resumed: the next call counts in Redis, where any other process reads it.
    before = requests_in_redis(server.url)
    gateway.chat(MESSAGES, max_tokens=20)
    assert requests_in_redis(server.url) == before + 1
    assert limiter.storage_kind == "redis" and budgets.storage_kind == "redis"
    client = redis.Redis.from_url(server.url)
    assert list(client.scan_iter(f"{NAMESPACE}:budget:*"))  # reservations and spend are back
    client.close()

    gateway.close()
    writer.close()
    with engine.connect() as conn:
        rows = list(conn.execute(select(LLMRequest.request_id, LLMRequest.attempt)))
    assert len(rows) == fake_openrouter.chat_count == total + 1
    assert len(set(rows)) == len(rows)
    engine.dispose()
