"""`POST /v1/chat`: the seed's test chat, `{"message", "model"}` in, the ChatResult out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ..results import ChatResult
from .calls import answer_headers, audit_fields, guarded_chat
from .deps import ChatToken
from .state import get_state

router = APIRouter(prefix="/v1", tags=["chat"])


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(min_length=1)
    model: str | None = Field(None, description="default: the default provider's default model")
    system: str | None = None
    provider: str | None = Field(None, description="the provider to try first")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    workflow_id: str | None = Field(None, max_length=200)
    trace_id: str | None = Field(None, max_length=200)


@router.post("/chat", summary="Send one message through the gateway; answers the ChatResult")
async def chat(body: ChatBody, request: Request, token: ChatToken) -> JSONResponse:
    state = get_state(request)
    messages = [{"role": "system", "content": body.system}] if body.system else []
    messages.append({"role": "user", "content": body.message})
    options = audit_fields(request, token, body.workflow_id, body.trace_id)

    def call() -> ChatResult:  # one pool hop for the limits and the call
        return guarded_chat(
            state,
            token,
            messages,
            model=body.model,
            provider=body.provider,
            max_tokens=body.max_tokens,
            temperature=body.temperature,
            **options,
        )

    result = await state.run(call)
    return JSONResponse(result.to_json(), headers=answer_headers(result))
