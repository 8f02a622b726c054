"""The GateHouse exception family.

Every message says what went wrong and what to do about it, and none carries an API key:
entry points (CLI, console pages) print `str(error)` as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

    from .results import Attempt


class GatehouseError(Exception):
    """Base of every error GateHouse raises on purpose."""


class ConfigError(GatehouseError):
    """A configuration value or request to change one is invalid."""


class ValidationError(ConfigError):
    """A provider configuration failed validation; `errors` maps field name to message."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in self.errors.items()))


class NotFound(ConfigError):
    """A named thing (provider, user) does not exist."""


class ReadOnlyProvider(ConfigError):
    """The environment-built provider cannot be changed from GateHouse."""


class SecretsError(GatehouseError):
    """The secrets key is malformed or cannot decrypt stored API keys."""


class DatabaseUnavailable(GatehouseError):
    """The database cannot be reached or is not usable."""


class GatewayError(GatehouseError):
    """Base of the errors `Gateway.chat` and `Gateway.stream` raise."""

    def __init__(self, message: str, attempts: Sequence[Attempt] = (), request_id: str = ""):
        super().__init__(message)
        self.attempts = list(attempts)
        self.request_id = request_id


class AllProvidersFailed(GatewayError):
    """Every provider in the fallback order failed; `attempts` holds each attempt."""


class RateLimited(GatewayError):
    """No provider could take the request within the queue timeout."""


class BudgetExceeded(GatewayError):
    """A budget forbids the request."""


class InvalidRequest(GatewayError):
    """The request itself is bad (400/413/422): retrying or falling back would not help."""


class StreamInterrupted(GatewayError):
    """A stream failed after its first token; `partial_text` holds what arrived."""

    def __init__(self, message: str, partial_text: str = "", **kwargs: Any):
        super().__init__(message, **kwargs)
        self.partial_text = partial_text


class AuthError(GatehouseError):
    """Sign-in refused (wrong credentials, disabled account, unknown SSO identity)."""


class AccountLocked(AuthError):
    """Too many failed sign-ins; `retry_at` (UTC) says when the next attempt is accepted."""

    def __init__(self, message: str, retry_at: datetime):
        super().__init__(message)
        self.retry_at = retry_at
