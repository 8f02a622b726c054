"""Pure ASGI middleware: request id on every answer, body size cap, per-request timeout.

Pure ASGI (not BaseHTTPMiddleware) so streamed answers pass through unbuffered.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import REQUEST_ID_HEADER, error_body

_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestIdMiddleware:
    """Every answer carries X-GateHouse-Request-Id: the gateway's id for LLM calls (set by the
    route), a fresh one for everything else."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == _REQUEST_ID for name, _ in headers):
                    headers.append((_REQUEST_ID, uuid.uuid4().hex.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    """Refuse bodies over `max_bytes` with 413 before any route reads them.

    A declared Content-Length is checked at once; a chunked body is read up to the cap
    (FastAPI would buffer it anyway) and replayed to the app.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await _send_json(
                    send,
                    400,
                    error_body(
                        "Bad Content-Length header.", "invalid_request_error", "bad_request"
                    ),
                )
                return
            if too_big:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)

    async def _refuse(self, send: Send) -> None:
        await _send_json(
            send,
            413,
            error_body(
                f"The request body is larger than {self.max_bytes} bytes "
                "(GATEHOUSE_API_MAX_BODY_BYTES); send a smaller request.",
                "invalid_request_error",
                "body_too_large",
            ),
        )


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


class TimeoutMiddleware:
    """End any request after `seconds`: 504 if nothing was sent yet, else an SSE error event.

    A gateway call already running in the pool is not interrupted (a thread cannot be); it
    finishes under the gateway's own GATEHOUSE_REQUEST_TIMEOUT and is audited as usual.
    """

    def __init__(self, app: ASGIApp, seconds: float):
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = {"response": False, "sse": False, "done": False}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                started["response"] = True
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                started["sse"] = content_type.startswith(b"text/event-stream")
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                started["done"] = True
            await send(message)

        try:
            async with asyncio.timeout(self.seconds):  # in this task: no task per request
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            body = error_body(
                f"The request took longer than {self.seconds:g} s (GATEHOUSE_API_TIMEOUT).",
                "api_error",
                "timeout",
            )
            if not started["response"]:
                await _send_json(send, 504, body)
            elif started["sse"] and not started["done"]:
                event = b"data: " + json.dumps(body).encode() + b"\n\ndata: [DONE]\n\n"
                await send({"type": "http.response.body", "body": event, "more_body": False})
