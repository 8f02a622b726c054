"""The ASGI app `gatehouse serve` runs: the API mounted at /api, as beside the console.

`/healthz` and `/readyz` also answer at the root, for the load balancer of API-only replicas.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from .app import MOUNT_PATH, create_app_from_env
from .health import healthz, readyz


async def _healthz(request: Request) -> JSONResponse:
    return JSONResponse(await healthz())


def mounted(api: FastAPI) -> Starlette:
    """`api` served at /api; at shutdown its calls in flight finish and audit rows flush."""

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        api.state.gatehouse.close()

    outer = Starlette(
        routes=[
            Route("/healthz", _healthz),
            Route("/readyz", readyz),
            Mount(MOUNT_PATH, app=api),
        ],
        lifespan=lifespan,
    )
    outer.state.gatehouse = api.state.gatehouse  # the root /readyz reads the same state
    return outer


def app_from_env() -> Starlette:
    """Factory for uvicorn (`factory=True`): each worker process builds its own app."""
    return mounted(create_app_from_env())
