"""OpenAI-compatible endpoints: `POST /v1/chat/completions` (JSON or SSE) and `GET /v1/models`.

Any OpenAI SDK pointed at `…/api/v1` gets GateHouse's fallback, retries, limits and audit:
the call goes through `Gateway.chat` / `Gateway.stream`.

Passed to the upstream: `messages`, `model`, `max_tokens`, `temperature`, and every other body
field — fields the openai SDK knows (`tools`, `tool_choice`, `response_format`, `stop`, `seed`,
`n`, `logprobs`, `top_p`, `user`, …) as SDK arguments, all others (OpenRouter's `provider`,
`models`, `transforms`, `plugins`, `reasoning`, `top_k`, …) in the request body as they are.
`stream_options` is not passed on: a stream always ends with a usage chunk.

Passed back: the upstream's own answer, unchanged but for `model` (the model actually used)
and `usage.cost` (filled in when the upstream did not report it): every choice, `tool_calls`,
`logprobs`, `refusal`, `reasoning`, OpenRouter's extras, the upstream's `id`; GateHouse's own
figures in a separate `gatehouse` object. A stream passes every upstream chunk through in order
(tool-call deltas, `n > 1` choice indexes, logprobs) and ends with the usage chunk carrying
`cost`, then `data: [DONE]`. Headers `X-GateHouse-Request-Id` and `X-GateHouse-Provider` are on
every answer, streams included (sent with the first chunk, once the provider is known).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from openai.resources.chat.completions import Completions
from pydantic import BaseModel, ConfigDict, Field

from ..results import ChatResult
from ..streams import ChatStream
from ..tokens import TokenInfo
from .calls import (
    SELECT_PROVIDER_HEADER,
    admit,
    allowed_models,
    answer_headers,
    audit_fields,
    guarded_chat,
    stream_headers,
)
from .deps import ChatToken, ModelsToken
from .errors import describe
from .state import ApiState, get_state

router = APIRouter(prefix="/v1", tags=["openai-compatible"])

_OWN = {"self", "messages", "model", "stream", "stream_options", "max_tokens", "temperature"}
_TRANSPORT = {"extra_headers", "extra_query", "extra_body", "timeout"}
SDK_FIELDS = frozenset(inspect.signature(Completions.create).parameters) - _OWN - _TRANSPORT
DROPPED = frozenset({"stream_options"})


class CompletionBody(BaseModel):
    """OpenAI's chat completion request; fields not listed are passed to the upstream."""

    model_config = ConfigDict(extra="allow")
    messages: list[dict[str, Any]] = Field(min_length=1)
    model: str | None = Field(None, description="default: the default provider's default model")
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)


def split_extras(extra: dict[str, Any]) -> dict[str, Any]:
    """The body's other fields as gateway keyword arguments (SDK ones, the rest in extra_body)."""
    kwargs = {k: v for k, v in extra.items() if k in SDK_FIELDS}
    body = {k: v for k, v in extra.items() if k not in SDK_FIELDS and k not in DROPPED}
    if body:
        kwargs["extra_body"] = body
    return kwargs


def usage_json(result: ChatResult) -> dict[str, Any] | None:
    if result.input_tokens is None and result.output_tokens is None:
        return None
    prompt, completion = result.input_tokens or 0, result.output_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "cost": result.cost_usd,
        "prompt_tokens_details": {"cached_tokens": result.cached_tokens or 0},
        "completion_tokens_details": {"reasoning_tokens": result.reasoning_tokens or 0},
    }


def gatehouse_json(result: ChatResult) -> dict[str, Any]:
    """GateHouse's own fields, kept apart from OpenAI's (SDKs expose them as extras)."""
    return {
        "request_id": result.request_id,
        "provider": result.provider,
        "cost_source": result.cost_source,
        "attempts": len(result.attempts),
        "latency_ms": round(result.latency_ms, 2),
        "ttft_ms": round(result.ttft_ms, 2) if result.ttft_ms is not None else None,
    }


def completion_json(result: ChatResult) -> dict[str, Any]:
    """The upstream's body with the model actually used, cost in usage and GateHouse's figures."""
    if result.response is None:  # a gateway that kept no body (a stand-in in tests)
        return _rebuilt_completion(result)
    body = dict(result.response)
    body["model"] = result.model
    body["usage"] = _with_cost(body.get("usage"), result)
    body["gatehouse"] = gatehouse_json(result)
    return body


def _with_cost(usage: dict[str, Any] | None, result: ChatResult) -> dict[str, Any] | None:
    """The upstream's usage with `cost` set (GateHouse's estimate when it sent none)."""
    if not usage:
        return usage_json(result)
    if usage.get("cost") is None:
        return {**usage, "cost": result.cost_usd}
    return usage


def _rebuilt_completion(result: ChatResult) -> dict[str, Any]:
    return {
        "id": result.generation_id or f"chatcmpl-{result.request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": result.finish_reason or "stop",
                "logprobs": None,
            }
        ],
        "usage": usage_json(result),
        "gatehouse": gatehouse_json(result),
    }


def final_chunk(held: dict[str, Any] | None, result: ChatResult) -> dict[str, Any]:
    """The stream's last chunk: the upstream's usage chunk with cost and GateHouse's figures,
    or, when the upstream sent none, one built from the result."""
    if held is None:
        held = {
            "id": result.generation_id or f"chatcmpl-{result.request_id}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": result.model,
            "choices": [],
        }
    return {
        **held,
        "usage": _with_cost(held.get("usage"), result),
        "gatehouse": gatehouse_json(result),
    }


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


@router.post(
    "/chat/completions",
    summary="OpenAI-compatible chat completion (set stream: true for SSE)",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(body: CompletionBody, request: Request, token: ChatToken) -> Any:
    state = get_state(request)
    provider = request.headers.get(SELECT_PROVIDER_HEADER) or None
    options: dict[str, Any] = {
        "model": body.model,
        "provider": provider,
        "max_tokens": body.max_tokens,
        "temperature": body.temperature,
        **audit_fields(request, token, None, None),
        **split_extras(dict(body.model_extra or {})),
    }
    if not body.stream:

        def call() -> ChatResult:  # one pool hop for the limits and the call
            return guarded_chat(state, token, body.messages, **options)

        result = await state.run(call)
        return JSONResponse(completion_json(result), headers=answer_headers(result))
    return await _stream(state, token, body, options, provider)


async def _stream(
    state: ApiState,
    token: TokenInfo,
    body: CompletionBody,
    options: dict[str, Any],
    provider: str | None,
) -> StreamingResponse:
    """Bridge the gateway's synchronous stream to SSE: one pool thread opens the stream (the
    token's admission too) and reads the upstream's chunks, handing each to the event loop (one
    hop, not one to open and another to read); the answer starts only with the first chunk, so a
    failure before it (every provider failed, rate limited) is an honest HTTP error, not a 200
    stream, and the headers can name the provider that answered. The usage chunk is held back
    to the end so it can carry the cost and GateHouse's figures."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancelled = threading.Event()
    opened: list[ChatStream] = []

    def put(item: tuple[str, Any]) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is gone (shutdown): nobody is listening any more
            cancelled.set()

    def produce() -> None:
        held: dict[str, Any] | None = None
        try:
            admit(state, token, body.model, provider)
            stream = state.gateway.stream(
                body.messages, **options, allowed_models=allowed_models(token)
            )
            opened.append(stream)
            for chunk in stream.chunks():
                if cancelled.is_set():
                    break
                if chunk.get("usage"):
                    held = chunk
                    continue
                put(("chunk", chunk))
            else:
                put(("done", final_chunk(held, stream.result)))
                return
            stream.close()  # the client went away: the gateway audits the attempt "cancelled"
        except Exception as exc:  # refused, or a GatewayError before or after the first chunk
            put(("error", exc))

    state.pool.submit(produce)
    try:
        first = await queue.get()
    except BaseException:  # timed out or cancelled before the first chunk: stop reading
        cancelled.set()
        raise
    if first[0] == "error":
        raise first[1]
    stream = opened[0]  # appended before the first chunk was put

    async def events() -> AsyncIterator[bytes]:
        item = first
        try:
            while True:
                kind, value = item
                if kind == "chunk":
                    yield _sse(value)
                elif kind == "done":
                    yield _sse(value)
                    yield b"data: [DONE]\n\n"
                    return
                else:
                    _, error, _ = describe(value, retry_after=state.queue_timeout)
                    yield _sse(error)
                    yield b"data: [DONE]\n\n"
                    return
                item = await queue.get()
        finally:
            cancelled.set()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **stream_headers(stream),
        },
    )


@router.get("/models", summary="The model catalog in OpenAI's list shape")
async def list_models(request: Request, token: ModelsToken) -> dict[str, Any]:
    state = get_state(request)
    entries = await state.run(state.catalog.list)
    return {
        "object": "list",
        "data": [
            {
                "id": e.id,
                "object": "model",
                "created": int(e.refreshed_at.timestamp()) if e.refreshed_at else 0,
                "owned_by": e.id.split("/", 1)[0],
                **e.to_json(),
            }
            for e in entries
        ],
    }
