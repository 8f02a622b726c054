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

# Patterns are used with fullmatch: `$` would also accept a trailing newline.
NAME_PATTERN = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
# provider/model-name with an optional :variant (`meta-llama/llama-3.3-70b-instruct:free`);
# a leading `~` selects the newest model of a family (`~anthropic/claude-sonnet-latest`).
MODEL_ID_PATTERN = re.compile(r"~?[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*(?::[\w.\-]+)?", re.ASCII)
HEADER_NAME_PATTERN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")  # RFC 9110 token
# Visible ASCII words separated by single spaces: what every HTTP stack on the way accepts
# (no leading/trailing blanks, no CR/LF or control characters, nothing outside ASCII).
HEADER_VALUE_PATTERN = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*")
HEADER_VALUE_MAX = 1024
HEADERS_MAX = 20
# Visible ASCII only: a zero-width space, BOM or line break pasted with a key breaks every call.
API_KEY_PATTERN = re.compile(r"[\x21-\x7e]+")
API_KEY_MIN, API_KEY_MAX = 8, 512
BASE_URL_MAX = 500
# These would smuggle a credential past the encrypted key store.
FORBIDDEN_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "cookie"}
)
# The HTTP client owns these; a configured value would corrupt the request framing.
TRANSPORT_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "proxy-connection",
        "content-encoding",
        "content-type",
        "accept-encoding",
    }
)
RATE_LIMIT_FIELDS = ("requests_per_minute", "tokens_per_minute", "concurrent_requests")


def is_valid_model_id(model: str) -> bool:
    return isinstance(model, str) and MODEL_ID_PATTERN.fullmatch(model) is not None


def api_key_error(api_key: Any) -> str | None:
    """What is wrong with an API key as typed or pasted, or None; never repeats the key."""
    if not isinstance(api_key, str) or not api_key.strip():
        return "the API key is empty"
    if any(c.isspace() for c in api_key):
        return "the API key contains spaces or line breaks; paste it again without them"
    bad = next((i for i, c in enumerate(api_key) if not API_KEY_PATTERN.fullmatch(c)), None)
    if bad is not None:
        return (
            f"the API key contains an invisible or non-ASCII character at position {bad + 1} "
            "(often a zero-width space or byte-order mark copied with it); paste it again"
        )
    if len(api_key) < API_KEY_MIN:
        return "the API key is too short to be real"
    if len(api_key) > API_KEY_MAX:
        return f"the API key is longer than {API_KEY_MAX} characters; check what was pasted"
    return None


def base_url_error(base_url: Any) -> str | None:
    """What is wrong with a base URL, or None. The URL is repeated only when it holds no
    credentials (a `user:pw@` part is refused without echoing it)."""
    example = "e.g. https://openrouter.ai/api/v1"
    if not isinstance(base_url, str) or not base_url:
        return f"a base URL is required: it is not an http(s) URL; {example}"
    if len(base_url) > BASE_URL_MAX:
        return f"the base URL is longer than {BASE_URL_MAX} characters"
    if "@" in urlparse(base_url).netloc or "@" in base_url.partition("//")[2].split("/")[0]:
        # Checked first and never echoed: the part before @ is a password.
        return (
            "the base URL contains a user name or password (user:pw@host); remove it and "
            "store the API key with set-key instead"
        )
    if not re.fullmatch(r"[\x21-\x7e]+", base_url):
        return (
            f"{base_url[:100]!r} is not an http(s) URL: it contains spaces, line breaks, "
            f"control or non-ASCII characters; type it again ({example}; use the punycode "
            "form of an international host)"
        )
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return f"{base_url!r} is not an http(s) URL; {example}"
    try:
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f"{base_url!r} has a port that is not a number from 1 to 65535"
    return None


def header_error(name: Any, value: Any) -> str | None:
    """What is wrong with one configured header, or None (the value is never repeated)."""
    if not isinstance(name, str) or not HEADER_NAME_PATTERN.fullmatch(name):
        return (
            f"header {str(name)[:100]!r} is not a valid HTTP header name "
            "(letters, digits and !#$%&'*+.^_`|~- only)"
        )
    if name.lower() in FORBIDDEN_HEADERS:
        return (
            f"header {name!r} would carry a credential in plain text; "
            "store the API key with set-key instead"
        )
    if name.lower() in TRANSPORT_HEADERS:
        return f"header {name!r} is set by the HTTP client itself and cannot be configured"
    if not isinstance(value, str) or not HEADER_VALUE_PATTERN.fullmatch(value):
        return (
            f"header {name!r} is not a valid HTTP header value: use visible ASCII characters "
            "and single spaces (no line breaks, control or non-ASCII characters, no leading "
            "or trailing spaces)"
        )
    if len(value) > HEADER_VALUE_MAX:
        return f"header {name!r} is longer than {HEADER_VALUE_MAX} characters"
    return None


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
            base_url=config.get("base_url", ""),
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
    if not isinstance(p.name, str) or not NAME_PATTERN.fullmatch(p.name):
        errors["name"] = (
            f"{p.name!r} is not a valid name: use 1-64 lowercase letters, digits and dashes "
            "(a slug such as openrouter-primary)"
        )
    if not isinstance(p.type, str) or p.type not in PROVIDER_TYPES:
        errors["type"] = (
            f"{p.type!r} is not a provider type; use one of {', '.join(PROVIDER_TYPES)}"
        )
    if isinstance(p.priority, bool) or not isinstance(p.priority, int) or p.priority < 1:
        errors["priority"] = f"must be a whole number of at least 1, not {p.priority!r}"
    url_problem = base_url_error(p.base_url)
    if url_problem:
        errors["base_url"] = url_problem
    if not is_valid_model_id(p.default_model):
        errors["default_model"] = model_id_error(str(p.default_model)[:200])
    errors.update(p.rate_limit.errors())
    header_problems = _header_errors(p.headers)
    if header_problems:
        errors["headers"] = header_problems
    for flag in ("is_default", "enabled"):
        if not isinstance(getattr(p, flag), bool):
            errors[flag] = f"must be true or false, not {getattr(p, flag)!r}"
    if p.is_default is True and p.enabled is False:
        errors["is_default"] = "a disabled provider cannot be the default; enable it first"
    return errors


def _header_errors(headers: Any) -> str | None:
    if not isinstance(headers, Mapping):
        return "headers must be an object of NAME: VALUE"
    if len(headers) > HEADERS_MAX:
        return f"at most {HEADERS_MAX} extra headers are allowed"
    seen: set[str] = set()
    for name, value in headers.items():
        problem = header_error(name, value)
        if problem:
            return problem
        if name.lower() in seen:
            return f"header {name!r} is given twice (header names ignore case)"
        seen.add(name.lower())
    return None


def parse_document(value: Any) -> list[ProviderConfig]:
    """The providers of a stored `llm_providers` document, or ConfigError saying what is wrong.

    The document is normally written only by the registry, but a hand-edited row must give
    the operator one clear message naming the bad part rather than a crash deep inside the
    gateway; and what passes here is held to the same rules as a change made through
    GateHouse, so a hand-edited row cannot smuggle in a config the gateway cannot use.
    """
    items = value.get("providers") if isinstance(value, Mapping) else None
    if not isinstance(items, list):
        raise ConfigError(_malformed('it is not an object with a "providers" list'))
    configs = [_parse_item(index, item) for index, item in enumerate(items)]
    for index, config in enumerate(configs):
        errors = _field_errors(config)
        if errors:
            field_name, message = next(iter(errors.items()))
            where = f"providers[{index}] ({config.name!r}).{_stored_path(field_name)}"
            raise ConfigError(_malformed(f"{where}: {message}"))
    names = [c.name for c in configs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(_malformed(f"the name {duplicates[0]!r} is used twice"))
    return configs


# Where each field lives in the stored JSON, to name the bad part of a hand-edited row.
_STORED_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "type": (str, "a string"),
    "priority": (int, "a whole number"),
    "is_default": (bool, "true or false"),
    "enabled": (bool, "true or false"),
}
_CONFIG_TYPES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "base_url": (str, "a string"),
    "default_model": (str, "a string"),
    "rate_limit": (Mapping, "an object"),
    "headers": (Mapping, "an object"),
}


def _parse_item(index: int, item: Any) -> ProviderConfig:
    where = f"providers[{index}]"
    config = item.get("config") if isinstance(item, Mapping) else None
    if not isinstance(config, Mapping) or not isinstance(item.get("name"), str):
        raise ConfigError(_malformed(f"{where} is not an object with a name and a config"))
    for key, (kind, text) in _STORED_TYPES.items():
        _check_type(item, key, kind, text, where)
    for key, (kind, text) in _CONFIG_TYPES.items():
        _check_type(config, key, kind, text, f"{where}.config")
    if "base_url" not in config:
        # Never default to openrouter.ai: the stored key would go to a host nobody chose.
        raise ConfigError(_malformed(f"{where}.config.base_url is missing"))
    for key, limit in (config.get("rate_limit") or {}).items():
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ConfigError(
                _malformed(f"{where}.config.rate_limit.{key} is not a whole number or null")
            )
    for name, header in (config.get("headers") or {}).items():
        if not isinstance(name, str) or not isinstance(header, str):
            raise ConfigError(_malformed(f"{where}.config.headers[{name!r}] is not a string"))
    return ProviderConfig.from_json(item)


def _check_type(data: Mapping[str, Any], key: str, kind: Any, text: str, where: str) -> None:
    value = data.get(key)
    if value is None:
        return
    wrong = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
    if wrong:
        raise ConfigError(_malformed(f"{where}.{key} is not {text} (it is {type(value).__name__})"))


def _stored_path(field_name: str) -> str:
    if field_name in _CONFIG_TYPES:
        return f"config.{field_name}"
    if field_name in RATE_LIMIT_FIELDS:
        return f"config.rate_limit.{field_name}"
    return field_name


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
