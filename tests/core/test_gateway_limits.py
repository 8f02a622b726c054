"""The gateway with the real RateLimiter: waiting in line, falling back, RateLimited, token
estimates and their correction, and one budget shared by two processes through real Redis."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

from gatehouse_core import AllProvidersFailed, ChatResult, Gateway, RateLimit, RateLimited
from gatehouse_core.ratelimit import RateLimiter
from tests.fakes.openrouter import Error, FakeOpenRouter, Reply, Slow

MESSAGES = [{"role": "user", "content": "Say hello to the gateway, please."}]
Factory = Callable[..., Gateway]


def provider_spec(name: str, **rate_limit: int) -> dict:
    return {"name": name, "rate_limit": RateLimit(**rate_limit)}


def models_sent(fake: FakeOpenRouter) -> list[str]:
    return [r.body["model"] for r in fake.chat_requests]


# ---- waiting in line -------------------------------------------------------------------------


def test_request_waits_in_line_for_a_request_slot_then_succeeds(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    # A one-second "minute", so the window moves during the test.
    gateway = gateway_factory(
        provider_spec("a", requests_per_minute=1),
        "b",
        limiter=RateLimiter(window_seconds=1),
        queue_timeout=5,
    )
    gateway.chat(MESSAGES)

    result = gateway.chat(MESSAGES)

    assert result.provider == "a"
    assert models_sent(fake_openrouter) == ["test/a", "test/a"]
    assert result.attempts[0].wait_ms > 0


def test_request_waits_for_a_concurrency_slot_then_succeeds(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory(
        provider_spec("a", concurrent_requests=1), "b", limiter=RateLimiter(), queue_timeout=10
    )
    fake_openrouter.enqueue(Slow(0.5, Reply(text="slow one")), Reply(text="queued one"))
    results: list[ChatResult] = []
    first = threading.Thread(target=lambda: results.append(gateway.chat(MESSAGES)))
    first.start()
    assert fake_openrouter.wait_for_chat_count(1)  # the first call holds the only slot

    second = gateway.chat(MESSAGES)
    first.join(timeout=10)

    assert (results[0].text, second.text) == ("slow one", "queued one")
    assert second.provider == "a"
    assert second.attempts[0].wait_ms > 0  # it waited in line rather than falling back
    assert models_sent(fake_openrouter) == ["test/a", "test/a"]


def test_queue_timeout_moves_to_the_next_provider(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory(
        provider_spec("a", requests_per_minute=1), "b", limiter=RateLimiter(), queue_timeout=0.1
    )
    gateway.chat(MESSAGES)

    result = gateway.chat(MESSAGES)

    assert result.provider == "b"
    rejected = result.attempts[0]
    assert (rejected.provider, rejected.status, rejected.error_type) == (
        "a",
        "rejected",
        "rate_limit_queue",
    )
    assert models_sent(fake_openrouter) == ["test/a", "test/b"]  # `a` was never sent the 2nd


def test_rate_limited_when_no_provider_can_take_the_request(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory(
        provider_spec("a", requests_per_minute=1),
        provider_spec("b", requests_per_minute=1),
        limiter=RateLimiter(),
        queue_timeout=0,
    )
    assert [gateway.chat(MESSAGES).provider for _ in range(2)] == ["a", "b"]

    with pytest.raises(RateLimited) as refused:
        gateway.chat(MESSAGES)

    assert [(a.provider, a.status) for a in refused.value.attempts] == [
        ("a", "rejected"),
        ("b", "rejected"),
    ]
    assert "GATEHOUSE_QUEUE_TIMEOUT" in str(refused.value)
    assert fake_openrouter.chat_count == 2


def test_a_provider_that_failed_is_not_reported_as_rate_limited(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory(
        "a", provider_spec("b", requests_per_minute=1), limiter=RateLimiter(), queue_timeout=0
    )
    fake_openrouter.always(Error(402), model="test/a")
    gateway.chat(MESSAGES)

    with pytest.raises(AllProvidersFailed) as failed:
        gateway.chat(MESSAGES)

    assert not isinstance(failed.value, RateLimited)


def test_estimate_over_the_token_limit_falls_back_at_once(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory(
        provider_spec("a", tokens_per_minute=100), "b", limiter=RateLimiter(), queue_timeout=5
    )

    # prompt characters / 4 + chat format + max_tokens = 8 + 6 + 200: more than the minute allows.
    result = gateway.chat(MESSAGES, max_tokens=200)

    assert result.provider == "b"
    assert result.attempts[0].error_type == "rate_limit_queue"
    assert models_sent(fake_openrouter) == ["test/b"]


def test_token_estimate_is_corrected_with_the_real_usage(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory(
        provider_spec("a", tokens_per_minute=1000), "b", limiter=RateLimiter(), queue_timeout=0
    )

    # Each call reserves ~908 tokens up front but really uses about a dozen; only because
    # the first is settled with its real usage does the second fit in the same minute.
    first = gateway.chat(MESSAGES, max_tokens=900)
    second = gateway.chat(MESSAGES, max_tokens=900)

    assert first.input_tokens + first.output_tokens < 50
    assert (first.provider, second.provider) == ("a", "a")


def test_failed_attempts_give_their_concurrency_slot_back(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory(
        provider_spec("a", concurrent_requests=1), limiter=RateLimiter(), queue_timeout=0
    )
    fake_openrouter.enqueue(*[Error(503)] * 4)
    with pytest.raises(AllProvidersFailed):
        gateway.chat(MESSAGES)

    assert gateway.chat(MESSAGES).provider == "a"
    assert fake_openrouter.chat_count == 5  # every retry got the slot back too


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_redis_never_fails_the_call(gateway_factory: Factory, closed_port: int) -> None:
    limiter = RateLimiter(f"redis://127.0.0.1:{closed_port}/0")
    gateway = gateway_factory(
        provider_spec("a", requests_per_minute=1), "b", limiter=limiter, queue_timeout=0
    )

    results = [gateway.chat(MESSAGES).provider for _ in range(2)]

    assert results == ["a", "b"]  # the per-process limit still holds
    assert limiter.redis_fallback


# ---- two processes, one budget -------------------------------------------------------------

WORKER = """
import json, sys
from gatehouse_core import Gateway, Registry
from gatehouse_core.ratelimit import RateLimiter

spec = json.loads(sys.argv[1])
limiter = RateLimiter(spec["redis_url"], namespace=spec["namespace"])
if limiter.storage_kind != "redis":
    raise SystemExit("the worker could not reach Redis")
gateway = Gateway(Registry.from_env(), limiter=limiter, queue_timeout=0)
messages = [{"role": "user", "content": "Say hello to the gateway, please."}]
print(json.dumps([gateway.chat(messages).provider for _ in range(spec["calls"])]))
gateway.close()
"""


def test_two_processes_share_one_request_budget_through_redis(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, redis_url: str, namespace: str
) -> None:
    limiter = RateLimiter(redis_url, namespace=namespace)
    assert limiter.storage_kind == "redis"
    gateway = gateway_factory(
        provider_spec("a", requests_per_minute=3), "b", limiter=limiter, queue_timeout=0
    )
    here = [gateway.chat(MESSAGES).provider for _ in range(2)]

    spec = {"redis_url": redis_url, "namespace": namespace, "calls": 2}
    run = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert run.returncode == 0, run.stderr
    there = json.loads(run.stdout)
    # 3 requests a minute for `a` across both processes: the other process gets the last one.
    assert (here, there) == (["a", "a"], ["a", "b"])
    assert models_sent(fake_openrouter).count("test/a") == 3


def test_failed_attempts_do_not_use_up_the_token_budget(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory(
        provider_spec("a", tokens_per_minute=1000), "b", limiter=RateLimiter(), queue_timeout=0
    )
    fake_openrouter.enqueue(*[Error(503)] * 3, model="test/a")

    # Each try reserves ~308 tokens; the three failed ones generated nothing and give theirs
    # back, so the fourth try still fits in the minute.
    result = gateway.chat(MESSAGES, max_tokens=300)

    assert result.provider == "a"
    assert models_sent(fake_openrouter) == ["test/a"] * 4


# ---- limits and retries: what each attempt holds and charges ---------------------------------


def test_answers_without_usage_keep_their_token_estimate(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    # Each call is estimated at len(content) // 4 + 6 (chat format) + 100 = 114: 2 fit in 250.
    gateway = gateway_factory(
        provider_spec("a", tokens_per_minute=250), limiter=RateLimiter(), queue_timeout=0
    )
    fake_openrouter.always(Reply(omit_usage=True))
    outcomes = []
    for _ in range(10):
        try:
            outcomes.append(gateway.chat(MESSAGES, max_tokens=100).provider)
        except RateLimited:
            outcomes.append("refused")

    assert outcomes == ["a", "a"] + ["refused"] * 8
    assert fake_openrouter.chat_count == 2


def test_the_concurrency_slot_is_free_during_a_retry_wait(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    limiter = RateLimiter()
    limit = RateLimit(concurrent_requests=1)
    free_while_sleeping: list[bool] = []

    def sleep(seconds: float) -> None:
        permit = limiter.acquire("a", limit, 1, 0)
        free_while_sleeping.append(permit is not None)
        if permit is not None:
            permit.release()

    gateway = gateway_factory(
        {"name": "a", "rate_limit": limit}, limiter=limiter, queue_timeout=0, sleep=sleep
    )
    fake_openrouter.enqueue(Error(503), Reply())

    result = gateway.chat(MESSAGES)

    assert [a.http_status for a in result.attempts] == [503, 200]
    assert free_while_sleeping == [True]


def test_a_refused_retry_after_a_real_failure_is_not_reported_as_rate_limited(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    # The only request slot of the minute goes to the first try; its retry is refused by the
    # queue, but the cause of the failure is the 503, not the limit.
    gateway = gateway_factory(
        provider_spec("a", requests_per_minute=1), limiter=RateLimiter(), queue_timeout=0
    )
    fake_openrouter.enqueue(Error(503))

    with pytest.raises(AllProvidersFailed) as failed:
        gateway.chat(MESSAGES)

    assert [(a.status, a.error_type) for a in failed.value.attempts] == [
        ("error", "service_unavailable"),
        ("rejected", "rate_limit_queue"),
    ]


# ---- the slot is taken right before the send (issue 13) --------------------------------------


class RecordingBudgets:
    """An admitter that says yes and writes down what happened to each reservation."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def reserve(self, info: object) -> RecordingBudgets.Hold:
        self.events.append("budget reserved")
        return RecordingBudgets.Hold(self.events)

    def rules(self) -> list[object]:
        return []

    class Hold:
        amount_usd = 0.01

        def __init__(self, events: list[str]) -> None:
            self.events = events

        def settle(self, cost: float) -> None:
            self.events.append("budget settled")

        def release(self) -> None:
            self.events.append("budget released")


class RecordingLimiter(RateLimiter):
    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def acquire(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        permit = super().acquire(*args, **kwargs)  # type: ignore[arg-type]
        self.events.append("slot taken" if permit is not None else "slot refused")
        return permit


def test_the_rate_limit_slot_is_taken_after_the_budget_check_right_before_the_send(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    events: list[str] = []
    gateway = gateway_factory(
        provider_spec("a", requests_per_minute=5),
        limiter=RecordingLimiter(events),
        budgets=RecordingBudgets(events),
    )

    gateway.chat(MESSAGES)

    assert events == ["budget reserved", "slot taken", "budget settled"]
    assert len(fake_openrouter.chat_requests) == 1


def test_a_reservation_is_released_when_no_rate_limit_slot_opens(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    events: list[str] = []
    gateway = gateway_factory(
        provider_spec("a", requests_per_minute=1),
        limiter=RecordingLimiter(events),
        budgets=RecordingBudgets(events),
        queue_timeout=0,
    )
    gateway.chat(MESSAGES)
    events.clear()

    with pytest.raises(RateLimited):
        gateway.chat(MESSAGES)

    assert events == ["budget reserved", "slot refused", "budget released"]
    assert len(fake_openrouter.chat_requests) == 1


def test_the_rate_limit_estimate_counts_the_chat_format_and_max_tokens() -> None:
    from gatehouse_core.gateway import _Call

    call = _Call.__new__(_Call)  # only the fields the estimate reads
    call.messages = [{"role": "system", "content": "x" * 40}, {"role": "user", "content": "hi"}]
    call.max_tokens = 50
    assert call.estimated_tokens() == (40 + 2) // 4 + 3 * 2 + 3 + 50
