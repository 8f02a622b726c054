"""The limiter's output guess for calls without max_tokens (estimates.py), alone and in the
gateway: charged before the send, so the usual correction afterwards is a refund."""

from __future__ import annotations

from collections.abc import Callable

from gatehouse_core import Gateway, RateLimit
from gatehouse_core.estimates import WINDOW, OutputEstimate
from gatehouse_core.ratelimit import RateLimiter
from tests.fakes.openrouter import FakeOpenRouter, Reply

MESSAGES = [{"role": "user", "content": "hello"}]


def test_no_history_no_guess_then_the_90th_percentile_of_recent_outputs() -> None:
    estimate = OutputEstimate()
    assert estimate.guess("a") == 0
    for tokens in range(1, 11):  # 1..10
        estimate.note("a", tokens)
    assert estimate.guess("a") == 9  # int(0.9 * 9) = 8th of the sorted ten
    assert estimate.guess("b") == 0  # per provider
    estimate.note("a", None)
    estimate.note("a", -5)  # no figure, or a nonsense one: ignored
    assert estimate.guess("a") == 9


def test_only_the_last_window_counts() -> None:
    estimate = OutputEstimate()
    estimate.note("a", 10_000)
    for _ in range(WINDOW):
        estimate.note("a", 20)
    assert estimate.guess("a") == 20


class ChargeLog(RateLimiter):
    def __init__(self) -> None:
        super().__init__()
        self.charged: list[int] = []

    def acquire(self, provider, limit, tokens, timeout):  # type: ignore[no-untyped-def]
        self.charged.append(tokens)
        return super().acquire(provider, limit, tokens, timeout)


def test_the_gateway_charges_the_guess_only_without_max_tokens_and_within_the_limit(
    gateway_factory: Callable[..., Gateway], fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.default_reply = Reply(text="w " * 40)  # 40 output tokens each time
    limiter = ChargeLog()
    limits = RateLimit(tokens_per_minute=10**6)
    gateway = gateway_factory({"name": "a", "rate_limit": limits}, limiter=limiter)
    first = gateway.chat(MESSAGES)
    base = limiter.charged[0]
    assert first.output_tokens == 40
    gateway.chat(MESSAGES)
    assert limiter.charged[1] == base + 40  # the guess, from the first call
    gateway.chat(MESSAGES, max_tokens=5)
    assert limiter.charged[2] == base + 5  # max_tokens bounds the output: no guess
    "".join(gateway.stream(MESSAGES))
    assert limiter.charged[3] == base + 40  # streams too

    small = RateLimit(tokens_per_minute=base + 10)
    tight = gateway_factory({"name": "b", "rate_limit": small}, limiter=ChargeLog())
    tight._outputs.note("b", 10_000)  # once, a long answer: more than the whole window
    answer = tight.chat(MESSAGES, provider="b")  # the guess is cut to a window: it still fits
    assert answer.provider == "b"
    charged = tight.limiter.charged  # type: ignore[union-attr]
    assert charged == [base + 10]
