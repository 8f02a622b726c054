"""`create_app`: the FastAPI app of the HTTP API, built from the core objects it is given.

Routes are at `/v1/...`, `/healthz`, `/readyz`; the app is meant to be mounted at `/api`
(`Mount("/api", app=create_app(...))` beside the console, or by `gatehouse serve`), so the
endpoints are `/api/v1/...`, the OpenAPI document `/api/v1/openapi.json` (its `servers` entry is
the mount path) and the interactive docs `/api/docs`.

Starlette does not pass lifespan events to a mounted app: whoever mounts it calls
`app.state.gatehouse.close()` at shutdown (`gatehouse serve` does) to finish calls in flight and,
when the app built the gateway itself, flush its audit rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from .. import __version__
from ..catalog import Catalog
from ..registry import Registry
from ..tokens import TokenLimits, TokenStore
from . import chat, docs, errors, health, openai_compat, providers, reports
from .config import ApiConfig
from .middleware import BodyLimitMiddleware, RequestIdMiddleware, TimeoutMiddleware
from .state import ApiState

MOUNT_PATH = "/api"
OPENAPI_PATH = "/v1/openapi.json"

DESCRIPTION = """GateHouse over HTTP: provider settings, test chat, an OpenAI-compatible
chat completions endpoint with GateHouse's fallback, retries, limits and audit, and reports.
Authenticate with `Authorization: Bearer gh_…` (`gatehouse tokens create`)."""


def create_app(
    *,
    registry: Registry,
    gateway: Any,
    tokens: TokenStore | None = None,
    limits: TokenLimits | None = None,
    catalog: Catalog | None = None,
    config: ApiConfig | None = None,
    owns_gateway: bool = False,
) -> FastAPI:
    """The API over these core objects (tests and the console pass their own).

    `gateway` is a `Gateway`; its limiter (Redis-backed when configured) also counts the
    tokens' requests per minute, and its budgets hold the tokens' monthly budgets — a gateway
    built without budgets gets this process's (memory) budgets, so no token budget goes
    unenforced. `owns_gateway=True` closes it in `state.close()`.
    """
    config = config or ApiConfig.from_env()
    engine = registry.engine
    catalog = catalog or getattr(gateway, "catalog", None) or Catalog(engine)
    if hasattr(gateway, "budgets") and gateway.budgets is None:
        from ..spend.budgets import Budgets

        gateway.budgets = Budgets(engine, catalog)
    state = ApiState(
        registry=registry,
        gateway=gateway,
        tokens=tokens or TokenStore(engine),
        limits=limits or TokenLimits(getattr(gateway, "limiter", None)),
        catalog=catalog,
        config=config,
        owns_gateway=owns_gateway,
    )
    app = FastAPI(
        title="GateHouse API",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=OPENAPI_PATH,
        docs_url=None,  # docs.py serves /docs with local assets (FastAPI's page uses a CDN)
        redoc_url=None,
    )
    app.state.gatehouse = state
    errors.install(app)
    for module in (providers, chat, openai_compat, reports, health, docs):
        app.include_router(module.router)
    # add_middleware wraps what is there: the last added runs first.
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "X-GateHouse-Workflow-Id",
                "X-GateHouse-Trace-Id",
                "X-GateHouse-Provider",
            ],
            expose_headers=[errors.REQUEST_ID_HEADER, errors.PROVIDER_HEADER],
        )
    app.add_middleware(TimeoutMiddleware, seconds=config.timeout)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    return app


def create_app_from_env(env: Mapping[str, str] | None = None) -> FastAPI:
    """The API wired from GATEHOUSE_* settings, owning its gateway (for `gatehouse serve`)."""
    from ..gateway import Gateway

    registry = Registry.from_env(env)
    gateway = Gateway.from_env(env, registry=registry)
    return create_app(
        registry=registry, gateway=gateway, config=ApiConfig.from_env(env), owns_gateway=True
    )
