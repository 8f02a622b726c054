"""GateHouse core: the OpenRouter gateway and provider registry every service imports.

    from gatehouse_core import Gateway
    gateway = Gateway.from_env()
    result = gateway.chat([{"role": "user", "content": "Hello"}], workflow_id="wf-1")

The names below are the public API (a test pins the list); everything else is internal.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

# Loaded on first use (PEP 562): the CLI and the console import gatehouse_core without
# paying for the openai SDK until a command actually sends traffic.
_LAZY = {
    "AllProvidersFailed": "errors",
    "BudgetExceeded": "errors",
    "ConfigError": "errors",
    "DatabaseUnavailable": "errors",
    "GatehouseError": "errors",
    "GatewayError": "errors",
    "InvalidRequest": "errors",
    "NotFound": "errors",
    "RateLimited": "errors",
    "SecretsError": "errors",
    "StreamInterrupted": "errors",
    "ValidationError": "errors",
    "ChatStream": "gateway",
    "Gateway": "gateway",
    "ProviderHealth": "gateway",
    "ProviderConfig": "providers",
    "RateLimit": "providers",
    "Registry": "registry",
    "Attempt": "results",
    "ChatResult": "results",
    "VerifyReport": "verify",
    "verify_provider": "verify",
}

if TYPE_CHECKING:
    from .errors import (
        AllProvidersFailed,
        BudgetExceeded,
        ConfigError,
        DatabaseUnavailable,
        GatehouseError,
        GatewayError,
        InvalidRequest,
        NotFound,
        RateLimited,
        SecretsError,
        StreamInterrupted,
        ValidationError,
    )
    from .gateway import ChatStream, Gateway, ProviderHealth
    from .providers import ProviderConfig, RateLimit
    from .registry import Registry
    from .results import Attempt, ChatResult
    from .verify import VerifyReport, verify_provider


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gatehouse_core' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__version__ = "0.1.0"

__all__ = [
    "AllProvidersFailed",
    "Attempt",
    "BudgetExceeded",
    "ChatResult",
    "ChatStream",
    "ConfigError",
    "DatabaseUnavailable",
    "Gateway",
    "GatehouseError",
    "GatewayError",
    "InvalidRequest",
    "NotFound",
    "ProviderConfig",
    "ProviderHealth",
    "RateLimit",
    "RateLimited",
    "Registry",
    "SecretsError",
    "StreamInterrupted",
    "ValidationError",
    "VerifyReport",
    "__version__",
    "verify_provider",
]
