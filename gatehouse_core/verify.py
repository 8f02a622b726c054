"""Verify a provider's configuration: is it reachable, is its key valid, what are its limits.

The seed's "Verify configuration" step: `GET {base_url}/models` (no key needed) for
reachability and latency, then `GET {base_url}/key` with the stored key for validity,
limit and usage. Used by `gatehouse providers test` and the console's Test connection.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import openai

from .errors import NotFound
from .gateway import default_client_factory
from .policy import HINTS, classify
from .registry import Registry, ResolvedProvider


@dataclass(frozen=True)
class VerifyReport:
    provider: str
    base_url: str
    reachable: bool
    models_latency_ms: float | None = None
    model_count: int | None = None
    key_valid: bool | None = None  # None: no key stored, or the endpoint has no /key
    key_limit: float | None = None
    key_usage: float | None = None
    key_limit_remaining: float | None = None
    is_free_tier: bool | None = None
    key_latency_ms: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.reachable and self.key_valid is not False and self.error is None

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "ok": self.ok}


def verify_provider(registry: Registry, name: str, timeout: float = 10.0) -> VerifyReport:
    """Check one provider end to end; never raises for upstream failures (they are reported)."""
    resolved = registry.snapshot(force=True).get(name)
    if resolved is None:
        raise NotFound(f"No provider named {name!r}; `gatehouse providers list` shows them")
    return _verify(resolved, timeout)


def _verify(provider: ResolvedProvider, timeout: float) -> VerifyReport:
    config = provider.config
    base = VerifyReport(provider=config.name, base_url=config.base_url, reachable=False)
    with default_client_factory(provider, timeout) as client:
        t0 = time.perf_counter()
        try:
            models = client.get("/models", cast_to=object)
        except openai.APIError as exc:
            return dataclasses.replace(base, error=_explain(exc))
        report = dataclasses.replace(
            base,
            reachable=True,
            models_latency_ms=round((time.perf_counter() - t0) * 1000, 1),
            model_count=len(models.get("data", [])) if isinstance(models, dict) else None,
        )
        if provider.key_error:
            return dataclasses.replace(report, key_valid=False, error=provider.key_error)
        if not provider.api_key:
            return dataclasses.replace(
                report,
                error=f"no API key stored; set one with `gatehouse providers set-key {config.name}`",
            )
        return _check_key(client, report)


def _check_key(client: openai.OpenAI, report: VerifyReport) -> VerifyReport:
    t0 = time.perf_counter()
    try:
        payload = client.get("/key", cast_to=object)
    except openai.AuthenticationError:
        return dataclasses.replace(
            report,
            key_valid=False,
            error="the API key was rejected (401); " + HINTS["authentication"],
        )
    except openai.NotFoundError:  # an openai-compatible endpoint without OpenRouter's /key
        return dataclasses.replace(report, key_valid=None)
    except openai.APIError as exc:
        return dataclasses.replace(report, error=f"checking the key failed: {_explain(exc)}")
    # OpenRouter's `label` repeats part of the key; GateHouse shows only its own masked form.
    data = payload.get("data", {}) if isinstance(payload, dict) else {}
    return dataclasses.replace(
        report,
        key_valid=True,
        key_limit=data.get("limit"),
        key_usage=data.get("usage"),
        key_limit_remaining=data.get("limit_remaining"),
        is_free_tier=data.get("is_free_tier"),
        key_latency_ms=round((time.perf_counter() - t0) * 1000, 1),
    )


def _explain(exc: openai.APIError) -> str:
    outcome = classify(exc)
    status = f"HTTP {outcome.http_status}: " if outcome.http_status else ""
    hint = f" ({outcome.hint})" if outcome.hint else ""
    return f"{status}{outcome.message}{hint}"
