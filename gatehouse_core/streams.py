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


class ChatStream(Iterator[str]):
    """Text deltas of a streamed answer; `.result` holds the ChatResult once exhausted.

    Stop early with `close()` (or a `with` block): the rate-limit slot is freed at once, and
    the rest of the upstream answer is read in the background so the audit row records the
    tokens and cost the provider bills. A stream dropped without `close()` does the same when
    it is garbage collected."""

    def __init__(self, gen: Generator[str, None, ChatResult]):
        self._gen = gen
        self.result: ChatResult | None = None
        # Holds the generator, not the stream, so dropping the stream runs it.
        self._closer = weakref.finalize(self, _close_generator, gen)

    def __iter__(self) -> ChatStream:
        return self

    def __next__(self) -> str:
        try:
            return next(self._gen)
        except StopIteration as stop:
            if stop.value is not None:  # a second pass must not forget the result
                self.result = stop.value
            raise

    def close(self) -> None:
        self._closer()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _close_generator(gen: Generator[str, None, ChatResult]) -> None:
    try:
        gen.close()
    except Exception:  # at garbage collection nobody could catch it
        log.exception("closing an abandoned stream failed")


@dataclass
class StreamState:
    """What a stream has delivered so far."""

    parts: list[str] = field(default_factory=list)
    usage: Any = None
    response_model: str | None = None
    generation_id: str | None = None
    finish_reason: str | None = None
    first_token_at: float | None = None

    def absorb(self, chunk: Any) -> list[str]:
        error = (chunk.model_extra or {}).get("error")
        if error:
            raise ProviderBodyError(error)
        self.generation_id = self.generation_id or chunk.id
        self.response_model = chunk.model or self.response_model
        self.usage = chunk.usage or self.usage
        texts = []
        for choice in chunk.choices:  # the usage chunk may carry [] or an empty delta
            self.finish_reason = choice.finish_reason or self.finish_reason
            text = choice.delta.content if choice.delta else None
            if text:
                self.parts.append(text)
                texts.append(text)
        return texts
