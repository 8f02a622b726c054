"""A fake OpenRouter upstream: a real HTTP server on loopback that speaks OpenRouter's wire format.

Why a real server: the gateway reaches OpenRouter through the ``openai`` SDK (``httpx2`` underneath),
and what we must get right -- retries, timeouts, SSE parsing, headers, connection reuse -- lives in
that stack. Faking at the HTTP layer exercises all of it, the way a real upstream would.

Typical use::

    with FakeOpenRouter() as fake:
        client = OpenAI(base_url=fake.base_url, api_key=DEFAULT_KEY, max_retries=0)
        fake.enqueue(Error.rate_limit(retry_after=1), Reply(text="ok"))
        ...
        assert fake.chat_requests[0].headers["x-title"] == "GateHouse"

Scripting: each chat request consumes one scripted outcome (``Reply``, ``Error``, ``Error200``,
``Slow``, ``Drop``, ``MidStreamError``, ``StreamCut``). Resolution order for a request to model ``m``
with key ``k``: the FIFO queue for key ``k``, then for model ``m``, then the global queue; then the
persistent rules set with ``always()`` for ``k``, ``m``, and globally; then ``fake.default_reply``.

Fallback routing: when the body carries ``models`` (OpenRouter's fallback list), the fake tries
``[model, *models]`` in order like OpenRouter does: an ``Error`` outcome (other than 401/402, which
are about the account, not the model) moves on to the next model; the last model's outcome is final.
Set ``fake.route_fallback_models = False`` to make the fake ignore ``models``.

Ledger (§9 of the wire-format notes): ``fake.bill(...)`` puts a generation on OpenRouter's ledger
(every completion the fake answers with a cost is billed too), and ``POST /analytics/query``,
``GET /analytics/meta`` and ``GET /activity`` aggregate it. They take only a key added with
``fake.add_management_key(key)`` (an inference key gets 403, anything else 401), and
``fake.fail_analytics(Error(408), ...)`` scripts their next answers.

Run as a process (for browser tests): ``python -m tests.fakes.openrouter --port 0 --port-file P``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import random
import re
import signal
import socket
import socketserver
import string
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

# --- Defaults and deterministic formulas -------------------------------------------------------

DEFAULT_KEY = "sk-or-v1-test-key-0000a1b2"
DEFAULT_REPLY_TEXT = "Hello from fake OpenRouter"
DEFAULT_MODEL = "openai/gpt-4o-mini"  # stands in for the account default when `model` is omitted
DEFAULT_PROVIDER = "FakeProvider"
FAKE_USER_ID = "user_fake"
PROMPT_PRICE_USD_PER_TOKEN = 1e-6
COMPLETION_PRICE_USD_PER_TOKEN = 2e-6

API_PREFIX = "/api/v1"
PUBLIC_ENDPOINTS = frozenset({"/models"})  # the only endpoint OpenRouter serves without a key
# Served to management keys only (§9.2, §9.3).
MANAGEMENT_ENDPOINTS = frozenset({"/analytics/query", "/analytics/meta", "/activity"})
ANALYTICS_METRICS = ("request_count", "total_usage")
ANALYTICS_DIMENSIONS = ("model", "generation_id")
GENERATION_RANGE = timedelta(days=31)  # per-generation dimensions: at most 31-day ranges
KEEPALIVE_COMMENT = b": OPENROUTER PROCESSING\n\n"
DONE_EVENT = b"data: [DONE]\n\n"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
MODELS_FIXTURE = FIXTURES / "openrouter_models_2025-12.json"

UsageChunkForm = Literal["empty_choices", "empty_delta"]
ModelsShape = Literal["2025", "2026"]

# Default `error.message` per status, from OpenRouter's spec and real traffic.
ERROR_MESSAGES: dict[int, str] = {
    400: "Invalid request parameters",
    401: "User not found.",
    402: "Insufficient credits. Add more using https://openrouter.ai/credits",
    403: "Your chosen model requires moderation and your input was flagged",
    404: "Resource not found",
    408: "Operation timed out. Please try again later.",
    413: "Request payload too large",
    422: "Invalid argument",
    429: "Rate limit exceeded",
    500: "Internal Server Error",
    502: "Provider returned error",
    503: "Service temporarily unavailable",
    524: "Request timed out. Please try again later.",
    529: "Provider returned error",
}
# Cloudflare statuses that http.server has no reason phrase for.
_REASON_PHRASES = {524: "A Timeout Occurred", 529: "Site Overloaded"}

# A word with its leading whitespace (and any trailing at the end), so the pieces rejoin exactly.
_WORD = re.compile(r"\s*\S+(?:\s+$)?")
_ALNUM = string.ascii_letters + string.digits


def count_prompt_tokens(body: Mapping[str, Any]) -> int:
    """Prompt tokens the fake reports: characters of all message text (and `prompt`) // 4, min 1."""
    prompt = body.get("prompt")
    chars = len(prompt) if isinstance(prompt, str) else 0
    for message in body.get("messages") or []:
        chars += len(_message_text(message))
    return max(1, chars // 4)


def count_completion_tokens(text: str) -> int:
    """Completion tokens the fake reports for a reply text: its number of words."""
    return len(text.split())


def fake_cost(prompt_tokens: int, completion_tokens: int) -> float:
    """Cost in USD the fake reports: 1e-6 per prompt token plus 2e-6 per completion token."""
    return round(
        prompt_tokens * PROMPT_PRICE_USD_PER_TOKEN
        + completion_tokens * COMPLETION_PRICE_USD_PER_TOKEN,
        12,
    )


def new_generation_id() -> str:
    """An id in OpenRouter's real format, `gen-<unix seconds>-<20 alphanumerics>`."""
    return f"gen-{int(time.time())}-{''.join(random.choices(_ALNUM, k=20))}"


def split_into_chunks(text: str, pieces: int | None) -> list[str]:
    """Split text into stream pieces that rejoin exactly: one per word, or `pieces` groups."""
    words = _WORD.findall(text) or ([text] if text else [])
    if pieces is None or pieces >= len(words):
        return words
    pieces = max(1, pieces)
    bounds = [round(i * len(words) / pieces) for i in range(pieces + 1)]
    return ["".join(words[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]


def _message_text(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def utc_now() -> datetime:
    return datetime.now(UTC)


def _time_range(value: Any) -> tuple[datetime, datetime]:
    """`time_range` of an analytics query (default: the last 7 days), as aware UTC instants."""
    if value is None:
        end = utc_now()
        return end - timedelta(days=7), end
    try:
        start = datetime.fromisoformat(str(value["start"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(value["end"]).replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError):
        raise ValueError("time_range: start and end must be ISO-8601 date-times") from None
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    if start >= end:
        raise ValueError("Invalid time range: start must be before end")
    return start.astimezone(UTC), end.astimezone(UTC)


def _epoch_ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def _next_utc_midnight() -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


# --- Scripted outcomes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A successful completion. Every number has a deterministic default, so tests can assert it.

    Token and cost fields left as None are computed: prompt tokens with `count_prompt_tokens`,
    completion tokens as the reply's word count plus `reasoning_tokens`, cost with `fake_cost`.
    If the request sets `max_tokens`/`max_completion_tokens` below the word count, the text is
    cut to that many words and `finish_reason` becomes "length", as a real model would do.
    """

    text: str = DEFAULT_REPLY_TEXT
    model_used: str | None = None  # None: the routed model, i.e. the request's `model`
    provider: str = DEFAULT_PROVIDER
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    omit_cost: bool = False  # drop cost, is_byok and cost_details (pre-2026 responses did)
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    usage: dict[str, Any] | None = None  # sent verbatim instead of the computed usage
    delay: float = 0.0  # seconds before answering (after the blank lines, if any)
    leading_newlines: int = 0  # OpenRouter's keep-alive form of a non-streamed body
    headers: Mapping[str, str] = field(default_factory=dict)
    stream_chunks: int | None = None  # content chunks when streamed; None: one per word
    chunk_delay: float = 0.0  # seconds between streamed content chunks
    keepalive_comments: bool = True  # ": OPENROUTER PROCESSING" before and between events
    # "empty_choices": the documented `choices: []`; "empty_delta": the real Jan-2026 capture.
    usage_chunk: UsageChunkForm = "empty_choices"
    omit_usage: bool = False  # no `usage` at all (body field, or the final usage chunk)
    # Trickle: for this many seconds before the answer, send a keep-alive every
    # `trickle_interval` (a newline in a JSON body, an SSE comment in a stream), as OpenRouter
    # does while a model is queued. Each byte resets an idle timeout; only a total deadline cuts it.
    trickle_seconds: float = 0.0
    trickle_interval: float = 0.05
    # Tool calls: each {"name", "arguments"} (arguments a JSON string); the answer's content is
    # `text` or null, `finish_reason` "tool_calls". Streamed as OpenAI does: one delta with the
    # call's id, type and name, then its arguments in two pieces.
    tool_calls: tuple[Mapping[str, str], ...] = ()
    refusal: str | None = None  # the model declines: content null, `refusal` this text


@dataclass(frozen=True)
class Error:
    """An HTTP error: status, OpenRouter's `{"error": {...}, "user_id": ...}` body and headers.

    Before the first chunk of a streamed request this is also what OpenRouter sends (pre-stream
    error). The classmethods build the real shapes documented for OpenRouter.
    """

    status: int
    message: str | None = None  # None: ERROR_MESSAGES[status]
    metadata: dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: dict[str, Any] | str | None = None  # sent verbatim instead of the envelope
    user_id: str | None = FAKE_USER_ID

    def payload(self) -> dict[str, Any] | str:
        """The response body: `body` if given, else OpenRouter's error envelope."""
        if self.body is not None:
            return self.body
        return _error_envelope(
            self.status, self.message or ERROR_MESSAGES.get(self.status, "Error"), self.metadata
        ) | ({"user_id": self.user_id} if self.user_id else {})

    @classmethod
    def rate_limit(
        cls,
        *,
        limit: int = 20,
        remaining: int = 0,
        reset: datetime | None = None,
        retry_after: float | None = None,
        retry_after_ms: float | None = None,
        message: str = ERROR_MESSAGES[429],
        provider_name: str | None = None,
    ) -> Error:
        """A platform 429: X-RateLimit-* headers (reset in epoch ms) echoed in metadata.headers."""
        reset = reset or datetime.now(UTC) + timedelta(minutes=1)
        limits = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": _epoch_ms(reset),
        }
        headers = dict(limits)
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        if retry_after_ms is not None:
            headers["retry-after-ms"] = f"{retry_after_ms:g}"
        metadata = {"headers": limits, "provider_name": provider_name}
        return cls(429, message, metadata=metadata, headers=headers)

    @classmethod
    def free_models_per_day(cls, *, limit: int = 50, reset: datetime | None = None) -> Error:
        """The daily free-model quota 429; it resets at the next UTC midnight, so retrying is futile."""
        return cls.rate_limit(
            limit=limit,
            reset=reset or _next_utc_midnight(),
            message="Rate limit exceeded: free-models-per-day. "
            "Add 10 credits to unlock 1000 free model requests per day",
        )

    @classmethod
    def insufficient_credits(
        cls, *, requested_tokens: int | None = None, affordable_tokens: int | None = None
    ) -> Error:
        """402; with token numbers, the real "requires more credits, or fewer max_tokens" form."""
        if requested_tokens is None or affordable_tokens is None:
            return cls(402)
        message = (
            "This request requires more credits, or fewer max_tokens. "
            f"You requested up to {requested_tokens} tokens, but can only afford "
            f"{affordable_tokens}. To increase, visit https://openrouter.ai/settings/keys "
            "and create a key with a higher limit"
        )
        return cls(402, message)

    @classmethod
    def unauthorized(cls, message: str = ERROR_MESSAGES[401]) -> Error:
        """401 as OpenRouter sends it for an unknown key (no user_id: there is no user)."""
        return cls(401, message, user_id=None)

    @classmethod
    def moderation(
        cls,
        *,
        reasons: tuple[str, ...] = ("harassment",),
        flagged_input: str = "...",
        provider_name: str = "OpenAI",
        model_slug: str = DEFAULT_MODEL,
    ) -> Error:
        """403 moderation block with the documented metadata."""
        metadata = {
            "reasons": list(reasons),
            "flagged_input": flagged_input,
            "provider_name": provider_name,
            "model_slug": model_slug,
        }
        return cls(403, metadata=metadata)

    @classmethod
    def invalid_model(cls, model: str = "acme/fake-1.0") -> Error:
        """400 for an unknown model slug."""
        return cls(400, f"{model} is not a valid model ID")

    @classmethod
    def provider_error(
        cls, status: int = 502, *, error_type: str = "provider_unavailable"
    ) -> Error:
        """A provider failure in the current typed form (`metadata.error_type`)."""
        return cls(status, metadata={"error_type": error_type})


@dataclass(frozen=True)
class Error200:
    """HTTP 200 whose body is a top-level `{"error": ...}` with no `choices` (seen in real traffic).

    Streamed, it is one SSE event carrying the same top-level error, then the stream ends.
    """

    code: int = 429
    message: str = "Provider returned error"
    metadata: dict[str, Any] | None = field(
        default_factory=lambda: {"raw": "error code: 1015", "provider_name": "Kluster"}
    )
    user_id: str | None = FAKE_USER_ID

    def payload(self) -> dict[str, Any]:
        body = _error_envelope(self.code, self.message, self.metadata)
        return body | ({"user_id": self.user_id} if self.user_id else {})


@dataclass(frozen=True)
class Slow:
    """Wait `seconds` (interruptible by `stop()`), then answer with `then` (default reply if None)."""

    seconds: float
    then: Outcome | None = None


@dataclass(frozen=True)
class Drop:
    """Close the connection without sending any response (a connection error for the client)."""


@dataclass(frozen=True)
class MidStreamError:
    """Generation fails after `after_chunks` content chunks, with HTTP status already 200.

    Streamed: one chunk with a top-level `error` and `finish_reason: "error"`, then the stream ends
    (no [DONE]). Not streamed: a 200 body whose choice carries `error` and the partial text.
    """

    after_chunks: int = 1
    code: int = 502
    message: str = ERROR_MESSAGES[502]
    metadata: dict[str, Any] | None = field(
        default_factory=lambda: {"error_type": "provider_unavailable"}
    )
    reply: Reply | None = None  # the reply being cut short; None: the default reply


@dataclass(frozen=True)
class StreamCut:
    """The connection dies after `after_chunks` content chunks: no finish chunk, no [DONE].

    Not streamed: the headers promise the full body, half of it arrives, then the socket closes.
    """

    after_chunks: int = 1
    reply: Reply | None = None


Outcome = Reply | Error | Error200 | Slow | Drop | MidStreamError | StreamCut


# --- Accounts and recorded requests -----------------------------------------------------------


@dataclass
class KeyAccount:
    """What `/key` reports for a key. Amounts are USD; `limit=None` means unlimited."""

    limit: float | None = None
    usage: float = 0.0
    limit_reset: str | None = None
    is_free_tier: bool = False
    is_management_key: bool = False


@dataclass(frozen=True)
class Billed:
    """One generation on OpenRouter's ledger, what the analytics endpoints add up.

    `model` is what the analytics API reports: the model's permaslug (e.g. a dated id)."""

    generation_id: str
    model: str
    cost: float
    at: datetime


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it, for tests to assert on what the client sent."""

    method: str
    path: str  # full path without the query, e.g. "/api/v1/chat/completions"
    query: dict[str, str]
    headers: dict[str, str]  # names lowercased; repeated headers joined with ", "
    body: Any  # parsed JSON, or None when empty or not JSON
    received_at: float  # time.monotonic(), so gaps between retries can be measured
    raw_body: bytes = b""

    @property
    def endpoint(self) -> str:
        """The path below /api/v1, e.g. "/chat/completions"."""
        return self.path.removeprefix(API_PREFIX)

    @property
    def api_key(self) -> str | None:
        """The bearer token, or None when there is no `Authorization: Bearer` header."""
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return (token.strip() or None) if scheme.lower() == "bearer" else None

    @property
    def retry_count(self) -> int | None:
        """The openai SDK's `x-stainless-retry-count` (0 for the first attempt), if sent."""
        value = self.headers.get("x-stainless-retry-count")
        return int(value) if value is not None and value.isdigit() else None


# --- Response bodies --------------------------------------------------------------------------


def _error_envelope(code: int, message: str, metadata: dict[str, Any] | None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if metadata is not None:
        error["metadata"] = metadata
    return {"error": error}


@dataclass(frozen=True)
class _Generation:
    """A completion as the fake decided it; every body for one request is built from this."""

    id: str
    created: int
    model: str
    provider: str
    text: str
    finish_reason: str
    usage: dict[str, Any]
    streamed: bool
    # What the request asked for and the reply scripted (see Reply.tool_calls/refusal);
    # `n` choices, choice i > 0 answering `text` + " (choice i)".
    n: int = 1
    logprobs: bool = False
    tool_calls: tuple[Mapping[str, str], ...] = ()
    refusal: str | None = None

    def choice_text(self, index: int) -> str:
        return self.text if index == 0 else f"{self.text} (choice {index})"

    def content(self, index: int) -> str | None:
        if self.refusal is not None or (self.tool_calls and not self.text):
            return None
        return self.choice_text(index)

    def tool_call_json(self, index: int) -> list[dict[str, Any]]:
        return [
            {
                "id": f"call_{self.id[-8:]}_{index}_{k}",
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
            for k, call in enumerate(self.tool_calls)
        ]


def _logprobs(text: str | None) -> dict[str, Any]:
    """OpenAI's logprobs object: one entry per word piece, each a fixed -0.25."""
    return {
        "content": [
            {"token": t, "logprob": -0.25, "bytes": list(t.encode()), "top_logprobs": []}
            for t in split_into_chunks(text or "", None)
        ],
        "refusal": None,
    }


def _generate(reply: Reply, request: Mapping[str, Any], model: str, text: str) -> _Generation:
    finish_reason = reply.finish_reason
    limit = request.get("max_completion_tokens") or request.get("max_tokens")
    if isinstance(limit, int) and limit < count_completion_tokens(text):
        text, finish_reason = "".join(_WORD.findall(text)[:limit]), "length"
    prompt = reply.prompt_tokens
    prompt = count_prompt_tokens(request) if prompt is None else prompt
    completion = reply.completion_tokens
    n = request.get("n") if isinstance(request.get("n"), int) and request["n"] > 1 else 1
    if completion is None:  # every choice, tool call arguments and refusal are generated
        generated = [text, *(f"{text} (choice {i})" for i in range(1, n))]
        generated += [c["arguments"] for c in reply.tool_calls] * n
        generated += [reply.refusal or ""] * n
        completion = sum(map(count_completion_tokens, generated)) + reply.reasoning_tokens
    cost = fake_cost(prompt, completion) if reply.cost is None else reply.cost
    usage = reply.usage if reply.usage is not None else _usage(reply, prompt, completion, cost)
    if reply.tool_calls and finish_reason == "stop":
        finish_reason = "tool_calls"
    return _Generation(
        id=new_generation_id(),
        created=int(time.time()),
        model=reply.model_used or model,
        provider=reply.provider,
        text=text,
        finish_reason=finish_reason,
        usage=usage,
        streamed=bool(request.get("stream")),
        n=n,
        logprobs=request.get("logprobs") is True,
        tool_calls=reply.tool_calls,
        refusal=reply.refusal,
    )


def _usage(reply: Reply, prompt: int, completion: int, cost: float) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if not reply.omit_cost:
        usage |= {"cost": cost, "is_byok": False}
    usage["prompt_tokens_details"] = {"cached_tokens": min(reply.cached_tokens, prompt)}
    if not reply.omit_cost:
        prompt_cost = round(prompt * PROMPT_PRICE_USD_PER_TOKEN, 12)
        usage["cost_details"] = {
            "upstream_inference_cost": None,  # only known for BYOK requests
            "upstream_inference_prompt_cost": prompt_cost,
            "upstream_inference_completions_cost": round(cost - prompt_cost, 12),
        }
    usage["completion_tokens_details"] = {"reasoning_tokens": reply.reasoning_tokens}
    return usage


def completion_body(gen: _Generation, choice_error: dict[str, Any] | None = None) -> dict:
    """The non-streamed `chat.completion` body, in OpenRouter's field order."""
    choices = []
    for index in range(gen.n):
        content = gen.content(index)
        message = {"role": "assistant", "content": content, "refusal": gen.refusal}
        message["reasoning"] = None
        if gen.tool_calls:
            message["tool_calls"] = gen.tool_call_json(index)
        choice: dict[str, Any] = {
            "logprobs": _logprobs(content) if gen.logprobs else None,
            "finish_reason": "error" if choice_error else gen.finish_reason,
            "native_finish_reason": "error" if choice_error else gen.finish_reason,
            "index": index,
            "message": message,
        }
        if choice_error:
            choice["error"] = choice_error
        choices.append(choice)
    return {
        "id": gen.id,
        "provider": gen.provider,
        "model": gen.model,
        "object": "chat.completion",
        "created": gen.created,
        "system_fingerprint": None,
        "choices": choices,
        "usage": gen.usage,
    }


def chunk_body(
    gen: _Generation,
    content: str | None,
    finish_reason: str | None = None,
    *,
    index: int = 0,
    delta: dict[str, Any] | None = None,
) -> dict:
    """One `chat.completion.chunk` with a single choice, as in the real captured stream
    (`delta` replaces the content delta: tool calls, refusal)."""
    logprobs = _logprobs(content) if gen.logprobs and content else None
    return {
        "id": gen.id,
        "provider": gen.provider,
        "model": gen.model,
        "object": "chat.completion.chunk",
        "created": gen.created,
        "choices": [
            {
                "index": index,
                "delta": {"role": "assistant", "content": content} if delta is None else delta,
                "finish_reason": finish_reason,
                "native_finish_reason": finish_reason,
                "logprobs": logprobs,
            }
        ],
        "system_fingerprint": "",
    }


def usage_chunk_body(gen: _Generation, form: UsageChunkForm) -> dict:
    """The final usage chunk: `choices: []` (documented) or an empty-delta choice (real capture)."""
    body = chunk_body(gen, "")
    if form == "empty_choices":
        body["choices"] = []
    return body | {"usage": gen.usage}


def models_payload(models: list[dict[str, Any]], shape: ModelsShape) -> dict[str, Any]:
    """The /models root: `{"data"}` (2025), or with `total_count`/`links` and sparse pricing (2026)."""
    if shape == "2025":
        return {"data": models}
    data = [
        model
        | {
            "pricing": {k: v for k, v in model["pricing"].items() if v != "0"},
            "supported_voices": None,
            "knowledge_cutoff": None,
            "expiration_date": None,
            "links": {"details": f"/api/v1/models/{model['canonical_slug']}/endpoints"},
        }
        for model in models
    ]
    return {"data": data, "total_count": len(data), "links": {"next": None}}


def _key_label(key: str) -> str:
    return f"{key[:12]}...{key[-3:]}"


def _to_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload, separators=(",", ":")).encode()


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + _to_bytes(payload) + b"\n\n"


# --- The server -------------------------------------------------------------------------------


class _Aborted(Exception):
    """The handler must drop the connection now (scripted cut, or the fake is stopping)."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for handlers stuck on idle keep-alive sockets
    request_queue_size = 128  # bursts of concurrent connects from benchmarks
    fake: FakeOpenRouter

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn), which can stall; skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


class _Handler(BaseHTTPRequestHandler):
    """Wire-level I/O for one connection; state and scripting decisions live in FakeOpenRouter."""

    protocol_version = "HTTP/1.1"  # keep-alive; every non-streamed response has Content-Length
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging; tests assert on `fake.requests` instead."""

    def handle(self) -> None:
        # The client may go away mid-exchange (e.g. after its own timeout); nothing left to answer.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            super().handle()

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._untrack(self.connection)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    # -- routing --

    def _dispatch(self) -> None:
        fake = self.server.fake
        try:
            request = self._read_request()
            fake._record(request)
            route = {
                ("POST", "/chat/completions"): self._chat,
                ("GET", "/models"): self._models,
                ("GET", "/key"): self._key,
                ("GET", "/auth/key"): self._key,
                ("GET", "/credits"): self._credits,
                ("GET", "/generation"): self._generation,
                ("POST", "/analytics/query"): self._analytics_query,
                ("GET", "/analytics/meta"): self._analytics_meta,
                ("GET", "/activity"): self._activity,
            }.get((request.method, request.endpoint.rstrip("/")))
            if route is None or not request.path.startswith(API_PREFIX):
                self._send_error(Error(404, "Not Found", user_id=None))
            elif request.endpoint.rstrip("/") in MANAGEMENT_ENDPOINTS:
                if self._management(request):
                    route(request)
            elif request.endpoint in PUBLIC_ENDPOINTS or self._authorized(request):
                route(request)
        except (_Aborted, BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _read_request(self) -> RecordedRequest:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        url = urlsplit(self.path)
        return RecordedRequest(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query)),
            headers=headers,
            body=body,
            received_at=time.monotonic(),
            raw_body=raw,
        )

    def _authorized(self, request: RecordedRequest) -> bool:
        if request.api_key is None:
            self._send_error(Error.unauthorized("No auth credentials found"))
            return False
        if not self.server.fake.is_valid_key(request.api_key):
            self._send_error(Error.unauthorized())
            return False
        return True

    def _management(self, request: RecordedRequest) -> bool:
        """Management-key endpoints: 401 without a known key, 403 for an inference key."""
        fake = self.server.fake
        key = request.api_key
        if key is None:
            self._send_error(Error(401, "Missing Authentication header", user_id=None))
            return False
        if key not in fake.management_keys:
            if fake.is_valid_key(key):
                self._send_error(Error(403, "Only management keys can perform this operation"))
            else:
                self._send_error(Error.unauthorized())
            return False
        scripted = fake._next_analytics_outcome()
        if scripted is not None:
            self._send_error(scripted)
            return False
        return True

    # -- endpoints --

    def _analytics_meta(self, request: RecordedRequest) -> None:
        data = {
            "metrics": [
                {"name": "request_count", "display_label": "Request Count"}
                | {"is_rate": False, "display_format": "number"},
                {"name": "total_usage", "display_label": "Total Usage"}
                | {"is_rate": False, "display_format": "currency"},
            ],
            "dimensions": [{"name": n, "display_label": n} for n in ANALYTICS_DIMENSIONS],
            "operators": [{"name": "eq", "value_type": "scalar"}],
            "granularities": [{"name": g, "display_label": g} for g in ("hour", "day")],
        }
        self._send_json(200, {"data": data})

    def _analytics_query(self, request: RecordedRequest) -> None:
        try:
            rows, truncated = self.server.fake.analytics_rows(request.body)
        except ValueError as exc:
            self._send_error(Error(400, str(exc), user_id=None))
            return
        metadata = {"query_time_ms": 1, "row_count": len(rows), "truncated": truncated}
        self._send_json(200, {"data": {"data": rows, "metadata": metadata}})

    def _activity(self, request: RecordedRequest) -> None:
        try:
            rows = self.server.fake.activity_rows(request.query.get("date"))
        except ValueError as exc:
            self._send_error(Error(400, str(exc), user_id=None))
            return
        self._send_json(200, {"data": rows})

    def _chat(self, request: RecordedRequest) -> None:
        body = request.body
        if not isinstance(body, dict):
            self._send_error(Error(400, "Invalid JSON body"))
            return
        outcome, model = self.server.fake._route(body, request.api_key or "")
        self._perform(outcome, body, model)

    def _models(self, request: RecordedRequest) -> None:
        fake = self.server.fake
        if fake.models_redirect_to is not None:
            self._send_head(302, {"Location": fake.models_redirect_to}, 0)
            return
        self._send_json(200, models_payload(fake.models, fake.models_shape))

    def _key(self, request: RecordedRequest) -> None:
        key = request.api_key or ""
        fake = self.server.fake
        if fake.key_body is not None:  # any JSON value, to test unexpected /key shapes
            self._send_json(200, fake.key_body)
            return
        self._send_json(200, fake.key_payload(key))

    def _credits(self, request: RecordedRequest) -> None:
        fake = self.server.fake
        is_management = fake.account(request.api_key or "").is_management_key
        if fake.credits_require_management_key and not is_management:
            self._send_error(Error(403, "Only management keys can perform this operation"))
            return
        data = {"total_credits": fake.total_credits, "total_usage": fake.total_usage}
        self._send_json(200, {"data": data})

    def _generation(self, request: RecordedRequest) -> None:
        stats = self.server.fake.generation_stats(request.query.get("id", ""))
        if stats is None:
            self._send_error(Error(404, "Generation not found", user_id=None))
        else:
            self._send_json(200, {"data": stats})

    # -- performing a scripted outcome --

    def _perform(self, outcome: Outcome, request: dict[str, Any], model: str) -> None:
        fake = self.server.fake
        streamed = bool(request.get("stream"))
        match outcome:
            case Slow(seconds=seconds, then=then):
                self._pause(seconds)
                self._perform(then or fake.default_reply, request, model)
            case Drop():
                raise _Aborted
            case Error():
                self._send_error(outcome)
            case Error200():
                if streamed:
                    self._start_sse("")
                    self._write_chunk(_sse(outcome.payload()))
                    self._end_chunks()
                else:
                    self._send_json(200, outcome.payload())
            case Reply():
                gen = _generate(outcome, request, model, outcome.text)
                # on the ledger before the answer leaves: a client that reads the ledger right
                # after its call returns must find it (it raced the server thread in CI)
                fake._remember(gen, request)
                if streamed:
                    self._stream(gen, outcome)
                else:
                    self._reply_json(gen, outcome)
            case MidStreamError() | StreamCut():
                reply = outcome.reply or fake.default_reply
                self._perform_fault(outcome, reply, request, model, streamed)

    def _perform_fault(
        self,
        fault: MidStreamError | StreamCut,
        reply: Reply,
        request: dict[str, Any],
        model: str,
        streamed: bool,
    ) -> None:
        if streamed:
            self._stream(_generate(reply, request, model, reply.text), reply, fault)
            return
        if isinstance(fault, StreamCut):
            body = _to_bytes(completion_body(_generate(reply, request, model, reply.text)))
            self._send_head(200, {"Content-Type": "application/json"}, len(body))
            self.wfile.write(body[: len(body) // 2])
            raise _Aborted
        partial = "".join(split_into_chunks(reply.text, reply.stream_chunks)[: fault.after_chunks])
        gen = _generate(reply, request, model, partial)
        choice_error = _error_envelope(fault.code, fault.message, fault.metadata)["error"]
        self._send_json(200, completion_body(gen, choice_error), {"X-Generation-Id": gen.id})

    def _reply_json(self, gen: _Generation, reply: Reply) -> None:
        headers = {"X-Generation-Id": gen.id, **reply.headers}
        payload = completion_body(gen)
        if reply.omit_usage:
            payload.pop("usage")
        body = _to_bytes(payload)
        if reply.trickle_seconds > 0:
            self._trickle_json(body, headers, reply)
            return
        if not reply.leading_newlines:
            self._pause(reply.delay)
            self._send_json(200, body, headers)
            return
        # OpenRouter's keep-alive: headers and blank lines first, the JSON when the model is done.
        newlines = b"\n" * reply.leading_newlines
        self._send_head(
            200, {"Content-Type": "application/json", **headers}, len(newlines) + len(body)
        )
        self.wfile.write(newlines)
        self._pause(reply.delay)
        self.wfile.write(body)

    def _trickle_json(self, body: bytes, headers: Mapping[str, str], reply: Reply) -> None:
        beats = max(1, round(reply.trickle_seconds / reply.trickle_interval))
        self._send_head(200, {"Content-Type": "application/json", **headers}, beats + len(body))
        for _ in range(beats):
            self.wfile.write(b"\n")
            self.wfile.flush()
            self._pause(reply.trickle_interval)
        self.wfile.write(body)

    def _stream(
        self, gen: _Generation, reply: Reply, fault: MidStreamError | StreamCut | None = None
    ) -> None:
        self._pause(reply.delay)
        self._start_sse(gen.id, reply.headers)
        if reply.trickle_seconds > 0:
            for _ in range(max(1, round(reply.trickle_seconds / reply.trickle_interval))):
                self._write_chunk(KEEPALIVE_COMMENT)
                self.wfile.flush()
                self._pause(reply.trickle_interval)
        if reply.keepalive_comments:
            self._write_chunk(KEEPALIVE_COMMENT)
        self._write_chunk(_sse(chunk_body(gen, "")))
        pieces = split_into_chunks(gen.text, reply.stream_chunks)
        if gen.content(0) is None:
            pieces = []  # tool calls or a refusal only
        for index, piece in enumerate(pieces):
            if fault is not None and index >= fault.after_chunks:
                break
            if index:
                self._pause(reply.chunk_delay)
            self._write_chunk(_sse(chunk_body(gen, piece)))
            for choice in range(1, gen.n):  # the other choices' pieces, interleaved
                others = split_into_chunks(gen.choice_text(choice), reply.stream_chunks)
                tail = "".join(others[index + 1 :]) if index == len(pieces) - 1 else ""
                if index < len(others):
                    self._write_chunk(_sse(chunk_body(gen, others[index] + tail, index=choice)))
            if index == 0 and reply.keepalive_comments:
                self._write_chunk(KEEPALIVE_COMMENT)
        for event in self._extra_deltas(gen):
            self._write_chunk(_sse(event))
        if isinstance(fault, StreamCut):
            raise _Aborted
        if isinstance(fault, MidStreamError):
            error = _error_envelope(fault.code, fault.message, fault.metadata)
            event = chunk_body(gen, "", "error") | error
            event["choices"][0]["delta"] = {"content": ""}
            self._write_chunk(_sse(event))
        else:
            for choice in range(gen.n):
                self._write_chunk(_sse(chunk_body(gen, "", gen.finish_reason, index=choice)))
            if not reply.omit_usage:
                self._write_chunk(_sse(usage_chunk_body(gen, reply.usage_chunk)))
            self._write_chunk(DONE_EVENT)
        self._end_chunks()

    @staticmethod
    def _extra_deltas(gen: _Generation) -> list[dict[str, Any]]:
        """Refusal and tool-call deltas of every choice, in OpenAI's streamed form."""
        events = []
        for choice in range(gen.n):
            if gen.refusal is not None:
                for piece in split_into_chunks(gen.refusal, None):
                    events.append(chunk_body(gen, None, index=choice, delta={"refusal": piece}))
            for k, call in enumerate(gen.tool_call_json(choice)):
                head = {**call, "index": k, "function": {**call["function"], "arguments": ""}}
                events.append(chunk_body(gen, None, index=choice, delta={"tool_calls": [head]}))
                arguments = call["function"]["arguments"]
                for part in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                    piece = {"index": k, "function": {"arguments": part}}
                    events.append(
                        chunk_body(gen, None, index=choice, delta={"tool_calls": [piece]})
                    )
        return events

    # -- wire helpers --

    def _pause(self, seconds: float) -> None:
        if seconds > 0 and self.server.fake._stopping.wait(seconds):
            raise _Aborted

    def _send_head(self, status: int, headers: Mapping[str, str], length: int | None) -> None:
        self.send_response(status, _REASON_PHRASES.get(status))
        for name, value in headers.items():
            self.send_header(name, value)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send_json(
        self, status: int, payload: Any, headers: Mapping[str, str] | None = None
    ) -> None:
        body = _to_bytes(payload)
        self._send_head(status, {"Content-Type": "application/json", **(headers or {})}, len(body))
        self.wfile.write(body)

    def _send_error(self, error: Error) -> None:
        self._send_json(error.status, error.payload(), error.headers)

    def _start_sse(self, generation_id: str, headers: Mapping[str, str] | None = None) -> None:
        # Chunked, so the connection stays reusable and a cut stream is visible to the client.
        sse_headers = {
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "Transfer-Encoding": "chunked",
        }
        if generation_id:
            sse_headers["X-Generation-Id"] = generation_id
        self._send_head(200, sse_headers | dict(headers or {}), None)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _end_chunks(self) -> None:
        self.wfile.write(b"0\r\n\r\n")


class FakeOpenRouter:
    """A fake OpenRouter on 127.0.0.1: start it, point the SDK at `base_url`, script, assert.

    Attributes tests may set directly:
      valid_keys: keys accepted as `Authorization: Bearer` (default {DEFAULT_KEY}).
      accept_any_key: accept every non-empty key.
      default_reply: the Reply given when nothing is scripted.
      route_fallback_models: honour the body's `models` fallback list (see module docstring).
      validate_models: answer 400 "<id> is not a valid model ID" for ids not in `models`.
      models: the model list served by /models (the 2025-12 fixture); models_shape "2025"|"2026".
      accounts / default_account: what /key reports per key; total_credits / total_usage: /credits.
      credits_require_management_key: /credits answers 403 unless the key's account is management.
      generation_ready_after: seconds /generation answers 404 for a new id (eventual consistency).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        valid_keys: set[str] | None = None,
        accept_any_key: bool = False,
        models_shape: ModelsShape = "2025",
    ) -> None:
        self.host, self.port = host, port
        self.valid_keys: set[str] = {DEFAULT_KEY} if valid_keys is None else set(valid_keys)
        self.accept_any_key = accept_any_key
        self.default_reply = Reply()
        self.route_fallback_models = True
        # Test hooks: `/key` answers exactly this JSON value when set; `/models` answers a
        # 302 to this URL when set (GateHouse must not follow it).
        self.key_body: Any = None
        self.models_redirect_to: str | None = None
        self.validate_models = False
        self.models: list[dict[str, Any]] = json.loads(MODELS_FIXTURE.read_bytes())["data"]
        self.models_shape: ModelsShape = models_shape
        self.accounts: dict[str, KeyAccount] = {}
        self.default_account = KeyAccount()
        self.total_credits = 100.0
        self.total_usage = 0.0
        self.credits_require_management_key = False
        # /generation answers 404 this long for a new id; the real lag is about 0.5-1 s.
        self.generation_ready_after = 0.0
        # The ledger the analytics endpoints aggregate, and who may read it.
        self.ledger: list[Billed] = []
        self.management_keys: set[str] = set()
        self._analytics_outcomes: collections.deque[Error] = collections.deque()
        self._lock = threading.Lock()
        self._recorded = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._queues: dict[tuple[str, str | None], collections.deque[Outcome]] = {}
        self._rules: dict[tuple[str, str | None], Outcome] = {}
        self._generations: dict[str, tuple[float, dict[str, Any]]] = {}
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> FakeOpenRouter:
        """Bind a port (free one if `port=0`) and serve in a daemon thread."""
        self._stopping.clear()
        self._server = _Server((self.host, self.port), _Handler)
        self._server.fake = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},  # how long stop() waits for the accept loop
            name=f"fake-openrouter-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop promptly: wake sleeping handlers, stop accepting, and cut open connections."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeOpenRouter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The OpenAI-SDK base URL, `http://127.0.0.1:<port>/api/v1`."""
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    def reset(self) -> None:
        """Forget recorded requests, scripts and generations (for a fake shared across tests)."""
        with self._lock:
            self._requests.clear()
            self._queues.clear()
            self._rules.clear()
            self._generations.clear()
            self.ledger.clear()
            self._analytics_outcomes.clear()
        self.default_reply = Reply()

    # -- scripting --

    def enqueue(self, *outcomes: Outcome, model: str | None = None, key: str | None = None) -> None:
        """Queue outcomes, consumed one per chat request, for one model, one key, or any request."""
        with self._lock:
            self._queues.setdefault(self._selector(model, key), collections.deque()).extend(
                outcomes
            )

    def always(self, outcome: Outcome, *, model: str | None = None, key: str | None = None) -> None:
        """Answer every otherwise unscripted request for this model/key (or all) with `outcome`."""
        with self._lock:
            self._rules[self._selector(model, key)] = outcome

    @property
    def pending(self) -> int:
        """Scripted outcomes not yet consumed, across all queues."""
        with self._lock:
            return sum(len(queue) for queue in self._queues.values())

    @staticmethod
    def _selector(model: str | None, key: str | None) -> tuple[str, str | None]:
        if model is not None and key is not None:
            raise ValueError("script by model or by key, not both")
        if key is not None:
            return ("key", key)
        return ("model", model) if model is not None else ("any", None)

    def _take(self, model: str, key: str) -> Outcome:
        selectors = [("key", key), ("model", model), ("any", None)]
        with self._lock:
            for selector in selectors:
                queue = self._queues.get(selector)
                if queue:
                    return queue.popleft()
            for selector in selectors:
                if selector in self._rules:
                    return self._rules[selector]
        return self.default_reply

    def _route(self, body: Mapping[str, Any], key: str) -> tuple[Outcome, str]:
        """Pick the outcome and the model that answers, trying fallbacks like OpenRouter."""
        candidates = [body.get("model") or DEFAULT_MODEL]
        fallbacks = body.get("models")
        if self.route_fallback_models and isinstance(fallbacks, list):
            candidates += [m for m in fallbacks if isinstance(m, str) and m not in candidates]
        known = {model["id"] for model in self.models} if self.validate_models else None
        for index, model in enumerate(candidates):
            if known is not None and model not in known:
                outcome: Outcome = Error.invalid_model(model)
            else:
                outcome = self._take(model, key)
            last = index == len(candidates) - 1
            if last or not isinstance(outcome, Error) or outcome.status in (401, 402):
                return outcome, model
        raise AssertionError("unreachable: the last candidate always returns")

    # -- keys and accounts --

    def is_valid_key(self, key: str) -> bool:
        """Whether the fake accepts this bearer token."""
        return bool(key) and (self.accept_any_key or key in self.valid_keys)

    def add_key(self, key: str, **account: Any) -> KeyAccount:
        """Accept `key` and set what /key reports for it (fields of KeyAccount)."""
        self.valid_keys.add(key)
        self.accounts[key] = KeyAccount(**account)
        return self.accounts[key]

    def account(self, key: str) -> KeyAccount:
        """The account for a key, or `default_account` when none was added."""
        return self.accounts.get(key, self.default_account)

    def key_payload(self, key: str) -> dict[str, Any]:
        """The current /key body for `key`."""
        acct = self.account(key)
        remaining = None if acct.limit is None else round(acct.limit - acct.usage, 10)
        data = {
            "label": _key_label(key),
            "limit": acct.limit,
            "limit_reset": acct.limit_reset,
            "limit_remaining": remaining,
            "include_byok_in_limit": False,
            "usage": acct.usage,
            "usage_daily": acct.usage,
            "usage_weekly": acct.usage,
            "usage_monthly": acct.usage,
            "byok_usage": 0,
            "byok_usage_daily": 0,
            "byok_usage_weekly": 0,
            "byok_usage_monthly": 0,
            "is_free_tier": acct.is_free_tier,
            "is_management_key": acct.is_management_key,
            "is_provisioning_key": False,
            "creator_user_id": FAKE_USER_ID,
            "expires_at": None,
            "rate_limit": {
                "requests": -1,
                "interval": "10s",
                "note": "This field is deprecated and safe to ignore.",
            },
        }
        return {"data": data}

    # -- the ledger (analytics, activity) --

    def add_management_key(self, key: str) -> None:
        """Accept `key` on the management endpoints (and only there, like OpenRouter)."""
        self.management_keys.add(key)

    def bill(self, generation_id: str, model: str, cost: float, at: datetime) -> Billed:
        """Put one generation on the ledger."""
        entry = Billed(generation_id, model, cost, at.astimezone(UTC))
        with self._lock:
            self.ledger.append(entry)
        return entry

    def fail_analytics(self, *errors: Error) -> None:
        """Answer the next management-endpoint requests with these errors, one each."""
        with self._lock:
            self._analytics_outcomes.extend(errors)

    def _next_analytics_outcome(self) -> Error | None:
        with self._lock:
            return self._analytics_outcomes.popleft() if self._analytics_outcomes else None

    def analytics_rows(self, body: Any) -> tuple[list[dict[str, Any]], bool]:
        """The rows of `POST /analytics/query` for `body`; ValueError → 400 with its text."""
        if not isinstance(body, dict):
            raise ValueError("Invalid request parameters")
        metrics = body.get("metrics")
        if not isinstance(metrics, list) or not metrics:
            raise ValueError("metrics: Too small: expected array to have >=1 items")
        if unknown := [m for m in metrics if m not in ANALYTICS_METRICS]:
            raise ValueError(f"Unknown metric: {unknown[0]}")
        dimensions = body.get("dimensions") or []
        if len(dimensions) > 2:
            raise ValueError("dimensions: Too big: expected array to have <=2 items")
        if unknown := [d for d in dimensions if d not in ANALYTICS_DIMENSIONS]:
            raise ValueError(f"Unknown dimension: {unknown[0]}")
        granularity = body.get("granularity")
        if granularity not in (None, "hour", "day"):
            raise ValueError(f"Unknown granularity: {granularity}")
        start, end = _time_range(body.get("time_range"))
        if "generation_id" in dimensions and end - start > GENERATION_RANGE:
            raise ValueError("generation_id is limited to 31-day time ranges")
        limit = int(body.get("limit") or 1000)
        groups: dict[tuple, dict[str, Any]] = {}
        with self._lock:
            entries = [e for e in self.ledger if start <= e.at < end]
        for entry in entries:
            row: dict[str, Any] = {d: getattr(entry, d) for d in dimensions}
            if granularity == "day":
                row["date__day"] = entry.at.date().isoformat()
            elif granularity == "hour":
                hour = entry.at.replace(minute=0, second=0, microsecond=0)
                row["date__hour"] = hour.isoformat().replace("+00:00", ".000Z")
            acc = groups.setdefault(tuple(sorted(row.items())), {**row, "n": 0, "usd": 0.0})
            acc["n"] += 1
            acc["usd"] += entry.cost
        rows = []
        for acc in groups.values():
            count, usd = acc.pop("n"), acc.pop("usd")
            if "request_count" in metrics:
                acc["request_count"] = str(count)  # counts come back as strings (§9.2)
            if "total_usage" in metrics:
                acc["total_usage"] = round(usd, 10)
            rows.append(acc)
        time_key = next((k for k in ("date__day", "date__hour") if rows and k in rows[0]), None)
        if time_key:
            rows.sort(key=lambda r: r[time_key], reverse=True)  # time-descending by default
        return rows[:limit], len(rows) > limit

    def activity_rows(self, day: str | None) -> list[dict[str, Any]]:
        """`GET /activity` rows per UTC date × model for the last 30 completed UTC days."""
        today = datetime.now(UTC).date()
        if day is not None:
            try:
                wanted = datetime.strptime(day, "%Y-%m-%d").date()
            except ValueError:
                raise ValueError("Invalid date format, expected YYYY-MM-DD") from None
            if not (today - timedelta(days=30) <= wanted < today):
                raise ValueError("Date must be within the last 30 (completed) UTC days")
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        with self._lock:
            entries = list(self.ledger)
        for entry in entries:
            date = entry.at.date()
            if (day is not None and date.isoformat() != day) or date >= today:
                continue
            row = groups.setdefault(
                (date.isoformat(), entry.model),
                {
                    "date": date.isoformat(),
                    "model": entry.model,
                    "model_permaslug": entry.model,
                    "endpoint_id": "00000000-0000-0000-0000-000000000000",
                    "provider_name": DEFAULT_PROVIDER,
                    "usage": 0.0,
                    "byok_usage_inference": 0,
                    "requests": 0,
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "reasoning_tokens": 0,
                },
            )
            row["usage"] = round(row["usage"] + entry.cost, 10)
            row["requests"] += 1
        return list(groups.values())

    # -- generations --

    def _remember(self, gen: _Generation, request: Mapping[str, Any]) -> None:
        stats = {
            "id": gen.id,
            "upstream_id": f"chatcmpl-{gen.id[-20:]}",
            "total_cost": gen.usage.get("cost", 0),
            "cache_discount": None,
            "upstream_inference_cost": None,
            "usage": gen.usage.get("cost", 0),
            "created_at": datetime.fromtimestamp(gen.created, UTC).isoformat(),
            "model": gen.model,
            "streamed": gen.streamed,
            "cancelled": False,
            "provider_name": gen.provider,
            "latency": 0,
            "generation_time": 0,
            "finish_reason": gen.finish_reason,
            "native_finish_reason": gen.finish_reason,
            "tokens_prompt": gen.usage.get("prompt_tokens"),
            "tokens_completion": gen.usage.get("completion_tokens"),
            "native_tokens_prompt": gen.usage.get("prompt_tokens"),
            "native_tokens_completion": gen.usage.get("completion_tokens"),
            "native_tokens_reasoning": gen.usage.get("completion_tokens_details", {}).get(
                "reasoning_tokens", 0
            ),
            "native_tokens_cached": gen.usage.get("prompt_tokens_details", {}).get(
                "cached_tokens", 0
            ),
            "is_byok": False,
            "api_type": "completions",
        }
        with self._lock:
            self._generations[gen.id] = (time.monotonic(), stats)
            if isinstance(stats["total_cost"], int | float) and stats["total_cost"] > 0:
                self.ledger.append(Billed(gen.id, gen.model, stats["total_cost"], utc_now()))

    def generation_stats(self, generation_id: str) -> dict[str, Any] | None:
        """/generation data for an id, or None if unknown or not "ready" yet."""
        with self._lock:
            entry = self._generations.get(generation_id)
        if entry is None or time.monotonic() - entry[0] < self.generation_ready_after:
            return None
        return entry[1]

    # -- recorded requests --

    def _record(self, request: RecordedRequest) -> None:
        with self._recorded:
            self._requests.append(request)
            self._recorded.notify_all()

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The POST /chat/completions requests received."""
        return [r for r in self.requests if r.endpoint == "/chat/completions"]

    @property
    def chat_count(self) -> int:
        """How many chat requests were received (including rejected and retried ones)."""
        return len(self.chat_requests)

    @property
    def retry_counts(self) -> list[int | None]:
        """`x-stainless-retry-count` of each chat request, e.g. [0, 1, 2] for two SDK retries."""
        return [r.retry_count for r in self.chat_requests]

    def wait_for_chat_count(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least `count` chat requests arrived; False on timeout."""
        with self._recorded:
            return self._recorded.wait_for(
                lambda: sum(r.endpoint == "/chat/completions" for r in self._requests) >= count,
                timeout,
            )

    # -- connection tracking, so stop() can cut idle keep-alive sockets --

    def _track(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _untrack(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)


# --- Running as a process ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Serve the default behaviour until killed (SIGTERM or Ctrl-C)."""
    parser = argparse.ArgumentParser(description="Fake OpenRouter upstream for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the chosen port here")
    parser.add_argument("--accept-any-key", action="store_true")
    parser.add_argument("--models-shape", choices=["2025", "2026"], default="2025")
    args = parser.parse_args(argv)

    fake = FakeOpenRouter(
        host=args.host,
        port=args.port,
        accept_any_key=args.accept_any_key,
        models_shape=args.models_shape,
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops it like Ctrl-C
    with fake:
        if args.port_file:
            # Write then rename, so a poller never reads a half-written port.
            partial = args.port_file.with_name(args.port_file.name + ".tmp")
            partial.write_text(str(fake.port))
            partial.replace(args.port_file)
        print(f"fake OpenRouter serving at {fake.base_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    sys.exit(main())
