"""Alert webhook delivery: a signed JSON POST, retried with bounded backoff.

The body is the alert's JSON (UTF-8, keys sorted); `X-GateHouse-Signature: sha256=<hex>` is the
HMAC-SHA256 of exactly those bytes under the shared secret, so a receiver recomputes it over the
raw body it read before parsing. Without a secret the header is left out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2

SIGNATURE_HEADER = "X-GateHouse-Signature"
# Waits before the 2nd, 3rd and 4th try: four tries within about 7 s, then the delivery fails.
BACKOFF_SECONDS = (1.0, 2.0, 4.0)
TIMEOUT_SECONDS = 5.0


def body_of(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def shown_url(url: str) -> str:
    """The URL without path, query or credentials: Slack-style webhook paths are secrets."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}" + ("/…" if parts.path.strip("/") or parts.query else "")


def check_url(url: str) -> str | None:
    """A problem with a webhook URL, or None."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"webhook URL {shown_url(url)!r} must start with https:// (or http://) and a host"
    return None


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST: `ok` is a 2xx answer."""

    attempt: int
    ok: bool
    http_status: int | None
    error: str | None


def deliver(
    url: str,
    payload: Mapping[str, Any],
    secret: str | None,
    *,
    client: httpx2.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
    backoff: tuple[float, ...] = BACKOFF_SECONDS,
) -> list[DeliveryAttempt]:
    """POST `payload` until a 2xx answer, retrying network errors, 429 and 5xx after `backoff`
    waits; another 4xx is final. Returns every attempt, the last one decisive."""
    body = body_of(payload)
    headers = {"Content-Type": "application/json", "User-Agent": "GateHouse-Alerts"}
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    own = client is None
    client = client or httpx2.Client(timeout=TIMEOUT_SECONDS)
    attempts: list[DeliveryAttempt] = []
    try:
        for number in range(1, len(backoff) + 2):
            result = _post_once(client, url, body, headers, number)
            attempts.append(result)
            retryable = result.http_status is None or result.http_status in (408, 429)
            retryable = retryable or (result.http_status or 0) >= 500
            if result.ok or not retryable or number > len(backoff):
                break
            sleep(backoff[number - 1])
    finally:
        if own:
            client.close()
    return attempts


def _post_once(
    client: httpx2.Client, url: str, body: bytes, headers: dict[str, str], number: int
) -> DeliveryAttempt:
    try:
        response = client.post(url, content=body, headers=headers)
    except httpx2.HTTPError as exc:
        return DeliveryAttempt(number, False, None, f"{type(exc).__name__} from {shown_url(url)}")
    ok = 200 <= response.status_code < 300
    error = None if ok else f"HTTP {response.status_code} from {shown_url(url)}"
    return DeliveryAttempt(number, ok, response.status_code, error)
