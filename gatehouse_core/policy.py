"""Retry and fallback policy as data: what each upstream outcome means for the gateway loop.

`classify` turns an openai exception (or a 200 response carrying an `error`) into an
`Outcome`; `DECISIONS` maps the outcome to `retry`, `fallback` or `fail`; `decide` adds the
two rules that depend on the wait asked for (a Retry-After beyond the cap, a daily quota).
The loop in gateway.py only reads these.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum
from typing import Any

import httpx2
import openai

from .telemetry import scrub

MAX_RETRIES = 3  # per provider, after the first try
# Providers tried per call at most: 10,000 keyless providers must not make 10,000 audit rows.
MAX_PROVIDERS_PER_CALL = 10
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 8.0
ERROR_MESSAGE_CHARS = 500


class Decision(Enum):
    RETRY = "retry"  # same provider again after a wait
    FALLBACK = "fallback"  # next provider now
    FAIL = "fail"  # the request itself is bad: stop, raise InvalidRequest


# One place for each status's meaning: (decision, error_type recorded in the audit).
DECISIONS: dict[int, tuple[Decision, str]] = {
    400: (Decision.FAIL, "bad_request"),
    401: (Decision.FALLBACK, "authentication"),
    402: (Decision.FALLBACK, "payment_required"),
    403: (Decision.FALLBACK, "forbidden"),
    404: (Decision.FALLBACK, "not_found"),
    408: (Decision.RETRY, "timeout"),
    413: (Decision.FAIL, "payload_too_large"),
    422: (Decision.FAIL, "unprocessable"),
    429: (Decision.RETRY, "rate_limited"),
    500: (Decision.RETRY, "server_error"),
    502: (Decision.RETRY, "provider_unavailable"),
    503: (Decision.RETRY, "service_unavailable"),
    504: (Decision.RETRY, "gateway_timeout"),
    524: (Decision.RETRY, "edge_timeout"),
    529: (Decision.RETRY, "provider_overloaded"),
}
TIMEOUT = (Decision.RETRY, "timeout")
CONNECTION = (Decision.RETRY, "connection_error")
OTHER_4XX = (Decision.FALLBACK, "client_error")
OTHER_5XX = (Decision.RETRY, "server_error")
# Anything else raised during an attempt (a header value the HTTP stack refuses, a client
# factory that fails): this provider cannot be used as configured, the next one may be.
UNEXPECTED = (Decision.FALLBACK, "unexpected_error")
# X-RateLimit-Reset is an epoch time; OpenRouter sends milliseconds, others send seconds.
EPOCH_MS_FROM = 1e11  # later than 5138 AD in seconds, i.e. surely milliseconds
EPOCH_S_FROM = 1e9  # 2001 in seconds; smaller values are seconds from now

# What an operator should do about each failure; shown by the console and the CLI.
HINTS: dict[str, str] = {
    "authentication": "check the provider's API key (gatehouse providers set-key)",
    "payment_required": "add credits to the OpenRouter account or raise the key's limit",
    "forbidden": "the request was refused (moderation, guardrail or key permissions)",
    "not_found": "check the model id; `gatehouse models` lists known models",
    "rate_limited": "the provider is rate limiting; wait or lower the request rate",
    "daily_quota": "the daily free-model quota is used up; use a paid model or add credits",
    "timeout": "the provider did not answer in time; retry later or raise GATEHOUSE_REQUEST_TIMEOUT",
    "connection_error": "the provider could not be reached; check its base URL and the network",
    "unexpected_error": "the request could not be sent as configured; check the provider's "
    "headers, key and base URL (gatehouse providers show NAME)",
}


@dataclass(frozen=True)
class Outcome:
    """A classified failure of one attempt."""

    decision: Decision
    error_type: str
    message: str
    http_status: int | None = None
    retry_after: float | None = None  # seconds the provider asked us to wait

    @property
    def hint(self) -> str | None:
        return HINTS.get(self.error_type)


class ProviderBodyError(Exception):
    """An HTTP 200 whose body (or SSE event) carries an `error` instead of an answer."""

    def __init__(self, error: Mapping[str, Any]):
        self.error = dict(error)
        super().__init__(str(self.error.get("message", "provider returned an error")))


def classify(exc: BaseException, now: Callable[[], float] = time.time) -> Outcome:
    """The outcome of an exception raised by the openai SDK (or ProviderBodyError)."""
    if isinstance(exc, openai.APITimeoutError):
        return Outcome(*TIMEOUT, message="the provider did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return Outcome(*CONNECTION, message=f"connection failed: {_reason(exc)}")
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, Mapping) else {}
        return _from_status(exc.status_code, body, exc.response.headers, now)
    if isinstance(exc, ProviderBodyError):
        return _from_body_error(exc.error, now)
    if isinstance(exc, openai.APIError):  # an SSE error event while streaming
        body = exc.body if isinstance(exc.body, Mapping) else {"message": str(exc)}
        return _from_body_error(body, now)
    described = _clip(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, httpx2.TimeoutException):  # raised by a stream being read
        return Outcome(*TIMEOUT, message=f"the provider stopped answering: {described}")
    if isinstance(exc, httpx2.TransportError | httpx2.StreamError):  # a cut connection
        return Outcome(*CONNECTION, message=f"the connection broke: {described}")
    return Outcome(*UNEXPECTED, message=described)


def decide(outcome: Outcome, retry_after_cap: float) -> Decision:
    """The decision, moving on at once when the wait asked for is longer than the cap."""
    if outcome.error_type == "daily_quota":
        return Decision.FALLBACK
    if outcome.decision is Decision.RETRY and (outcome.retry_after or 0) > retry_after_cap:
        return Decision.FALLBACK
    return outcome.decision


def retry_wait_seconds(
    outcome: Outcome, retry_number: int, rand: Callable[[], float] = random.random
) -> float:
    """The wait before the next try: what the provider asked for, never less than the backoff
    (a reset time already past must not turn three retries into a burst)."""
    return max(outcome.retry_after or 0.0, backoff_seconds(retry_number, rand))


def backoff_seconds(retry_number: int, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(max, base * 2**n)]."""
    return rand() * min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**retry_number)


def _from_status(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str], now: Callable[[], float]
) -> Outcome:
    decision, error_type = DECISIONS.get(status) or (OTHER_5XX if status >= 500 else OTHER_4XX)
    message = _clip(str(body.get("message") or f"HTTP {status}"))
    if status == 429 and "per-day" in message:
        error_type = "daily_quota"
    meta_headers = (body.get("metadata") or {}).get("headers") or {}
    retry_after = retry_after_seconds(headers, now) or retry_after_seconds(meta_headers, now)
    return Outcome(decision, error_type, message, status, retry_after)


def _from_body_error(error: Mapping[str, Any], now: Callable[[], float]) -> Outcome:
    code = error.get("code")
    try:
        status = int(code)  # OpenRouter sends the HTTP-like integer (sometimes as a string)
    except (TypeError, ValueError):
        status = 502  # older docs: "server_error"; treat as the provider failing
    outcome = _from_status(status, error, {}, now)
    # The HTTP exchange itself succeeded; keep the body's code as the recorded status.
    return outcome


def retry_after_seconds(
    headers: Mapping[str, str], now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait from retry-after-ms, Retry-After (seconds or date) or X-RateLimit-Reset."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        if "retry-after-ms" in lower:
            return max(0.0, float(lower["retry-after-ms"]) / 1000)
        if "retry-after" in lower:
            value = lower["retry-after"].strip()
            try:
                return max(0.0, float(value))
            except ValueError:
                return max(0.0, parsedate_to_datetime(value).timestamp() - now())
        if "x-ratelimit-reset" in lower:
            return max(0.0, _reset_seconds(float(lower["x-ratelimit-reset"]), now))
    except (TypeError, ValueError, OverflowError):
        return None
    return None


def _reset_seconds(value: float, now: Callable[[], float]) -> float:
    """Seconds until an X-RateLimit-Reset: epoch ms, epoch seconds, or seconds from now."""
    if value >= EPOCH_MS_FROM:
        return value / 1000 - now()
    if value >= EPOCH_S_FROM:
        return value - now()
    return value


def _reason(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return _clip(str(cause) if cause else str(exc))


def _clip(text: str) -> str:
    text = scrub(" ".join(text.split()))
    return text if len(text) <= ERROR_MESSAGE_CHARS else text[:ERROR_MESSAGE_CHARS] + "…"
