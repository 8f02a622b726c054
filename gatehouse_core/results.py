"""What a gateway call returns: `ChatResult` and one `Attempt` per upstream try."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

ATTEMPT_STATUSES = ("ok", "error", "incomplete", "rejected")
# "reconciled" is only ever set later, on stored rows, by spend/reconcile.py (OpenRouter's bill).
COST_SOURCES = ("provider", "estimated", "unknown", "reconciled")


@dataclass(frozen=True)
class Attempt:
    """One try against one provider. `wait_ms` is time spent queued for a rate-limit slot
    plus any backoff before this try; `ttft_ms` is this try's time to its first streamed token
    (from the request being sent), while `ChatResult.ttft_ms` counts from the caller's start."""

    provider: str
    model: str
    status: str
    http_status: int | None = None
    error_type: str | None = None
    latency_ms: float = 0.0
    wait_ms: float = 0.0
    error_message: str | None = None
    ttft_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ChatResult:
    """The answer and its accounting. `model` is the model actually used (after routing).

    `latency_ms` and `ttft_ms` are measured from the start of the call, so queueing, backoff
    and failed attempts are included; each attempt's own figures are in `attempts`."""

    text: str
    provider: str
    model: str
    request_id: str
    generation_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: float | None = None
    cost_source: str = "unknown"
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    finish_reason: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    # The upstream's whole answer as parsed JSON (every choice, tool_calls, logprobs, refusal,
    # reasoning, usage with cost, OpenRouter's extras); None for a stream (see ChatStream.chunks).
    response: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The documented shape of `gatehouse chat --json` (without `response`)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.pop("response")
        data["attempts"] = [a.to_json() for a in self.attempts]
        return data
