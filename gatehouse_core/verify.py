"""Verify a provider's configuration: is it reachable, is its key valid, what are its limits.

The seed's "Verify configuration" step: `GET {base_url}/models` (no key needed) for
reachability and latency, then `GET {base_url}/key` with the stored key for validity,
limit and usage. Used by `gatehouse providers test` and the console's Test connection.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import openai

from .catalog import no_api_answer  # one text for every /models failure (no port mapping)
from .errors import NotFound
from .hosts import host_error
from .policy import HINTS, classify
from .registry import Registry, ResolvedProvider

log = logging.getLogger("gatehouse.verify")


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


def verify_provider(
    registry: Registry,
    name: str,
    timeout: float = 10.0,
    env: Mapping[str, str] | None = None,
) -> VerifyReport:
    """Check one provider end to end; never raises for upstream failures (they are reported).

    Nothing is sent to a host GATEHOUSE_PROVIDER_HOSTS does not allow, nor to a link-local or
    metadata address (checked on every address the name resolves to); redirects are not
    followed, so an allowed host cannot bounce the request (and the key) elsewhere.
    """
    resolved = registry.snapshot(force=True).get(name)
    if resolved is None:
        raise NotFound(f"No provider named {name!r}; `gatehouse providers list` shows them")
    refused = host_error(resolved.config.base_url, env, resolve=True)
    if refused:
        config = resolved.config
        return VerifyReport(config.name, config.base_url, reachable=False, error=refused)
    return _verify(resolved, timeout)


def _client(provider: ResolvedProvider, timeout: float) -> openai.OpenAI:
    # Not the gateway's client factory: this one must never follow a redirect.
    config = provider.config
    return openai.OpenAI(
        base_url=config.base_url,
        api_key=provider.api_key or "missing",
        max_retries=0,
        timeout=timeout,
        default_headers=dict(config.headers) or None,
        http_client=openai.DefaultHttpxClient(timeout=timeout, follow_redirects=False),
    )


def _verify(provider: ResolvedProvider, timeout: float) -> VerifyReport:
    config = provider.config
    base = VerifyReport(provider=config.name, base_url=config.base_url, reachable=False)
    with _client(provider, timeout) as client:
        t0 = time.perf_counter()
        try:
            models = client.get("/models", cast_to=object)
        except openai.APIError as exc:
            log.info("Test connection of %s: /models failed: %s", config.name, _explain(exc))
            return dataclasses.replace(base, error=no_api_answer(config.base_url))
        except ValueError:  # a JSON content type over a body that is not JSON
            log.info("Test connection of %s: /models is not JSON", config.name)
            return dataclasses.replace(base, error=no_api_answer(config.base_url))
        data = models.get("data") if isinstance(models, Mapping) else models
        if not isinstance(data, list):
            log.info("Test connection of %s: /models is not a model list", config.name)
            return dataclasses.replace(base, error=no_api_answer(config.base_url))
        report = dataclasses.replace(
            base,
            reachable=True,
            models_latency_ms=round((time.perf_counter() - t0) * 1000, 1),
            model_count=len(data),
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
    except ValueError:  # declared JSON, but is not: treat like any other unexpected shape
        payload = None
    # OpenRouter's `label` repeats part of the key; GateHouse shows only its own masked form.
    # Any other shape (a list, a string, numbers as text) reads as "valid, limits unknown".
    data = payload.get("data") if isinstance(payload, Mapping) else None
    data = data if isinstance(data, Mapping) else {}
    return dataclasses.replace(
        report,
        key_valid=True,
        key_limit=_number(data.get("limit")),
        key_usage=_number(data.get("usage")),
        key_limit_remaining=_number(data.get("limit_remaining")),
        is_free_tier=data.get("is_free_tier")
        if isinstance(data.get("is_free_tier"), bool)
        else None,
        key_latency_ms=round((time.perf_counter() - t0) * 1000, 1),
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _explain(exc: openai.APIError) -> str:
    outcome = classify(exc)
    status = f"HTTP {outcome.http_status}: " if outcome.http_status else ""
    hint = f" ({outcome.hint})" if outcome.hint else ""
    return f"{status}{outcome.message}{hint}"
