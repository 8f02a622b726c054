"""What both chat families do around a gateway call: admission, audit ids, answer headers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request

from ..tokens import TokenHold, TokenInfo
from .errors import PROVIDER_HEADER, REQUEST_ID_HEADER
from .state import ApiState

WORKFLOW_HEADER = "X-GateHouse-Workflow-Id"
TRACE_HEADER = "X-GateHouse-Trace-Id"
SELECT_PROVIDER_HEADER = "X-GateHouse-Provider"  # on a request: the provider to try first
SOURCE = "api"


def admit(
    state: ApiState,
    token: TokenInfo,
    model: str | None,
    provider: str | None,
    messages: Sequence[Mapping[str, Any]] = (),
    max_tokens: int | None = None,
) -> TokenHold:
    """The token's limits, in the order that wastes nothing: model (403), budget reservation
    (402), and only then a requests-per-minute slot (429), so a refused call does not use up
    the rate. Returns the budget hold: settle it with the call's cost, or release it.
    Blocking: call it in the pool, in the same hop as the gateway call it guards."""
    chosen = model or state.default_model(provider)
    if chosen is not None:
        state.limits.check_model(token, chosen)
    prompt = sum(len(str(m.get("content") or "")) for m in messages) // 4  # as the gateway's
    hold = state.limits.reserve_budget(token, chosen, prompt, max_tokens)
    try:
        state.limits.take_rpm(token)
    except BaseException:
        hold.release()
        raise
    return hold


def guarded_chat(
    state: ApiState, token: TokenInfo, messages: Sequence[Mapping[str, Any]], **options: Any
) -> Any:
    """admit, then `Gateway.chat`, settling the token's reservation with the call's cost."""
    hold = admit(
        state,
        token,
        options.get("model"),
        options.get("provider"),
        messages,
        options.get("max_tokens"),
    )
    try:
        result = state.gateway.chat(messages, **options)
    except BaseException:
        hold.release()
        raise
    hold.settle(result.cost_usd)
    return result


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
