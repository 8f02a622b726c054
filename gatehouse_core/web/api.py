"""The HTTP API beside the console: mounted at /api, built on its first request.

The console's registry and gateway are process-wide resources that the lifespan warms up
after app.py is imported, so the FastAPI app cannot be built at import time; it is built once,
on the first request, from the same getters the pages use — one gateway per process, whose
limits, budgets and audit writer the console and the API share.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import anyio
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from ..api.app import MOUNT_PATH, create_app


class LazyApi:
    """An ASGI app that builds the GateHouse API on first use (single-flight)."""

    def __init__(self, registry: Callable[[], Any], gateway: Callable[[], Any]):
        self._registry = registry
        self._gateway = gateway
        self._app: Any = None
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app or await anyio.to_thread.run_sync(self._build)
        await app(scope, receive, send)

    def _build(self) -> Any:
        with self._lock:
            if self._app is None:
                self._app = create_app(registry=self._registry(), gateway=self._gateway())
            return self._app

    def close(self) -> None:
        """Let calls in flight finish; the shared gateway itself is closed by the console."""
        if self._app is not None:
            self._app.state.gatehouse.close()


def api_routes(api: LazyApi) -> list[Mount]:
    return [Mount(MOUNT_PATH, app=api)]
