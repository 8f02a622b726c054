"""Streamed answers: the caller's `ChatStream` and what a stream has delivered so far.

The gateway's attempt loop is a generator; `ChatStream` is the caller's handle on it. Closing
the stream (or dropping it: `weakref.finalize`) closes the generator, which lets the gateway free
the rate-limit slot at once and read the rest of the upstream answer in the background.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from .policy import ProviderBodyError
from .results import ChatResult

log = logging.getLogger("gatehouse.gateway")


@dataclass(frozen=True)
class Piece:
    """One upstream chunk as the gateway hands it on: its answer text ("" for a chunk without
    any: role, tool-call, refusal, finish and usage chunks), the SDK's chunk, the provider."""

    text: str
    chunk: Any  # openai's ChatCompletionChunk
    provider: str


class ChatStream(Iterator[str]):
    """Text deltas of a streamed answer; `.result` holds the ChatResult once exhausted.

    `chunks()` iterates the same stream as the upstream's chunks instead (each one as the parsed
    JSON dict, in order, including tool-call, refusal, logprobs, `n > 1` and usage chunks); use
    one way of reading per stream. `request_id` is known at once, `provider` once the first
    chunk has arrived (fallback and retries happen before it).

    Stop early with `close()` (or a `with` block): the rate-limit slot is freed at once, and
    the rest of the upstream answer is read in the background so the audit row records the
    tokens and cost the provider bills. A stream dropped without `close()` does the same when
    it is garbage collected."""

    def __init__(self, gen: Generator[Piece, None, ChatResult], request_id: str = ""):
        self._gen = gen
        self.request_id = request_id
        self.provider: str | None = None
        self.result: ChatResult | None = None
        # Holds the generator, not the stream, so dropping the stream runs it.
        self._closer = weakref.finalize(self, _close_generator, gen)

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> str:
        while True:
            text = self._next_piece().text
            if text:
                return text

    def chunks(self) -> Iterator[dict[str, Any]]:
        """Every upstream chunk as a dict (the JSON the upstream sent), in order."""
        while True:
            try:
                piece = self._next_piece()
            except StopIteration:
                return
            yield piece.chunk.to_dict()

    def _next_piece(self) -> Piece:
        try:
            piece = next(self._gen)
        except StopIteration as stop:
            if stop.value is not None:  # a second pass must not forget the result
                self.result = stop.value
            raise
        self.provider = piece.provider
        return piece

    def close(self) -> None:
        self._closer()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_generator(gen: Generator[Piece, None, ChatResult]) -> None:
    try:
        gen.close()
    except Exception:  # at garbage collection nobody could catch it
        log.exception("closing an abandoned stream failed")


# OpenRouter's delta fields beyond OpenAI's that carry part of the answer.
_DELTA_EXTRAS = ("reasoning", "reasoning_details", "audio", "images", "annotations")


@dataclass
class StreamState:
    """What a stream has delivered so far. `parts` is the first choice's text; `received_chars`
    counts every generated character (all choices, tool-call arguments, refusal, reasoning),
    which estimates the output tokens of a stream cut before its usage chunk."""

    parts: list[str] = field(default_factory=list)
    usage: Any = None
    response_model: str | None = None
    generation_id: str | None = None
    finish_reason: str | None = None
    first_token_at: float | None = None
    received_chars: int = 0
    delivered: bool = False  # a chunk reached the caller: no fallback any more

    def absorb(self, chunk: Any) -> tuple[str, bool]:
        """Take in one chunk: (its first-choice text, whether it carries part of the answer)."""
        error = (chunk.model_extra or {}).get("error")
        if error:
            raise ProviderBodyError(error)
        self.generation_id = self.generation_id or chunk.id
        self.response_model = chunk.model or self.response_model
        self.usage = chunk.usage or self.usage
        text, substantive = "", False
        for choice in chunk.choices:  # the usage chunk may carry [] or an empty delta
            self.finish_reason = choice.finish_reason or self.finish_reason
            if choice.logprobs:
                substantive = True
            delta = choice.delta
            if delta is None:
                continue
            chars = _generated_chars(delta)
            self.received_chars += chars
            substantive = substantive or chars > 0
            if delta.content and choice.index == 0:
                self.parts.append(delta.content)
                text += delta.content
        return text, substantive


def _generated_chars(delta: Any) -> int:
    """Characters of answer in one delta (tool calls count their name and arguments)."""
    chars = len(delta.content or "") + len(getattr(delta, "refusal", None) or "")
    calls = list(getattr(delta, "tool_calls", None) or [])
    function_call = getattr(delta, "function_call", None)
    functions = [c.function for c in calls if c.function is not None]
    functions += [function_call] if function_call is not None else []
    chars += sum(len(f.name or "") + len(f.arguments or "") for f in functions)
    if calls and not functions:
        chars += 1  # a tool-call delta that names nothing yet is still part of the answer
    extra = delta.model_extra or {}
    for name in _DELTA_EXTRAS:
        value = extra.get(name)
        if value:
            chars += len(value) if isinstance(value, str) else len(str(value))
    return chars
