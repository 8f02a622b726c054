"""What the routers share: the core objects and the bounded thread pool they run in.

The gateway, the registry and the database are synchronous. Every call into them runs in one
`ThreadPoolExecutor` of `ApiConfig.threads` threads (GATEHOUSE_API_THREADS), so the event loop
never blocks and the number of LLM calls in flight per process is bounded by the pool size;
requests beyond it wait in the pool's queue (within the per-request timeout).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import Request
from sqlalchemy import Engine

from ..catalog import Catalog
from ..registry import Registry
from ..tokens import TokenLimits, TokenStore
from .config import ApiConfig

T = TypeVar("T")


@dataclass
class ApiState:
    registry: Registry
    gateway: Any  # gatehouse_core.gateway.Gateway (typed loosely: importing it loads openai)
    tokens: TokenStore
    limits: TokenLimits
    catalog: Catalog
    config: ApiConfig
    owns_gateway: bool = False
    pool: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.pool = ThreadPoolExecutor(self.config.threads, thread_name_prefix="gatehouse-api")

    @property
    def engine(self) -> Engine:
        return self.registry.engine

    @property
    def queue_timeout(self) -> float:
        return float(getattr(self.gateway, "queue_timeout", 1.0))

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call in the pool and wait for it without blocking the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))

    def default_model(self, provider: str | None) -> str | None:
        """The model a call without `model` would use (first provider's default model)."""
        snapshot = self.registry.snapshot()
        chosen = snapshot.get(provider) if provider else None
        if chosen is None:
            ordered = snapshot.ordered()
            chosen = ordered[0] if ordered else None
        return chosen.config.default_model if chosen else None

    def close(self) -> None:
        """Finish calls in flight, then (if this app built the gateway) flush audit rows."""
        self.pool.shutdown(wait=True, cancel_futures=False)
        if self.owns_gateway:
            self.gateway.close()


def get_state(request: Request) -> ApiState:
    return request.app.state.gatehouse
