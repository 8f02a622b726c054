"""Rate limits on the real `limits` library: memory and the real Redis, injected clock/sleep."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gatehouse_core.errors import ConfigError
from gatehouse_core.providers import RateLimit
from gatehouse_core.ratelimit import WINDOW_MARGIN_SECONDS, RateLimiter, tokens_wait_seconds
from tests.core.redis_server import RedisServer, own_redis_server

WORKER = Path(__file__).with_name("ratelimit_worker.py")
HOUR = 3600  # a window so long that no window boundary falls inside a test


class FakeTime:
    """A clock that only moves when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class RecordingSleep:
    """Real sleep that remembers what it was asked for."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        time.sleep(seconds)


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def take(limiter: RateLimiter, limit: RateLimit, n: int, tokens: int = 0) -> list[bool]:
    return [limiter.acquire("p", limit, tokens, 0) is not None for _ in range(n)]


# --- no limits ---------------------------------------------------------------------------------


def test_provider_without_limits_gets_a_permit_without_waiting(fake: FakeTime) -> None:
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep)
    permits = [limiter.acquire("p", RateLimit(), 10_000, 0) for _ in range(100)]
    assert all(p is not None and p.wait_ms == 0 for p in permits)
    for permit in permits:
        permit.settle(50_000)
        permit.release()
    assert fake.sleeps == []


# --- requests per minute -----------------------------------------------------------------------


def test_fourth_request_in_the_window_is_refused_with_timeout_zero(fake: FakeTime) -> None:
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep)
    assert take(limiter, RateLimit(requests_per_minute=3), 4) == [True, True, True, False]
    assert fake.sleeps == []


def test_fourth_request_waits_until_the_window_moves_then_passes() -> None:
    sleep = RecordingSleep()
    limiter = RateLimiter(sleep=sleep, window_seconds=1)
    limit = RateLimit(requests_per_minute=3)
    assert take(limiter, limit, 3) == [True, True, True]
    permit = limiter.acquire("p", limit, 0, timeout=10)
    assert permit is not None
    assert sleep.calls, "the fourth request should have waited in line"
    assert all(0 < s <= 1 + WINDOW_MARGIN_SECONDS for s in sleep.calls)  # window + margin
    assert permit.wait_ms > 0


def test_waiting_stops_at_the_timeout_and_returns_none(fake: FakeTime) -> None:
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep)
    limit = RateLimit(requests_per_minute=1)
    assert limiter.acquire("p", limit, 0, 0) is not None
    assert limiter.acquire("p", limit, 0, timeout=10) is None
    # the window frees in ~60 s, so the limiter sleeps the whole remaining timeout once
    assert fake.sleeps == [10.0]


def test_providers_have_separate_budgets(fake: FakeTime) -> None:
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep)
    limit = RateLimit(requests_per_minute=1)
    assert limiter.acquire("a", limit, 0, 0) is not None
    assert limiter.acquire("b", limit, 0, 0) is not None
    assert limiter.acquire("a", limit, 0, 0) is None


def test_a_changed_limit_takes_effect_on_the_next_acquire(fake: FakeTime) -> None:
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep)
    assert take(limiter, RateLimit(requests_per_minute=1), 2) == [True, False]
    # the new amount gets its own window (keys include the amount)
    assert take(limiter, RateLimit(requests_per_minute=3), 4) == [True, True, True, False]


# --- tokens per minute -------------------------------------------------------------------------


def test_estimate_larger_than_the_remaining_tokens_waits_then_gets_none(fake: FakeTime) -> None:
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep, window_seconds=HOUR)
    limit = RateLimit(tokens_per_minute=100)
    assert limiter.acquire("p", limit, 80, 0) is not None
    assert limiter.acquire("p", limit, 30, 0) is None
    assert fake.sleeps == []
    assert limiter.acquire("p", limit, 30, timeout=5) is None
    assert fake.sleeps == [5.0]
    assert limiter.acquire("p", limit, 20, 0) is not None


def test_estimate_over_the_whole_token_limit_is_refused_without_waiting(fake: FakeTime) -> None:
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep)
    assert limiter.acquire("p", RateLimit(tokens_per_minute=100), 101, timeout=30) is None
    assert fake.sleeps == []


def test_settle_with_fewer_tokens_gives_the_difference_back(fake: FakeTime) -> None:
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep, window_seconds=HOUR)
    limit = RateLimit(tokens_per_minute=100)
    permit = limiter.acquire("p", limit, 80, 0)
    assert permit is not None
    permit.settle(50)
    assert limiter.acquire("p", limit, 50, 0) is not None
    assert limiter.acquire("p", limit, 1, 0) is None


def test_settle_with_more_tokens_consumes_the_difference(fake: FakeTime) -> None:
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep, window_seconds=HOUR)
    limit = RateLimit(tokens_per_minute=100)
    permit = limiter.acquire("p", limit, 10, 0)
    assert permit is not None
    permit.settle(60)
    assert limiter.acquire("p", limit, 41, 0) is None
    assert limiter.acquire("p", limit, 40, 0) is not None


def test_settling_twice_corrects_against_the_last_settled_amount(fake: FakeTime) -> None:
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep, window_seconds=HOUR)
    limit = RateLimit(tokens_per_minute=100)
    permit = limiter.acquire("p", limit, 50, 0)
    assert permit is not None
    permit.settle(70)
    permit.settle(70)  # no change the second time
    permit.settle(30)
    assert limiter.acquire("p", limit, 71, 0) is None
    assert limiter.acquire("p", limit, 70, 0) is not None


def test_settle_refunds_nothing_once_the_window_has_moved_on() -> None:
    limiter = RateLimiter(window_seconds=1, window_margin_seconds=0)
    limit = RateLimit(tokens_per_minute=1000)
    permit = limiter.acquire("p", limit, 100, 0)
    assert permit is not None
    # memory windows start on whole multiples of the window: step just past the next boundary
    time.sleep(math.ceil(time.time()) - time.time() + 0.02)
    assert limiter.acquire("p", limit, 800, 0) is not None  # the new window's own usage
    permit.settle(0)
    # the 100 still weigh in from the previous window (> 50 for the next half second), so
    # 800 + 150 more do not fit; taking the refund out of the new window would let them in
    assert limiter.acquire("p", limit, 150, 0) is None


@pytest.mark.parametrize(
    ("window", "tokens", "expected"),
    [
        ((0, 0.0, 50, 90.0), 40, 0.0),  # fits now
        ((100, 30.0, 0, 90.0), 60, 6.0),  # previous weight 100*30/60 must fall to 40
        ((0, 0.0, 80, 75.0), 40, 15.0 + 15.0),  # shift in 15 s, then 80 decays to 60
    ],
)
def test_tokens_wait_is_the_earliest_moment_the_counter_allows_the_request(
    window: tuple[int, float, int, float], tokens: int, expected: float
) -> None:
    assert tokens_wait_seconds(window, 100, tokens, 60) == pytest.approx(expected)


def test_tokens_and_requests_must_both_allow_the_request(fake: FakeTime) -> None:
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep, window_seconds=HOUR)
    limit = RateLimit(requests_per_minute=5, tokens_per_minute=100)
    assert limiter.acquire("p", limit, 90, 0) is not None
    assert limiter.acquire("p", limit, 20, 0) is None  # tokens say no
    assert take(limiter, limit, 5, tokens=1) == [True, True, True, True, False]  # requests say no


# --- concurrency -------------------------------------------------------------------------------


def test_third_concurrent_request_waits_until_a_permit_is_released() -> None:
    limiter = RateLimiter()
    limit = RateLimit(concurrent_requests=2)
    first, second = (limiter.acquire("p", limit, 0, 0) for _ in range(2))
    assert first is not None and second is not None
    assert limiter.acquire("p", limit, 0, 0) is None
    got: list[object] = []
    started = threading.Event()

    def third() -> None:
        started.set()
        got.append(limiter.acquire("p", limit, 0, timeout=10))

    thread = threading.Thread(target=third, daemon=True)
    thread.start()
    assert started.wait(5)
    thread.join(0.2)
    assert thread.is_alive() and got == []  # still waiting for a slot
    first.release()
    thread.join(10)
    assert not thread.is_alive()
    assert got and got[0] is not None


def test_release_is_idempotent_and_the_permit_is_a_context_manager() -> None:
    limiter = RateLimiter()
    limit = RateLimit(concurrent_requests=1)
    permit = limiter.acquire("p", limit, 0, 0)
    assert permit is not None
    permit.release()
    permit.release()  # must not free a second slot
    with limiter.acquire("p", limit, 0, 0) as held:
        assert held is not None
        assert limiter.acquire("p", limit, 0, 0) is None
    assert limiter.acquire("p", limit, 0, 0) is not None


def test_a_concurrency_change_counts_requests_already_in_flight() -> None:
    limiter = RateLimiter()
    two, one = RateLimit(concurrent_requests=2), RateLimit(concurrent_requests=1)
    held = [limiter.acquire("p", two, 0, 0) for _ in range(2)]
    third = limiter.acquire("p", RateLimit(concurrent_requests=3), 0, 0)
    assert third is not None
    assert limiter.acquire("p", one, 0, 0) is None
    for permit in held:
        assert permit is not None
        permit.release()
    assert limiter.acquire("p", one, 0, 0) is None  # the permit from the size-3 config is out


def test_requests_refused_by_the_rate_limit_free_their_concurrency_slot(fake: FakeTime) -> None:
    limiter = RateLimiter(clock=fake.clock, sleep=fake.sleep)
    limit = RateLimit(requests_per_minute=1, concurrent_requests=1)
    permit = limiter.acquire("p", limit, 0, 0)
    assert permit is not None
    permit.release()
    assert limiter.acquire("p", limit, 0, timeout=1) is None
    assert limiter.acquire("p", RateLimit(concurrent_requests=1), 0, 0) is not None


# --- Redis -------------------------------------------------------------------------------------


def run_worker(redis_url: str, namespace: str, limit: RateLimit, tokens: list[int]) -> list[bool]:
    spec = {
        "window_seconds": 60,
        "redis_url": redis_url,
        "namespace": namespace,
        "provider": "p",
        "limit": limit.to_json(),
        "tokens": tokens,
    }
    done = subprocess.run(
        [sys.executable, str(WORKER), json.dumps(spec)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_two_processes_share_one_request_budget_through_redis(
    redis_url: str, namespace: str
) -> None:
    limiter = RateLimiter(redis_url, namespace=namespace)
    assert limiter.storage_kind == "redis"
    limit = RateLimit(requests_per_minute=4)
    assert take(limiter, limit, 2) == [True, True]
    assert run_worker(redis_url, namespace, limit, [0, 0, 0, 0]) == [True, True, False, False]
    assert take(limiter, limit, 1) == [False]


def test_limiters_on_one_redis_share_the_token_budget_and_its_corrections(
    redis_url: str, namespace: str
) -> None:
    limiter = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    other = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    limit = RateLimit(tokens_per_minute=1000)
    permit = limiter.acquire("p", limit, 900, 0)
    assert permit is not None
    permit.settle(600)  # 400 given back
    limiter.flush()  # corrections go to Redis off the caller's thread; tests wait for them
    assert take(other, limit, 1, tokens=500) == [False]
    assert take(other, limit, 2, tokens=400) == [True, False]


def test_token_charge_is_given_back_when_the_request_limit_refuses(
    redis_url: str, namespace: str
) -> None:
    limiter = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    both = RateLimit(requests_per_minute=1, tokens_per_minute=100)
    assert limiter.acquire("p", both, 60, 0) is not None
    assert limiter.acquire("p", both, 30, 0) is None  # refused by requests/minute
    # a limiter with the same token limit and no request limit sees only the first 60 tokens
    other = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    tokens_only = RateLimit(tokens_per_minute=100)
    assert take(other, tokens_only, 1, tokens=41) == [False]
    assert take(other, tokens_only, 1, tokens=40) == [True]


def test_unreachable_redis_falls_back_to_memory_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gatehouse.ratelimit")
    limiter = RateLimiter("redis://:s3cret-pw@127.0.0.1:1/0")
    assert limiter.storage_kind == "memory" and limiter.redis_fallback
    assert take(limiter, RateLimit(requests_per_minute=2), 3) == [True, True, False]
    warnings = [r for r in caplog.records if r.name == "gatehouse.ratelimit"]
    assert len(warnings) == 1
    assert "127.0.0.1:1" in warnings[0].getMessage()
    assert "s3cret-pw" not in warnings[0].getMessage()


def test_redis_url_that_is_not_redis_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="not a Redis URL"):
        RateLimiter("http://127.0.0.1:6379")


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A private redis-server on a free port, so a test can stop and restart it."""
    with own_redis_server() as server:
        yield server


def test_redis_lost_mid_run_falls_back_and_returns_after_the_retry_period(
    own_redis: RedisServer, fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gatehouse.ratelimit")
    limiter = RateLimiter(own_redis.url, clock=fake.clock, sleep=fake.sleep)
    limit = RateLimit(requests_per_minute=100, tokens_per_minute=10_000)
    assert limiter.acquire("p", limit, 10, 0) is not None
    assert limiter.storage_kind == "redis"

    own_redis.stop()
    assert take(limiter, limit, 3, tokens=10) == [True, True, True]  # never fails the call
    assert limiter.storage_kind == "memory" and limiter.redis_fallback
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1

    own_redis.start()
    fake.now += 10
    assert take(limiter, limit, 1, tokens=10) == [True]
    assert limiter.storage_kind == "memory"  # not retried before the period is over
    fake.now += 30
    assert take(limiter, limit, 1, tokens=10) == [True]
    assert limiter.storage_kind == "redis" and not limiter.redis_fallback
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_memory_limits_start_no_thread_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = RateLimiter()
    limit = RateLimit(requests_per_minute=10**6, tokens_per_minute=10**9)
    started: list[str] = []
    real_start = threading.Thread.start

    def counting_start(thread: threading.Thread) -> None:
        started.append(thread.name)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", counting_start)
    for _ in range(20):
        permit = limiter.acquire("p", limit, 1200, 0)
        assert permit is not None
        permit.settle(900)
        permit.release()
        time.sleep(0.015)  # longer than `limits`' 10 ms clean-up timer, as between real calls

    assert started == []


def test_memory_limits_still_drop_expired_entries() -> None:
    limiter = RateLimiter(window_seconds=1, window_margin_seconds=0)
    limit = RateLimit(requests_per_minute=5)
    for _ in range(5):
        assert limiter.acquire("p", limit, 1, 0) is not None
    time.sleep(1.05)  # past the window and the sweep period

    assert limiter.acquire("p", limit, 1, 0) is not None
    events = limiter._memory.storage.events  # memory is freed, not only ignored
    assert sum(len(entries) for entries in events.values()) == 1


def count_round_trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that send to Redis, one entry per round trip (a pipeline is
    one send of every command packed together)."""
    from redis.connection import AbstractConnection

    sent: list[str] = []
    real = AbstractConnection.send_packed_command

    def counting(self: AbstractConnection, *args: object, **kwargs: object) -> object:
        sent.append(threading.current_thread().name)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    return sent


def test_a_redis_token_refund_is_sent_off_the_callers_thread_in_one_round_trip(
    redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    limit = RateLimit(tokens_per_minute=10**6)
    permit = limiter.acquire("p", limit, 900, 0)
    assert permit is not None
    sent = count_round_trips(monkeypatch)
    permit.settle(600)
    assert threading.current_thread().name not in sent  # settle itself sends nothing
    limiter.flush()
    monkeypatch.undo()
    assert len(sent) == 1
    other = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    assert take(other, limit, 1, tokens=10**6 - 600) == [True]  # the 300 really came back


def test_corrections_of_many_calls_are_summed_into_one_round_trip(
    redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    limit = RateLimit(tokens_per_minute=10_000)
    permits = [limiter.acquire("p", limit, 1000, 0) for _ in range(5)]
    sent = count_round_trips(monkeypatch)
    for permit in permits:
        assert permit is not None
        permit.settle(200)  # 800 back each
    limiter.close()
    monkeypatch.undo()
    assert len(sent) <= 2  # the thread may have sent part of the batch before close
    other = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    assert take(other, limit, 1, tokens=9000) == [True]  # 5 × 200 used, 4,000 refunded


def test_extra_tokens_are_counted_at_once_on_redis(redis_url: str, namespace: str) -> None:
    # Deferring them would let the calls admitted meanwhile pass the limit at the provider.
    limiter = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    limit = RateLimit(tokens_per_minute=1000)
    permit = limiter.acquire("p", limit, 100, 0)
    assert permit is not None
    limiter.close()  # no refund thread running: what follows can only be the caller's doing
    permit.settle(700)  # 600 more than estimated
    other = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    assert take(other, limit, 1, tokens=301) == [False]
    assert take(other, limit, 1, tokens=300) == [True]


def test_both_limits_are_taken_in_one_round_trip_on_redis(
    redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    limit = RateLimit(requests_per_minute=3, tokens_per_minute=1000)
    assert limiter.acquire("p", limit, 100, 0) is not None  # scripts loaded
    sent = count_round_trips(monkeypatch)
    assert limiter.acquire("p", limit, 100, 0) is not None
    monkeypatch.undo()
    assert len(sent) == 1
    # what was taken is what `limits` itself counts: 2 requests, 200 tokens
    other = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    assert take(other, RateLimit(requests_per_minute=3), 2) == [True, False]
    assert take(other, RateLimit(tokens_per_minute=1000), 1, tokens=801) == [False]


def test_under_token_pressure_the_hits_go_one_after_the_other(
    redis_url: str, namespace: str
) -> None:
    limiter = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    limit = RateLimit(requests_per_minute=10, tokens_per_minute=100)
    assert limiter.acquire("p", limit, 90, 0) is not None
    assert limiter.acquire("p", limit, 50, 0) is None  # pipelined: its request entry stays
    for _ in range(3):
        assert limiter.acquire("p", limit, 50, 0) is None  # sequential: no entry taken
    other = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    assert take(other, RateLimit(requests_per_minute=10), 9) == [True] * 8 + [False]


def test_scripts_redis_forgot_are_sent_again(redis_url: str, namespace: str) -> None:
    import redis

    limiter = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    limit = RateLimit(requests_per_minute=5, tokens_per_minute=1000)
    assert limiter.acquire("p", limit, 100, 0) is not None
    redis.Redis.from_url(redis_url).script_flush()  # e.g. a Redis restarted without its cache
    assert limiter.acquire("p", limit, 100, 0) is not None
    assert limiter.storage_kind == "redis"
    other = RateLimiter(redis_url, namespace=namespace, window_seconds=HOUR)
    assert take(other, RateLimit(requests_per_minute=5), 4) == [True, True, True, False]


# --- the window's safety margin (issue 13) -----------------------------------------------------

SHORT = 2  # a two-second "minute"; the margin stays one whole second


def arrivals_over_the_run(
    limiters: list[RateLimiter], limit: RateLimit, threads: int, seconds: float, delay: float
) -> list[float]:
    """Each thread takes permits as fast as it can, from the limiters in turn, and "sends" each
    request `delay` seconds (at most) after its slot was taken; returns the arrival times."""
    arrivals: list[float] = []
    lock = threading.Lock()
    stop_at = time.time() + seconds
    first_burst_until = time.time() + delay / 2

    def worker(n: int) -> None:
        limiter = limiters[n % len(limiters)]
        for i in range(200):  # bounded; the clock ends the run long before
            if time.time() >= stop_at:
                return
            if limiter.acquire("p", limit, 0, timeout=0.5) is None:
                continue
            # the slow part between admission and the send: the first burst is the late one,
            # later ones vary between on time and late
            late = time.time() < first_burst_until
            time.sleep(delay if late else delay * ((n + i) % 3) / 2)
            with lock:
                arrivals.append(time.time())

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(seconds + 10)
    return sorted(arrivals)


def most_in_any_window(arrivals: list[float], window: float) -> int:
    """The largest number of arrivals in any strict window [t, t + window)."""
    return max(
        (
            sum(1 for later in arrivals[i:] if later < start + window)
            for i, start in enumerate(arrivals)
        ),
        default=0,
    )


def test_arrivals_stay_within_the_limit_in_every_nominal_window_despite_a_late_send() -> None:
    limiter = RateLimiter(window_seconds=SHORT)
    limit = RateLimit(requests_per_minute=6)

    arrivals = arrivals_over_the_run([limiter], limit, threads=4, seconds=3 * SHORT + 1, delay=0.6)

    assert len(arrivals) >= 2 * 6  # the limit was reached in more than one window
    assert most_in_any_window(arrivals, SHORT) <= 6


def test_without_the_margin_a_late_burst_and_the_next_one_share_a_window() -> None:
    # The contrast that makes the margin necessary: the slots are exact, the arrivals are not.
    limiter = RateLimiter(window_seconds=SHORT, window_margin_seconds=0)
    limit = RateLimit(requests_per_minute=6)

    arrivals = arrivals_over_the_run([limiter], limit, threads=4, seconds=2 * SHORT + 1, delay=0.6)

    assert most_in_any_window(arrivals, SHORT) > 6


@pytest.mark.redis
def test_limiters_sharing_redis_keep_the_margin_across_processes(
    redis_url: str, namespace: str
) -> None:
    # One limiter per would-be process, all on one Redis budget.
    limiters = [RateLimiter(redis_url, namespace=namespace, window_seconds=SHORT) for _ in range(3)]
    limit = RateLimit(requests_per_minute=6)

    arrivals = arrivals_over_the_run(limiters, limit, threads=6, seconds=3 * SHORT + 1, delay=0.6)

    assert len(arrivals) >= 2 * 6
    assert most_in_any_window(arrivals, SHORT) <= 6
