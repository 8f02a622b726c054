"""OpenAI-compatible endpoints: `POST /v1/chat/completions` (JSON or SSE) and `GET /v1/models`.

Any OpenAI SDK pointed at `…/api/v1` gets GateHouse's fallback, retries, limits and audit:
the call goes through `Gateway.chat` / `Gateway.stream`.

Passed to the upstream: `messages`, `model`, `max_tokens`, `temperature`, and every other body
field — fields the openai SDK knows (`tools`, `tool_choice`, `response_format`, `stop`, `seed`,
`n`, `logprobs`, `top_p`, `user`, …) as SDK arguments, all others (OpenRouter's `provider`,
`models`, `transforms`, `plugins`, `reasoning`, `top_k`, …) in the request body as they are.
`stream_options` is not passed on: a stream always ends with a usage chunk.

Passed back (this slice): the first choice's text, `finish_reason`, `model` (the model actually
used), `usage` with `cost`. Not passed back yet, because `ChatResult` does not keep them:
`tool_calls`, choices beyond the first (`n > 1`), `logprobs`, `refusal`, `reasoning`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from openai.resources.chat.completions import Completions
from pydantic import BaseModel, ConfigDict, Field

from ..results import ChatResult
from ..tokens import TokenInfo
from .calls import SELECT_PROVIDER_HEADER, admit, answer_headers, audit_fields
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
            admit(state, token, body.model, provider)
            return state.gateway.chat(body.messages, **options)

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
    """Bridge the gateway's synchronous stream to SSE: one pool thread reads it and hands each
    delta to the event loop; the answer starts only with the first delta, so a failure before
    it (every provider failed, rate limited) is an honest HTTP error, not a 200 stream."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancelled = threading.Event()

    def open_stream() -> tuple[Any, str]:
        admit(state, token, body.model, provider)
        # Chunks before the end carry this model: the one actually used is known at the end.
        return state.gateway.stream(body.messages, **options), (
            body.model or state.default_model(provider) or ""
        )

    stream, early_model = await state.run(open_stream)

    def put(item: tuple[str, Any]) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is gone (shutdown): nobody is listening any more
            cancelled.set()

    def produce() -> None:
        try:
            for delta in stream:
                if cancelled.is_set():
                    break
                put(("delta", delta))
            else:
                put(("done", stream.result))
                return
            stream.close()  # the client went away: the gateway audits the attempt "cancelled"
        except Exception as exc:  # GatewayError before or after the first token
            put(("error", exc))

    state.pool.submit(produce)
    try:
        first = await queue.get()
    except BaseException:  # timed out or cancelled before the first token: stop reading
        cancelled.set()
        raise
    if first[0] == "error":
        raise first[1]
    chunk_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())

    def chunk(model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    async def events() -> AsyncIterator[bytes]:
        item, role_sent = first, False
        try:
            while True:
                kind, value = item
                if kind == "delta":
                    delta = (
                        {"content": value} if role_sent else {"role": "assistant", "content": value}
                    )
                    role_sent = True
                    yield _sse(chunk(early_model, delta, None))
                elif kind == "done":
                    result: ChatResult = value
                    yield _sse(chunk(result.model, {}, result.finish_reason or "stop"))
                    final = {**chunk(result.model, {}, None), "choices": []}
                    final.update(usage=usage_json(result), gatehouse=gatehouse_json(result))
                    yield _sse(final)
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
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
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
