"""A fast OpenRouter-compatible upstream for benchmarks: asyncio, a fixed small reply, own process.

    python bench/upstream.py --port 0 --port-file PORT_FILE

Why not tests/fakes/openrouter.py: that fake is a thread-per-connection `http.server` built for
fidelity (errors, cuts, accounts); its cost per request is itself a few hundred microseconds and
varies, which hides a sub-millisecond gateway overhead. This one answers every chat call with the
same prebuilt body in one `write` (headers and body together, TCP_NODELAY) so no keep-alive
connection waits on a delayed ACK.

It also records each chat request's arrival time (wall clock, taken when the request line is
read) and the tokens it charged, for the rate-limit fidelity bench:
`GET /_arrivals` → `{"arrivals": [[epoch_seconds, tokens], ...]}`; `POST /_reset` clears them.
`GET /_cost` → the server's own median handling time per chat request in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import statistics
import time
from pathlib import Path

KEY = "sk-or-v1-bench-0000000000000000000000000000000000000000000000000000000000a1b2"
MODEL = "openai/gpt-4o-mini"
PROMPT_TOKENS = 12
COMPLETION_TOKENS = 6
TEXT = "Hello there, friend, how are"
COST = 0.0000045


def _usage() -> dict:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
        "cost": COST,
        "is_byok": False,
    }


def _completion() -> bytes:
    return json.dumps(
        {
            "id": "gen-bench-1",
            "provider": "Bench",
            "model": MODEL,
            "object": "chat.completion",
            "created": 1_764_633_600,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "native_finish_reason": "stop",
                    "logprobs": None,
                    "message": {"role": "assistant", "content": TEXT, "refusal": None},
                }
            ],
            "usage": _usage(),
        },
        separators=(",", ":"),
    ).encode()


def _chunk(content: str, finish: str | None = None, usage: bool = False) -> bytes:
    body = {
        "id": "gen-bench-1",
        "provider": "Bench",
        "model": MODEL,
        "object": "chat.completion.chunk",
        "created": 1_764_633_600,
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": content},
                "finish_reason": finish,
                "native_finish_reason": finish,
                "logprobs": None,
            }
        ],
    }
    if usage:
        body["choices"] = []
        body["usage"] = _usage()
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _stream_body() -> bytes:
    words = TEXT.split(" ")
    parts = [_chunk(w if i == 0 else " " + w) for i, w in enumerate(words)]
    parts.append(_chunk("", "stop"))
    parts.append(_chunk("", usage=True))
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def _response(body: bytes, content_type: str, status: str = "200 OK") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\nconnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


CHAT = _response(_completion(), "application/json")
STREAM = _response(_stream_body(), "text/event-stream")
MODELS = _response(b'{"data":[]}', "application/json")
NOT_FOUND = _response(
    b'{"error":{"code":404,"message":"not found"}}', "application/json", "404 Not Found"
)
OK = _response(b"{}", "application/json")


class Upstream:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, int]] = []
        self.handling_us: list[float] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                arrived = time.time()
                t0 = time.perf_counter()
                length = 0
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length) if length else b""
                writer.write(self.route(request_line, body, arrived))
                self.handling_us.append((time.perf_counter() - t0) * 1e6)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return  # shutdown with keep-alive connections still open: nothing to report
        finally:
            writer.close()

    def route(self, request_line: bytes, body: bytes, arrived: float) -> bytes:
        method, path = request_line.split(b" ")[:2]
        if method == b"POST" and path.endswith(b"/chat/completions"):
            self.arrivals.append((arrived, PROMPT_TOKENS + COMPLETION_TOKENS))
            # A substring test is enough for our own clients and keeps JSON parsing off the path.
            return STREAM if b'"stream":true' in body.replace(b" ", b"") else CHAT
        if path.endswith(b"/models"):
            return MODELS
        if path == b"/_arrivals":
            payload = json.dumps({"arrivals": self.arrivals}).encode()
            return _response(payload, "application/json")
        if path == b"/_cost":
            median = statistics.median(self.handling_us) if self.handling_us else 0.0
            return _response(json.dumps({"median_us": median}).encode(), "application/json")
        if method == b"POST" and path == b"/_reset":
            self.arrivals.clear()
            self.handling_us.clear()
            return OK
        return NOT_FOUND


async def serve(port: int, port_file: Path | None) -> None:
    upstream = Upstream()
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", port, backlog=1024)
    if port_file is not None:
        partial = port_file.with_name(port_file.name + ".tmp")
        partial.write_text(str(server.sockets[0].getsockname()[1]))
        partial.replace(port_file)  # a poller never reads a half-written port
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.port_file))


if __name__ == "__main__":
    main()
