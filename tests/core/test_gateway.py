"""Gateway.chat against the fake OpenRouter over real sockets: order, retries, fallback,
waits, cooldown, usage and cost, attribution headers, client reuse, logs and secrets."""

from __future__ import annotations

import io
import json
import logging
import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from gatehouse_core import (
    AllProvidersFailed,
    Gateway,
    InvalidRequest,
)
from gatehouse_core.catalog import Catalog
from gatehouse_core.gateway import default_client_factory
from gatehouse_core.policy import backoff_seconds
from gatehouse_core.telemetry import JsonFormatter
from tests.core.conftest import RAND
from tests.fakes.openrouter import (
    DEFAULT_KEY,
    Drop,
    Error,
    Error200,
    FakeOpenRouter,
    MidStreamError,
    Reply,
    Slow,
    count_completion_tokens,
    count_prompt_tokens,
    fake_cost,
)

MESSAGES = [{"role": "user", "content": "Say hello to the gateway, please."}]
BACKOFFS = [backoff_seconds(n, lambda: RAND) for n in range(3)]  # 3 retries per provider
RETRIED = [408, 429, 500, 502, 503, 504, 524, 529]
REAL_KEY = "sk-or-v1-" + "5e1f" * 16  # shaped like a real key, so no redaction is partial

Factory = Callable[..., Gateway]


def models_sent(fake: FakeOpenRouter) -> list[str]:
    return [r.body["model"] for r in fake.chat_requests]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- fallback order ----------------------------------------------------------------------


@pytest.fixture
def three(gateway_factory: Factory) -> Gateway:
    """`main` is the default but has the worst priority; `high` ranks before `low`."""
    return gateway_factory(
        {"name": "main", "priority": 9},
        {"name": "low", "priority": 5},
        {"name": "high", "priority": 1},
    )


def test_order_is_default_first_then_ascending_priority(
    three: Gateway, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.always(Error(402))

    with pytest.raises(AllProvidersFailed) as failed:
        three.chat(MESSAGES)

    assert models_sent(fake_openrouter) == ["test/main", "test/high", "test/low"]
    assert [a.provider for a in failed.value.attempts] == ["main", "high", "low"]


def test_requested_provider_goes_first_then_the_rest_by_priority(
    three: Gateway, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.always(Error(402))

    with pytest.raises(AllProvidersFailed):
        three.chat(MESSAGES, provider="low")

    assert models_sent(fake_openrouter) == ["test/low", "test/main", "test/high"]


def test_explicit_model_only_on_the_first_provider(
    three: Gateway, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Error(404), model="openai/gpt-4o-mini")

    result = three.chat(MESSAGES, model="openai/gpt-4o-mini")

    assert models_sent(fake_openrouter) == ["openai/gpt-4o-mini", "test/high"]
    assert (result.provider, result.model) == ("high", "test/high")
    assert [a.model for a in result.attempts] == ["openai/gpt-4o-mini", "test/high"]


def test_disabled_provider_is_not_tried(three: Gateway, fake_openrouter: FakeOpenRouter) -> None:
    three.registry.set_enabled("high", False, actor="test")
    fake_openrouter.always(Error(402))

    with pytest.raises(AllProvidersFailed):
        three.chat(MESSAGES)

    assert models_sent(fake_openrouter) == ["test/main", "test/low"]


@pytest.mark.parametrize("name", ["nope", "high"])
def test_unknown_or_disabled_requested_provider_is_an_invalid_request(
    three: Gateway, fake_openrouter: FakeOpenRouter, name: str
) -> None:
    three.registry.set_enabled("high", False, actor="test")

    with pytest.raises(InvalidRequest, match=f"Provider '{name}'"):
        three.chat(MESSAGES, provider=name)

    assert fake_openrouter.chat_count == 0


@pytest.mark.parametrize(
    ("messages", "model", "match"),
    [([], None, "messages is empty"), (MESSAGES, "gpt 4o", "is not a model id")],
)
def test_malformed_requests_are_refused_before_any_upstream_call(
    gateway_factory: Factory,
    fake_openrouter: FakeOpenRouter,
    messages: list,
    model: str | None,
    match: str,
) -> None:
    gateway = gateway_factory("a")

    with pytest.raises(InvalidRequest, match=match):
        gateway.chat(messages, model=model)

    assert fake_openrouter.chat_count == 0


def test_provider_without_key_is_skipped_with_a_rejected_attempt(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory({"name": "a", "api_key": None}, "b")

    result = gateway.chat(MESSAGES)

    assert result.provider == "b"
    first = result.attempts[0]
    assert (first.provider, first.status, first.error_type) == ("a", "rejected", "no_key")
    assert models_sent(fake_openrouter) == ["test/b"]


# ---- each status's decision ----------------------------------------------------------------


@pytest.mark.parametrize("status", RETRIED)
def test_transient_status_is_retried_three_times_then_falls_back(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, sleeps: list[float], status: int
) -> None:
    gateway = gateway_factory("a", "b")
    fake_openrouter.always(Error(status), model="test/a")

    result = gateway.chat(MESSAGES)

    assert models_sent(fake_openrouter) == ["test/a"] * 4 + ["test/b"]
    assert sleeps == BACKOFFS
    assert result.provider == "b"
    assert [(a.status, a.http_status) for a in result.attempts] == [("error", status)] * 4 + [
        ("ok", 200)
    ]
    assert [a.wait_ms for a in result.attempts[:4]] == [0.0, *(s * 1000 for s in BACKOFFS)]


def test_transient_error_then_success_stays_on_the_provider(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, sleeps: list[float]
) -> None:
    gateway = gateway_factory("a", "b")
    fake_openrouter.enqueue(Error(503), Reply(text="second time lucky"))

    result = gateway.chat(MESSAGES)

    assert (result.provider, result.text) == ("a", "second time lucky")
    assert sleeps == BACKOFFS[:1]
    assert [a.status for a in result.attempts] == ["error", "ok"]


@pytest.mark.parametrize(
    "error",
    [
        Error.unauthorized(),
        Error.insufficient_credits(requested_tokens=131072, affordable_tokens=54095),
        Error.moderation(),
        Error(404),
    ],
    ids=["401", "402", "403", "404"],
)
def test_account_and_model_errors_fall_back_without_retry(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, sleeps: list[float], error: Error
) -> None:
    gateway = gateway_factory("a", "b")
    fake_openrouter.always(error, model="test/a")

    result = gateway.chat(MESSAGES)

    assert models_sent(fake_openrouter) == ["test/a", "test/b"]
    assert sleeps == []
    assert result.attempts[0].http_status == error.status


@pytest.mark.parametrize(
    "error",
    [Error.invalid_model("test/a"), Error(413), Error(422)],
    ids=["400", "413", "422"],
)
def test_bad_request_raises_invalid_request_without_fallback(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, sleeps: list[float], error: Error
) -> None:
    gateway = gateway_factory("a", "b")
    fake_openrouter.always(error, model="test/a")

    with pytest.raises(InvalidRequest) as raised:
        gateway.chat(MESSAGES)

    assert error.payload()["error"]["message"] in str(raised.value)
    assert models_sent(fake_openrouter) == ["test/a"]
    assert sleeps == []
    assert [(a.provider, a.http_status) for a in raised.value.attempts] == [("a", error.status)]


def test_all_providers_failing_carries_every_attempt(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a", "b")
    fake_openrouter.always(Error(503), model="test/a")
    fake_openrouter.always(Error.unauthorized(), model="test/b")

    with pytest.raises(AllProvidersFailed) as failed:
        gateway.chat(MESSAGES)

    attempts = failed.value.attempts
    assert [(a.provider, a.http_status) for a in attempts] == [("a", 503)] * 4 + [("b", 401)]
    assert failed.value.request_id
    assert "a (test/a): HTTP 503" in str(failed.value)
    assert "check the provider's API key" in str(failed.value)  # the hint for the last failure


# ---- timeouts and connection errors --------------------------------------------------------


def test_timeout_is_retried(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, sleeps: list[float]
) -> None:
    gateway = gateway_factory("a", timeout=0.3)
    fake_openrouter.enqueue(Slow(5.0), Reply(text="in time"))

    result = gateway.chat(MESSAGES)

    assert result.text == "in time"
    assert [a.error_type for a in result.attempts] == ["timeout", None]
    assert sleeps == BACKOFFS[:1]


def test_dropped_connection_is_retried(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, sleeps: list[float]
) -> None:
    gateway = gateway_factory("a")
    fake_openrouter.enqueue(Drop(), Drop(), Reply(text="back"))

    result = gateway.chat(MESSAGES)

    assert result.text == "back"
    assert [a.error_type for a in result.attempts] == ["connection_error"] * 2 + [None]
    assert sleeps == BACKOFFS[:2]


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port  # nothing listens here any more: connecting is refused


def test_unreachable_provider_is_retried_then_falls_back(
    gateway_factory: Factory,
    fake_openrouter: FakeOpenRouter,
    sleeps: list[float],
    closed_port: int,
) -> None:
    dead = {"name": "dead", "base_url": f"http://127.0.0.1:{closed_port}/api/v1"}
    gateway = gateway_factory(dead, "alive")

    result = gateway.chat(MESSAGES)

    assert result.provider == "alive"
    assert [a.error_type for a in result.attempts] == ["connection_error"] * 4 + [None]
    assert sleeps == BACKOFFS


# ---- waits the provider asks for -------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "wait"),
    [
        (Error.rate_limit(retry_after=7), 7.0),
        (Error.rate_limit(retry_after_ms=1500), 1.5),
        (Error(503, headers={"Retry-After": "2"}), 2.0),
    ],
    ids=["retry-after", "retry-after-ms", "503-retry-after"],
)
def test_retry_after_headers_set_the_wait(
    gateway_factory: Factory,
    fake_openrouter: FakeOpenRouter,
    sleeps: list[float],
    error: Error,
    wait: float,
) -> None:
    gateway = gateway_factory("a", "b")
    fake_openrouter.enqueue(error, Reply())

    result = gateway.chat(MESSAGES)

    assert result.provider == "a"
    assert sleeps == [wait]
    assert result.attempts[1].wait_ms == wait * 1000


def test_x_ratelimit_reset_sets_the_wait(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, sleeps: list[float]
) -> None:
    gateway = gateway_factory("a", "b")
    reset = datetime.now(UTC) + timedelta(seconds=20)
    fake_openrouter.enqueue(Error.rate_limit(reset=reset), Reply())

    result = gateway.chat(MESSAGES)

    assert result.provider == "a"
    assert len(sleeps) == 1
    # The header is an absolute time (epoch ms): the wait is what was left of it on arrival.
    assert 15.0 < sleeps[0] <= 20.0


def test_a_reset_in_the_past_waits_the_backoff_not_zero(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, sleeps: list[float]
) -> None:
    gateway = gateway_factory("a")
    past = datetime.now(UTC) - timedelta(seconds=30)
    fake_openrouter.enqueue(*[Error.rate_limit(reset=past)] * 3, Reply())

    result = gateway.chat(MESSAGES)

    assert result.provider == "a"
    assert sleeps == BACKOFFS


def test_x_ratelimit_reset_in_epoch_seconds_sets_the_wait(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, sleeps: list[float]
) -> None:
    gateway = gateway_factory("a")
    reset = str(int(datetime.now(UTC).timestamp()) + 20)
    fake_openrouter.enqueue(Error(429, headers={"X-RateLimit-Reset": reset}), Reply())

    gateway.chat(MESSAGES)

    assert len(sleeps) == 1
    assert 15.0 < sleeps[0] <= 20.0


@pytest.mark.parametrize(
    "error",
    [
        Error.rate_limit(retry_after=31),
        Error.rate_limit(reset=datetime.now(UTC) + timedelta(hours=6)),
        Error.free_models_per_day(),
    ],
    ids=["retry-after-beyond-cap", "reset-beyond-cap", "free-models-per-day"],
)
def test_long_waits_and_daily_quota_move_on_at_once(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, sleeps: list[float], error: Error
) -> None:
    gateway = gateway_factory("a", "b", retry_after_cap=30)
    fake_openrouter.always(error, model="test/a")

    result = gateway.chat(MESSAGES)

    assert models_sent(fake_openrouter) == ["test/a", "test/b"]
    assert sleeps == []
    assert result.provider == "b"


def test_daily_quota_is_recorded_as_such(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")
    fake_openrouter.always(Error.free_models_per_day())

    with pytest.raises(AllProvidersFailed) as failed:
        gateway.chat(MESSAGES)

    assert failed.value.attempts[0].error_type == "daily_quota"
    assert "daily free-model quota" in str(failed.value)


# ---- HTTP 200 carrying an error ----------------------------------------------------------------


def test_200_with_retryable_error_code_is_retried(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, sleeps: list[float]
) -> None:
    gateway = gateway_factory("a", "b")
    fake_openrouter.enqueue(Error200(code=429), Reply(text="ok now"))

    result = gateway.chat(MESSAGES)

    assert (result.provider, result.text) == ("a", "ok now")
    assert (result.attempts[0].status, result.attempts[0].http_status) == ("error", 429)
    assert sleeps == BACKOFFS[:1]


def test_200_with_auth_error_code_falls_back(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, sleeps: list[float]
) -> None:
    gateway = gateway_factory("a", "b")
    fake_openrouter.always(Error200(code=401, message="User not found."), model="test/a")

    result = gateway.chat(MESSAGES)

    assert result.provider == "b"
    assert sleeps == []


def test_200_with_bad_request_code_is_an_invalid_request(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a", "b")
    fake_openrouter.always(Error200(code=400, message="Invalid model specified"), model="test/a")

    with pytest.raises(InvalidRequest, match="Invalid model specified"):
        gateway.chat(MESSAGES)

    assert models_sent(fake_openrouter) == ["test/a"]


def test_200_whose_choice_failed_midway_is_not_an_answer(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, sleeps: list[float]
) -> None:
    gateway = gateway_factory("a")
    fake_openrouter.enqueue(MidStreamError(after_chunks=2), Reply(text="the whole answer"))

    result = gateway.chat(MESSAGES)

    assert result.text == "the whole answer"
    assert (result.attempts[0].status, result.attempts[0].http_status) == ("error", 502)
    assert sleeps == BACKOFFS[:1]


# ---- cooldown ------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def fail_a_times(gateway: Gateway, times: int, clock: FakeClock, step: float = 1.0) -> None:
    for _ in range(times):
        gateway.chat(MESSAGES)
        clock.now += step


def test_five_failures_in_a_row_put_a_provider_in_cooldown(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, clock: FakeClock
) -> None:
    gateway = gateway_factory("a", "b", clock=clock, cooldown_seconds=30)
    fake_openrouter.always(Error(402), model="test/a")

    fail_a_times(gateway, 5, clock)
    before = fake_openrouter.chat_count
    result = gateway.chat(MESSAGES)

    assert result.provider == "b"
    assert models_sent(fake_openrouter)[before:] == ["test/b"]  # `a` skipped
    health = {h.name: h for h in gateway.health()}
    assert health["a"].cooldown_until is not None
    assert health["a"].cooldown_until_wall is not None
    assert (
        health["a"].last_error
        == "Insufficient credits. Add more using https://openrouter.ai/credits"
    )
    assert health["b"].cooldown_until is None


def test_provider_is_tried_again_after_the_cooldown(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, clock: FakeClock
) -> None:
    gateway = gateway_factory("a", "b", clock=clock, cooldown_seconds=30)
    fake_openrouter.enqueue(*[Error(402)] * 5, model="test/a")
    fail_a_times(gateway, 5, clock)

    clock.now += 30
    result = gateway.chat(MESSAGES)

    assert result.provider == "a"
    assert all(h.cooldown_until is None for h in gateway.health())


def test_failures_spread_over_more_than_60s_do_not_cool_down(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, clock: FakeClock
) -> None:
    gateway = gateway_factory("a", "b", clock=clock)
    fake_openrouter.always(Error(402), model="test/a")
    fail_a_times(gateway, 5, clock, step=20.0)  # the 5th failure is 80 s after the 1st

    before = fake_openrouter.chat_count
    gateway.chat(MESSAGES)

    assert models_sent(fake_openrouter)[before] == "test/a"


def test_a_success_resets_the_failure_count(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, clock: FakeClock
) -> None:
    gateway = gateway_factory("a", "b", clock=clock)
    fake_openrouter.enqueue(*[Error(402)] * 4, Reply(), Error(402), model="test/a")
    fail_a_times(gateway, 6, clock)

    state = {h.name: h for h in gateway.health()}["a"]
    assert (state.consecutive_failures, state.cooldown_until) == (1, None)
    before = fake_openrouter.chat_count
    gateway.chat(MESSAGES)
    assert models_sent(fake_openrouter)[before] == "test/a"


def test_cooldown_counts_failed_calls_not_retries(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, clock: FakeClock
) -> None:
    gateway = gateway_factory("a", "b", clock=clock)
    fake_openrouter.always(Error(503), model="test/a")  # 4 tries per call, then fallback

    for _ in range(2):
        assert gateway.chat(MESSAGES).provider == "b"

    state = {h.name: h for h in gateway.health()}["a"]
    assert (state.consecutive_failures, state.cooldown_until) == (2, None)
    assert models_sent(fake_openrouter).count("test/a") == 8


def test_when_every_provider_cools_down_they_are_still_tried(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, clock: FakeClock
) -> None:
    gateway = gateway_factory("a", clock=clock)
    fake_openrouter.enqueue(*[Error(402)] * 5, model="test/a")
    for _ in range(5):
        with pytest.raises(AllProvidersFailed):
            gateway.chat(MESSAGES)

    assert gateway.health()[0].cooldown_until is not None
    assert gateway.chat(MESSAGES).provider == "a"


# ---- usage and cost ------------------------------------------------------------------------


def test_usage_include_is_sent_and_provider_cost_is_taken(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")

    result = gateway.chat(MESSAGES, max_tokens=50, temperature=0.2)

    body = fake_openrouter.chat_requests[0].body
    assert body["usage"] == {"include": True}
    assert (body["max_tokens"], body["temperature"]) == (50, 0.2)
    prompt = count_prompt_tokens(body)
    completion = count_completion_tokens(result.text)
    assert (result.input_tokens, result.output_tokens) == (prompt, completion)
    assert (result.cost_usd, result.cost_source) == (fake_cost(prompt, completion), "provider")
    assert result.generation_id.startswith("gen-")


def test_caller_extra_body_is_merged_with_usage_include(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")

    gateway.chat(MESSAGES, extra_body={"models": ["x/y"], "route": "fallback"}, seed=7)

    body = fake_openrouter.chat_requests[0].body
    assert body["usage"] == {"include": True}
    assert (body["models"], body["route"], body["seed"]) == (["x/y"], "fallback", 7)


def test_without_provider_cost_the_catalog_estimates_it(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")
    catalog = Catalog(gateway.registry.engine)
    gateway.catalog = catalog
    fake_openrouter.enqueue(
        Reply(omit_cost=True, prompt_tokens=1000, completion_tokens=200, cached_tokens=400)
    )

    result = gateway.chat(MESSAGES, model="openai/gpt-4o-mini")

    price = catalog.entry("openai/gpt-4o-mini")
    expected = (
        600 * price.prompt_price + 400 * price.cache_read_price + 200 * price.completion_price
    )
    assert result.cost_source == "estimated"
    assert result.cost_usd == pytest.approx(expected)
    assert result.cost_usd == pytest.approx(600 * 0.15e-6 + 400 * 0.075e-6 + 200 * 0.6e-6)


def test_estimate_uses_the_model_that_actually_answered(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")
    gateway.catalog = catalog = Catalog(gateway.registry.engine)
    fake_openrouter.enqueue(
        Reply(
            omit_cost=True,
            model_used="anthropic/claude-sonnet-4.5",
            prompt_tokens=100,
            completion_tokens=10,
        )
    )

    result = gateway.chat(MESSAGES, model="openrouter/auto")

    price = catalog.entry("anthropic/claude-sonnet-4.5")
    assert result.model == "anthropic/claude-sonnet-4.5"
    assert result.cost_usd == pytest.approx(100 * price.prompt_price + 10 * price.completion_price)


def test_unknown_model_without_provider_cost_has_unknown_cost(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")
    gateway.catalog = Catalog(gateway.registry.engine)
    fake_openrouter.enqueue(Reply(omit_cost=True))

    result = gateway.chat(MESSAGES)  # test/a is in no catalog

    assert (result.cost_usd, result.cost_source) == (None, "unknown")
    assert result.input_tokens is not None


def test_cached_and_reasoning_tokens_are_recorded(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    gateway = gateway_factory("a")
    fake_openrouter.enqueue(Reply(prompt_tokens=50, cached_tokens=30, reasoning_tokens=12))

    result = gateway.chat(MESSAGES)

    assert (result.cached_tokens, result.reasoning_tokens) == (30, 12)
    assert result.output_tokens == count_completion_tokens(result.text) + 12


# ---- attribution headers and clients -----------------------------------------------------------


def test_attribution_headers_come_from_the_config(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter
) -> None:
    headers = {"HTTP-Referer": "https://gatehouse.example.com", "X-Title": "GateHouse"}
    gateway = gateway_factory({"name": "a", "headers": headers})

    gateway.chat(MESSAGES)

    sent = fake_openrouter.chat_requests[0].headers
    assert sent["http-referer"] == "https://gatehouse.example.com"
    assert sent["x-title"] == "GateHouse"
    assert sent["authorization"] == f"Bearer {DEFAULT_KEY}"


@pytest.fixture
def builds() -> list[str]:
    return []


@pytest.fixture
def counting_gateway(gateway_factory: Factory, builds: list[str]) -> Gateway:
    def factory(provider, timeout):  # type: ignore[no-untyped-def]
        builds.append(provider.config.name)
        return default_client_factory(provider, timeout)

    return gateway_factory("a", "b", client_factory=factory)


def test_one_client_per_provider_is_reused(
    counting_gateway: Gateway, fake_openrouter: FakeOpenRouter, builds: list[str]
) -> None:
    fake_openrouter.enqueue(Error(402), model="test/a")

    for _ in range(3):
        counting_gateway.chat(MESSAGES)

    assert builds == ["a", "b"]
    assert fake_openrouter.chat_count == 4


def test_client_is_rebuilt_when_the_key_changes(
    counting_gateway: Gateway, fake_openrouter: FakeOpenRouter, builds: list[str]
) -> None:
    counting_gateway.chat(MESSAGES)
    fake_openrouter.add_key(REAL_KEY)

    counting_gateway.registry.set_key("a", REAL_KEY, actor="test")
    counting_gateway.chat(MESSAGES)
    counting_gateway.chat(MESSAGES)

    assert builds == ["a", "a"]
    assert [r.api_key for r in fake_openrouter.chat_requests] == [DEFAULT_KEY, REAL_KEY, REAL_KEY]


def test_client_is_rebuilt_when_the_config_changes(
    counting_gateway: Gateway, fake_openrouter: FakeOpenRouter, builds: list[str]
) -> None:
    counting_gateway.chat(MESSAGES)

    counting_gateway.registry.update("a", actor="test", headers={"X-Title": "Renamed"})
    counting_gateway.chat(MESSAGES)

    assert builds == ["a", "a"]
    assert fake_openrouter.chat_requests[1].headers["x-title"] == "Renamed"


def test_registry_changes_apply_without_restart(
    counting_gateway: Gateway, fake_openrouter: FakeOpenRouter
) -> None:
    counting_gateway.registry.update("b", actor="test", is_default=True)

    result = counting_gateway.chat(MESSAGES)

    assert result.provider == "b"


# ---- logs and secrets ----------------------------------------------------------------------


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """The gateway logger's records, formatted as the JSON lines production writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("gatehouse.gateway")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def log_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_line_per_completed_call(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, log_stream: io.StringIO
) -> None:
    gateway = gateway_factory("a")
    fake_openrouter.enqueue(Error(503), Reply())

    result = gateway.chat(MESSAGES, workflow_id="wf-7", trace_id="tr-9")

    (line,) = log_lines(log_stream)
    assert line["level"] == "info"
    assert line["msg"] == "LLM request completed"
    assert line["provider"] == "a"
    assert line["model"] == "test/a"
    assert (line["input_tokens"], line["output_tokens"]) == (
        result.input_tokens,
        result.output_tokens,
    )
    assert line["latency_ms"] >= 0
    assert (line["workflow_id"], line["trace_id"]) == ("wf-7", "tr-9")
    assert line["cost_usd"] == result.cost_usd
    assert (line["status"], line["attempts"], line["request_id"]) == ("ok", 2, result.request_id)


def test_failed_call_logs_one_error_line(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, log_stream: io.StringIO
) -> None:
    gateway = gateway_factory("a")
    fake_openrouter.always(Error(402))

    with pytest.raises(AllProvidersFailed) as failed:
        gateway.chat(MESSAGES, workflow_id="wf-7")

    (line,) = log_lines(log_stream)
    assert (line["msg"], line["status"], line["level"]) == (
        "LLM request completed",
        "error",
        "warning",
    )
    assert (line["attempts"], line["request_id"]) == (1, failed.value.request_id)


def test_debug_logs_truncated_prompts_and_never_the_key(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, log_stream: io.StringIO
) -> None:
    fake_openrouter.add_key(REAL_KEY)
    gateway = gateway_factory({"name": "a", "api_key": REAL_KEY})
    logging.getLogger("gatehouse.gateway").setLevel(logging.DEBUG)
    prompt = "x" * 150 + "y" * 850

    gateway.chat([{"role": "user", "content": prompt}])

    payload = next(line for line in log_lines(log_stream) if line["msg"] == "LLM request payload")
    content = payload["messages"][0]["content"]
    assert content.startswith("x" * 150 + "y" * 50)
    assert "y" * 51 not in content
    assert REAL_KEY not in log_stream.getvalue()
    assert REAL_KEY[-12:] not in log_stream.getvalue()


def test_errors_and_logs_never_carry_the_key(
    gateway_factory: Factory, fake_openrouter: FakeOpenRouter, log_stream: io.StringIO
) -> None:
    fake_openrouter.add_key(REAL_KEY)
    gateway = gateway_factory({"name": "a", "api_key": REAL_KEY})
    logging.getLogger("gatehouse.gateway").setLevel(logging.DEBUG)
    # An upstream that echoes the key back in its error message.
    fake_openrouter.always(Error(401, f"Key {REAL_KEY} is disabled"))

    with pytest.raises(AllProvidersFailed) as failed:
        gateway.chat(MESSAGES)

    seen = [str(failed.value), repr(failed.value.attempts), log_stream.getvalue()]
    for text in seen:
        assert REAL_KEY not in text
        assert REAL_KEY[-12:] not in text
    assert "is disabled" in str(failed.value)
