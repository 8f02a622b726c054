"""What both chat families do around a gateway call: admission, audit ids, answer headers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from ..tokens import TokenInfo
from .errors import PROVIDER_HEADER, REQUEST_ID_HEADER
from .state import ApiState

WORKFLOW_HEADER = "X-GateHouse-Workflow-Id"
TRACE_HEADER = "X-GateHouse-Trace-Id"
SELECT_PROVIDER_HEADER = "X-GateHouse-Provider"  # on a request: the provider to try first
SOURCE = "api"


def admit(state: ApiState, token: TokenInfo, model: str | None, provider: str | None) -> None:
    """The token's own limits before the gateway's: its model patterns (403), then a
    requests-per-minute slot (429). Its monthly budget is one of the gateway's budgets, reserved
    per attempt in the gateway (402); `include` puts a token created moments ago in force at
    once. Blocking: call it in the pool, in the same hop as the gateway call it guards."""
    chosen = model or state.default_model(provider)
    if chosen is not None:
        state.limits.check_model(token, chosen)
    budgets = getattr(state.gateway, "budgets", None)
    if token.monthly_usd is not None and budgets is not None:
        budgets.include(f"token:{token.name}", token.created_at)
    state.limits.take_rpm(token)


def guarded_chat(state: ApiState, token: TokenInfo, messages: Any, **options: Any) -> Any:
    """admit, then `Gateway.chat`."""
    admit(state, token, options.get("model"), options.get("provider"))
    return state.gateway.chat(messages, **options, allowed_models=allowed_models(token))


def allowed_models(token: TokenInfo) -> Callable[[str], bool] | None:
    """The token's model patterns for the gateway's fallback (None: any model)."""
    return token.allows_model if token.models else None


def audit_fields(
    request: Request, token: TokenInfo, workflow_id: str | None, trace_id: str | None
) -> dict[str, Any]:
    """`workflow_id`/`trace_id` from the body, else from the X-GateHouse-* request headers."""
    return {
        "workflow_id": workflow_id or request.headers.get(WORKFLOW_HEADER) or None,
        "trace_id": trace_id or request.headers.get(TRACE_HEADER) or None,
        "source": SOURCE,
        "actor": token.actor,
    }


def answer_headers(result: Any) -> dict[str, str]:
    return {REQUEST_ID_HEADER: result.request_id, PROVIDER_HEADER: result.provider}


def stream_headers(stream: Any) -> dict[str, str]:
    """A stream's headers, once its first chunk has arrived (the provider is known then)."""
    headers = {REQUEST_ID_HEADER: stream.request_id}
    if stream.provider:
        headers[PROVIDER_HEADER] = stream.provider
    return headers
