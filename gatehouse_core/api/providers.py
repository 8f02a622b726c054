"""`/v1/settings/providers`: the seed's provider settings endpoints (admin tokens only).

Thin over the registry: the same validation, the same transaction per change, the same
settings_audit row (actor `token:NAME`). The API key is write-only: answers show it masked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError
from ..providers import (
    DEFAULT_BASE_URL,
    PROVIDER_TYPES,
    RATE_LIMIT_FIELDS,
    ProviderConfig,
    RateLimit,
)
from ..registry import Registry
from .deps import AdminToken
from .state import get_state

router = APIRouter(prefix="/v1/settings/providers", tags=["settings"])


class RateLimitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent_requests: int | None = None


class ConfigBody(BaseModel):
    """`config` of the seed's body; `api_key` is stored encrypted and never returned."""

    model_config = ConfigDict(extra="forbid")
    api_key: str | None = Field(None, description="write-only; answers show it masked")
    default_model: str | None = None
    base_url: str | None = None
    rate_limit: RateLimitBody | None = None
    headers: dict[str, str] | None = None


class ProviderBody(BaseModel):
    """The seed's body: `{"name", "type", "config": {"api_key", "default_model", …}}`."""

    model_config = ConfigDict(extra="forbid")
    name: str
    type: str = Field("openrouter", description=" or ".join(PROVIDER_TYPES))
    config: ConfigBody = Field(default_factory=ConfigBody)
    priority: int | None = None
    is_default: bool | None = None
    enabled: bool | None = None


class ProviderPatch(BaseModel):
    """Only the fields given change; the name is the identity and cannot change."""

    model_config = ConfigDict(extra="forbid")
    type: str | None = None
    config: ConfigBody = Field(default_factory=ConfigBody)
    priority: int | None = None
    is_default: bool | None = None
    enabled: bool | None = None


def _changes(body: ProviderBody | ProviderPatch) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for field in ("type", "priority", "is_default", "enabled"):
        value = getattr(body, field)
        if value is not None and field in body.model_fields_set:
            changes[field] = value
    config = body.config
    for field, target in (("default_model", "default_model"), ("base_url", "base_url")):
        if getattr(config, field) is not None:
            changes[target] = getattr(config, field)
    if config.headers is not None:
        changes["headers"] = config.headers
    if config.rate_limit is not None:
        given = config.rate_limit.model_fields_set
        changes.update({f: getattr(config.rate_limit, f) for f in RATE_LIMIT_FIELDS if f in given})
    return changes


def _update(
    registry: Registry, name: str, body: ProviderBody | ProviderPatch, actor: str
) -> dict[str, Any]:
    """Change only what the body gives; a body with just `api_key` replaces the key."""
    changes, api_key = _changes(body), body.config.api_key
    if changes:
        registry.update(name, actor=actor, api_key=api_key, **changes)
    elif api_key is not None:
        registry.set_key(name, api_key, actor=actor)
    else:
        raise ConfigError("nothing to update: give at least one field or config.api_key")
    return registry.get(name).to_json()


def _upsert(registry: Registry, body: ProviderBody, actor: str) -> tuple[dict[str, Any], bool]:
    stored = {v.name for v in registry.providers() if not v.config.read_only}
    api_key = body.config.api_key
    if body.name in stored:
        return _update(registry, body.name, body, actor), False
    limit = body.config.rate_limit
    config = ProviderConfig(
        name=body.name,
        type=body.type,
        base_url=body.config.base_url or DEFAULT_BASE_URL,
        default_model=body.config.default_model or "",
        priority=body.priority if body.priority is not None else registry.next_priority(),
        is_default=bool(body.is_default),
        enabled=True if body.enabled is None else body.enabled,
        rate_limit=RateLimit(**limit.model_dump()) if limit else RateLimit(),
        headers=body.config.headers or {},
    )
    registry.add(config, actor=actor, api_key=api_key)
    return registry.get(body.name).to_json(), True


@router.get("", summary="List providers (keys masked)")
async def list_providers(request: Request, token: AdminToken) -> list[dict[str, Any]]:
    state = get_state(request)
    views = await state.run(state.registry.providers)
    return [v.to_json() for v in views]


@router.post(
    "",
    summary="Create a provider, or update the one with this name",
    status_code=201,
    responses={200: {"description": "an existing provider was updated"}},
)
async def upsert_provider(body: ProviderBody, request: Request, token: AdminToken) -> JSONResponse:
    state = get_state(request)
    view, created = await state.run(_upsert, state.registry, body, token.actor)
    return JSONResponse(view, status_code=201 if created else 200)


@router.get("/{name}", summary="One provider (key masked)")
async def get_provider(name: str, request: Request, token: AdminToken) -> dict[str, Any]:
    state = get_state(request)
    view = await state.run(state.registry.get, name)
    return view.to_json()


@router.patch("/{name}", summary="Change only the fields given")
async def patch_provider(
    name: str, body: ProviderPatch, request: Request, token: AdminToken
) -> dict[str, Any]:
    state = get_state(request)
    return await state.run(_update, state.registry, name, body, token.actor)


@router.delete("/{name}", summary="Delete a provider and its stored key")
async def delete_provider(name: str, request: Request, token: AdminToken) -> dict[str, Any]:
    state = get_state(request)
    await state.run(state.registry.remove, name, actor=token.actor)
    return {"name": name, "deleted": True}


@router.post("/{name}/test", summary="GET /models and GET /key against the provider")
async def test_provider(name: str, request: Request, token: AdminToken) -> dict[str, Any]:
    from ..verify import verify_provider  # imports the openai SDK

    state = get_state(request)
    report = await state.run(verify_provider, state.registry, name)
    return report.to_json()
