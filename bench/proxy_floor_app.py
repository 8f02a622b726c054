"""The least a Python proxy built on the openai SDK can do, for bench/bench_proxy_floor.py.

`PROXY_FLOOR_MODE=pool`: FastAPI, the synchronous `openai.OpenAI` client called in Starlette's
thread pool (the hop `gatehouse serve` makes). `PROXY_FLOOR_MODE=async`: the same route
awaiting `openai.AsyncOpenAI` on the event loop (the async path the HTTP API issue offers).
No limits, no budgets, no audit: each answers the upstream's JSON as it came.
"""

from __future__ import annotations

import json
import os
from typing import Any

import openai
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

UPSTREAM = os.environ["PROXY_FLOOR_UPSTREAM"]
KEY = os.environ["PROXY_FLOOR_KEY"]
MODE = os.environ["PROXY_FLOOR_MODE"]

app = FastAPI()
sync_client = openai.OpenAI(base_url=UPSTREAM, api_key=KEY, max_retries=0)
async_client = openai.AsyncOpenAI(base_url=UPSTREAM, api_key=KEY, max_retries=0)


def _sync_call(body: dict[str, Any]) -> bytes:
    raw = sync_client.chat.completions.with_raw_response.create(**body)
    return raw.content


@app.post("/v1/chat/completions")
async def completions(request: Request) -> Response:
    body = json.loads(await request.body())
    if MODE == "pool":
        content = await run_in_threadpool(_sync_call, body)
    else:
        raw = await async_client.chat.completions.with_raw_response.create(**body)
        content = raw.content
    return Response(content, media_type="application/json")
