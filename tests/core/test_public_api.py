"""The public surface is exactly what __init__ exports; it cannot grow or shrink by accident."""

import subprocess
import sys

import gatehouse_core

PUBLIC = {
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
}


def test_public_api_is_pinned():
    assert set(gatehouse_core.__all__) == PUBLIC
    for name in PUBLIC:
        assert hasattr(gatehouse_core, name), name


def test_gateway_errors_share_one_base():
    for cls in (
        gatehouse_core.AllProvidersFailed,
        gatehouse_core.RateLimited,
        gatehouse_core.BudgetExceeded,
        gatehouse_core.InvalidRequest,
        gatehouse_core.StreamInterrupted,
    ):
        assert issubclass(cls, gatehouse_core.GatewayError)
    assert issubclass(gatehouse_core.GatewayError, gatehouse_core.GatehouseError)


def test_importing_the_core_does_not_load_streamlit():
    # A worker that imports gatehouse_core must not pay for (or depend on) the console.
    code = "import sys, gatehouse_core; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
