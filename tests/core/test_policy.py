"""The retry/fallback table on its own: statuses, exceptions, bodies, waits and backoff."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import httpx2
import openai
import pytest

from gatehouse_core.policy import (
    BACKOFF_MAX_SECONDS,
    DECISIONS,
    MAX_RETRIES,
    Decision,
    Outcome,
    ProviderBodyError,
    backoff_seconds,
    classify,
    decide,
    retry_after_seconds,
    retry_wait_seconds,
)

NOW = 1_800_000_000.0
REQUEST = httpx2.Request("POST", "http://127.0.0.1/api/v1/chat/completions")


def status_error(status: int, message: str = "boom", headers: dict | None = None) -> Exception:
    body = {"code": status, "message": message}
    response = httpx2.Response(status, headers=headers or {}, request=REQUEST, json={"error": body})
    # The SDK builds these from the response; the body it passes on is the inner `error`.
    return openai.APIStatusError(message, response=response, body=body)


def clock() -> float:
    return NOW


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 524, 529])
def test_transient_statuses_are_retried(status: int) -> None:
    assert classify(status_error(status), clock).decision is Decision.RETRY


@pytest.mark.parametrize("status", [401, 402, 403, 404])
def test_account_and_model_statuses_fall_back_without_retry(status: int) -> None:
    assert classify(status_error(status), clock).decision is Decision.FALLBACK


@pytest.mark.parametrize("status", [400, 413, 422])
def test_bad_request_statuses_fail(status: int) -> None:
    outcome = classify(status_error(status, "Invalid argument"), clock)
    assert outcome.decision is Decision.FAIL
    assert outcome.message == "Invalid argument"
    assert outcome.http_status == status


def test_the_table_covers_every_documented_status_once() -> None:
    documented = {400, 401, 402, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504, 524, 529}
    assert set(DECISIONS) == documented
    assert MAX_RETRIES == 3


@pytest.mark.parametrize(("status", "decision"), [(418, Decision.FALLBACK), (599, Decision.RETRY)])
def test_unlisted_statuses_fall_back_or_retry_by_class(status: int, decision: Decision) -> None:
    assert classify(status_error(status), clock).decision is decision


def test_timeout_and_connection_errors_are_retried() -> None:
    timeout = classify(openai.APITimeoutError(request=REQUEST), clock)
    refused = classify(openai.APIConnectionError(request=REQUEST), clock)
    assert (timeout.decision, timeout.error_type) == (Decision.RETRY, "timeout")
    assert (refused.decision, refused.error_type) == (Decision.RETRY, "connection_error")


def test_200_body_error_is_classified_by_its_code() -> None:
    assert classify(ProviderBodyError({"code": 429, "message": "x"}), clock).decision is (
        Decision.RETRY
    )
    assert classify(ProviderBodyError({"code": 401, "message": "x"}), clock).decision is (
        Decision.FALLBACK
    )
    bad = classify(ProviderBodyError({"code": "400", "message": "Invalid model"}), clock)
    assert (bad.decision, bad.http_status, bad.message) == (Decision.FAIL, 400, "Invalid model")


def test_200_body_error_with_a_string_code_counts_as_a_provider_failure() -> None:
    outcome = classify(ProviderBodyError({"code": "server_error", "message": "x"}), clock)
    assert (outcome.decision, outcome.http_status) == (Decision.RETRY, 502)


def test_sse_error_event_is_classified_by_its_code() -> None:
    error = openai.APIError("Rate limit exceeded", REQUEST, body={"code": 429, "message": "r"})
    assert classify(error, clock).error_type == "rate_limited"


def test_free_models_per_day_is_a_daily_quota_that_falls_back_at_once() -> None:
    message = "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000"
    outcome = classify(status_error(429, message), clock)
    assert outcome.error_type == "daily_quota"
    assert decide(outcome, retry_after_cap=30) is Decision.FALLBACK


def test_wait_beyond_the_cap_falls_back_and_within_it_retries() -> None:
    long_wait = classify(status_error(429, headers={"Retry-After": "31"}), clock)
    short_wait = classify(status_error(429, headers={"Retry-After": "30"}), clock)
    assert decide(long_wait, retry_after_cap=30) is Decision.FALLBACK
    assert decide(short_wait, retry_after_cap=30) is Decision.RETRY


def test_cap_does_not_turn_a_fallback_or_failure_into_a_retry() -> None:
    refused = Outcome(Decision.FAIL, "bad_request", "bad", 400, retry_after=1)
    assert decide(refused, retry_after_cap=30) is Decision.FAIL


def test_retry_after_seconds() -> None:
    assert retry_after_seconds({"Retry-After": "7"}, clock) == 7.0


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500", "Retry-After": "9"}, clock) == 1.5


def test_retry_after_http_date() -> None:
    date = format_datetime(datetime.fromtimestamp(NOW + 12, UTC), usegmt=True)
    assert retry_after_seconds({"Retry-After": date}, clock) == 12.0


def test_x_ratelimit_reset_is_epoch_milliseconds() -> None:
    reset_ms = str(int((NOW + 4.25) * 1000))
    assert retry_after_seconds({"X-RateLimit-Reset": reset_ms}, clock) == 4.25


def test_reset_in_the_past_means_no_wait() -> None:
    assert retry_after_seconds({"X-RateLimit-Reset": str(int((NOW - 5) * 1000))}, clock) == 0.0


def test_x_ratelimit_reset_in_epoch_seconds_is_understood_too() -> None:
    assert retry_after_seconds({"X-RateLimit-Reset": str(int(NOW + 20))}, clock) == 20.0


def test_small_x_ratelimit_reset_is_seconds_from_now() -> None:
    assert retry_after_seconds({"X-RateLimit-Reset": "3"}, clock) == 3.0


def test_the_wait_before_a_retry_is_never_below_the_backoff() -> None:
    past = Outcome(Decision.RETRY, "rate_limited", "slow down", 429, retry_after=0.0)
    longer = Outcome(Decision.RETRY, "rate_limited", "slow down", 429, retry_after=5.0)
    assert retry_wait_seconds(past, 2, lambda: 1.0) == backoff_seconds(2, lambda: 1.0) > 0
    assert retry_wait_seconds(longer, 0, lambda: 1.0) == 5.0


def test_unexpected_exceptions_fall_back_and_transport_errors_retry() -> None:
    odd = classify(UnicodeEncodeError("ascii", "Café", 3, 4, "ordinal not in range(128)"))
    assert (odd.decision, odd.error_type) == (Decision.FALLBACK, "unexpected_error")
    cut = classify(httpx2.RemoteProtocolError("peer closed connection"))
    assert (cut.decision, cut.error_type) == (Decision.RETRY, "connection_error")
    stalled = classify(httpx2.ReadTimeout("timed out"))
    assert (stalled.decision, stalled.error_type) == (Decision.RETRY, "timeout")


@pytest.mark.parametrize("headers", [{}, {"Retry-After": "soon"}, {"X-RateLimit-Reset": "x"}])
def test_missing_or_garbled_wait_headers_give_none(headers: dict) -> None:
    assert retry_after_seconds(headers, clock) is None


def test_reset_echoed_in_the_body_metadata_is_honoured() -> None:
    reset_ms = str(int((NOW + 3) * 1000))
    body = {
        "code": 429,
        "message": "Rate limit exceeded",
        "metadata": {"headers": {"X-RateLimit-Reset": reset_ms}},
    }
    assert classify(ProviderBodyError(body), clock).retry_after == 3.0


def test_backoff_is_exponential_with_full_jitter() -> None:
    assert [backoff_seconds(n, lambda: 1.0) for n in range(3)] == [0.5, 1.0, 2.0]
    assert [backoff_seconds(n, lambda: 0.5) for n in range(3)] == [0.25, 0.5, 1.0]
    assert backoff_seconds(2, lambda: 0.0) == 0.0
    assert backoff_seconds(20, lambda: 1.0) == BACKOFF_MAX_SECONDS


def test_error_messages_never_carry_an_api_key() -> None:
    key = "sk-or-v1-" + "ab12" * 16
    outcome = classify(status_error(401, f"key {key} is invalid"), clock)
    assert key not in outcome.message
    assert "ab12ab12" not in outcome.message


def test_long_error_messages_are_truncated() -> None:
    outcome = classify(status_error(502, "x" * 5000), clock)
    assert len(outcome.message) <= 501
