"""Provider configuration: `ProviderConfig`, `RateLimit`, and their validation.

The JSON shape (`to_json`/`from_json`) is the one stored under `system_settings.llm_providers`
and printed by `gatehouse providers show --json`; scripts depend on it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from .errors import ConfigError, ValidationError

PROVIDER_TYPES = ("openrouter", "openai-compatible")
SOURCES = ("database", "environment")
DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"

NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
# provider/model-name with an optional :variant (`meta-llama/llama-3.3-70b-instruct:free`);
# a leading `~` selects the newest model of a family (`~anthropic/claude-sonnet-latest`).
MODEL_ID_PATTERN = re.compile(r"^~?[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*(?::[\w.\-]+)?$")
HEADER_NAME_PATTERN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
# These would smuggle a credential past the encrypted key store.
FORBIDDEN_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie"}
)
RATE_LIMIT_FIELDS = ("requests_per_minute", "tokens_per_minute", "concurrent_requests")


def is_valid_model_id(model: str) -> bool:
    return bool(MODEL_ID_PATTERN.match(model))


def model_id_error(model: str) -> str:
    return (
        f"{model!r} is not a model id; use provider/model-name, optionally with a :variant "
        "suffix, e.g. anthropic/claude-sonnet-4 or meta-llama/llama-3.3-70b-instruct:free"
    )


@dataclass(frozen=True)
class RateLimit:
    """Per-provider limits; None means no limit of that kind."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent_requests: int | None = None

    def to_json(self) -> dict[str, int]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RateLimit:
        data = data or {}
        return cls(**{k: data.get(k) for k in RATE_LIMIT_FIELDS})

    def errors(self) -> dict[str, str]:
        found = {}
        for name in RATE_LIMIT_FIELDS:
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                found[name] = f"must be a positive whole number or absent, not {value!r}"
        return found


@dataclass(frozen=True)
class ProviderConfig:
    """One upstream: where it is, what it serves by default, its place in the fallback order."""

    name: str
    base_url: str = DEFAULT_BASE_URL
    default_model: str = "anthropic/claude-sonnet-4"
    type: str = "openrouter"
    priority: int = 1
    is_default: bool = False
    enabled: bool = True
    rate_limit: RateLimit = field(default_factory=RateLimit)
    headers: Mapping[str, str] = field(default_factory=dict)
    source: str = "database"  # where it came from; not part of the stored JSON

    @property
    def read_only(self) -> bool:
        return self.source == "environment"

    def to_json(self) -> dict[str, Any]:
        """The seed's stored shape."""
        config: dict[str, Any] = {
            "base_url": self.base_url,
            "default_model": self.default_model,
            "rate_limit": self.rate_limit.to_json(),
            "headers": dict(self.headers),
        }
        return {
            "name": self.name,
            "type": self.type,
            "is_default": self.is_default,
            "priority": self.priority,
            "enabled": self.enabled,
            "config": config,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "database") -> ProviderConfig:
        config = data.get("config") or {}
        return cls(
            name=data.get("name", ""),
            type=data.get("type", "openrouter"),
            is_default=data.get("is_default", False),
            priority=data.get("priority", 1),
            enabled=data.get("enabled", True),
            base_url=config.get("base_url", DEFAULT_BASE_URL),
            default_model=config.get("default_model", ""),
            rate_limit=RateLimit.from_json(config.get("rate_limit")),
            headers=dict(config.get("headers") or {}),
            source=source,
        )

    def with_changes(self, **changes: Any) -> ProviderConfig:
        """A copy with fields changed; rate-limit fields may be given flat (`requests_per_minute`)."""
        limit_changes = {k: changes.pop(k) for k in RATE_LIMIT_FIELDS if k in changes}
        if limit_changes:
            changes["rate_limit"] = dataclasses.replace(self.rate_limit, **limit_changes)
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise ValidationError listing every problem with this one provider."""
        errors = _field_errors(self)
        if errors:
            raise ValidationError(errors)


def _field_errors(p: ProviderConfig) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not isinstance(p.name, str) or not NAME_PATTERN.match(p.name):
        errors["name"] = (
            f"{p.name!r} is not a valid name: use 1-64 lowercase letters, digits and dashes "
            "(a slug such as openrouter-primary)"
        )
    if p.type not in PROVIDER_TYPES:
        errors["type"] = (
            f"{p.type!r} is not a provider type; use one of {', '.join(PROVIDER_TYPES)}"
        )
    if isinstance(p.priority, bool) or not isinstance(p.priority, int) or p.priority < 1:
        errors["priority"] = f"must be a whole number of at least 1, not {p.priority!r}"
    parsed = urlparse(p.base_url if isinstance(p.base_url, str) else "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        errors["base_url"] = (
            f"{p.base_url!r} is not an http(s) URL; e.g. https://openrouter.ai/api/v1"
        )
    if not isinstance(p.default_model, str) or not is_valid_model_id(p.default_model):
        errors["default_model"] = model_id_error(str(p.default_model))
    errors.update(p.rate_limit.errors())
    for name, value in p.headers.items():
        if (
            not HEADER_NAME_PATTERN.match(name)
            or not isinstance(value, str)
            or any(c in value for c in "\r\n\0")  # CR/LF would split the request
        ):
            errors["headers"] = f"header {name!r} is not a valid HTTP header name and value"
        elif name.lower() in FORBIDDEN_HEADERS:
            errors["headers"] = (
                f"header {name!r} would carry a credential in plain text; "
                "store the API key with set-key instead"
            )
    if p.is_default and not p.enabled:
        errors["is_default"] = "a disabled provider cannot be the default; enable it first"
    return errors


def parse_document(value: Any) -> list[ProviderConfig]:
    """The providers of a stored `llm_providers` document, or ConfigError saying what is wrong.

    The document is normally written only by the registry, but a hand-edited row must give
    the operator a clear message rather than a crash deep inside the gateway.
    """
    items = value.get("providers") if isinstance(value, Mapping) else None
    if not isinstance(items, list):
        raise ConfigError(_malformed('it is not an object with a "providers" list'))
    for index, item in enumerate(items):
        config = item.get("config", {}) if isinstance(item, Mapping) else None
        if not isinstance(config, Mapping) or not isinstance(item.get("name"), str):
            raise ConfigError(
                _malformed(f"providers[{index}] is not an object with a name and a config")
            )
        for part in ("rate_limit", "headers"):
            if not isinstance(config.get(part) or {}, Mapping):
                raise ConfigError(_malformed(f"providers[{index}].config.{part} is not an object"))
    return [ProviderConfig.from_json(item) for item in items]


def _malformed(detail: str) -> str:
    return (
        f"The stored provider configuration (system_settings key 'llm_providers') is malformed: "
        f"{detail}. Repair or delete that row; `gatehouse history` shows the last change made "
        "through GateHouse."
    )


def validate_set(providers: list[ProviderConfig]) -> None:
    """Rules across providers: unique names, exactly one default among enabled providers."""
    for p in providers:
        p.validate()
    names = [p.name for p in providers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValidationError({"name": f"a provider named {duplicates[0]!r} already exists"})
    defaults = [p.name for p in providers if p.enabled and p.is_default]
    if providers and any(p.enabled for p in providers) and len(defaults) != 1:
        raise ValidationError(
            {"is_default": f"exactly one enabled provider must be the default, found {defaults}"}
        )


def fallback_order(providers: list[ProviderConfig]) -> list[ProviderConfig]:
    """Enabled providers, the default first, then by ascending priority and name."""
    enabled = [p for p in providers if p.enabled]
    return sorted(enabled, key=lambda p: (not p.is_default, p.priority, p.name))
