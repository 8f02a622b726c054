""" "View as code": a Playground call as gatehouse_core Python, curl and OpenAI-SDK snippets.

Pure functions, no streamlit. No API key ever goes into a snippet: the key is read from the
environment variable `KEY_VARIABLE` (OpenRouter's usual name) at run time.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KEY_VARIABLE = "OPENROUTER_API_KEY"


@dataclass(frozen=True)
class Call:
    """What the Playground would send: messages, the model and provider chosen (None: the
    gateway decides), sampling settings, and the provider's endpoint for the raw snippets."""

    messages: Sequence[Mapping[str, str]]
    model: str | None
    provider: str | None
    temperature: float | None
    max_tokens: int | None
    base_url: str
    default_model: str

    def body(self) -> dict[str, Any]:
        """The chat-completions body the raw snippets send (model resolved)."""
        body: dict[str, Any] = {
            "model": self.model or self.default_model,
            "messages": [dict(m) for m in self.messages],
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return body


def _messages_literal(messages: Sequence[Mapping[str, str]]) -> str:
    lines = [f"    {dict(m)!r}," for m in messages]
    return "[\n" + "\n".join(lines) + "\n]" if lines else "[]"


def gatehouse_python(call: Call) -> str:
    """Through GateHouse: the same fallback, limits and audit as the Playground."""
    options = [
        f"model={call.model!r}" if call.model else "",
        f"provider={call.provider!r}" if call.provider else "",
        f"temperature={call.temperature!r}" if call.temperature is not None else "",
        f"max_tokens={call.max_tokens!r}" if call.max_tokens is not None else "",
        'source="my-service"',
    ]
    arguments = ",\n    ".join(["messages", *[o for o in options if o]])
    return (
        "# Reads GATEHOUSE_DATABASE_URL and GATEHOUSE_SECRETS_KEY; keys come from the registry.\n"
        "from gatehouse_core import Gateway\n\n"
        "gateway = Gateway.from_env()\n"
        f"messages = {_messages_literal(call.messages)}\n"
        f"result = gateway.chat(\n    {arguments},\n)\n"
        "print(result.text, result.cost_usd)\n"
    )


def openai_python(call: Call) -> str:
    """Straight to the provider with the OpenAI SDK (no GateHouse fallback or audit)."""
    body = call.body()
    extra = "".join(f"    {k}={body[k]!r},\n" for k in ("temperature", "max_tokens") if k in body)
    return (
        "import os\n\n"
        "from openai import OpenAI\n\n"
        f"client = OpenAI(base_url={call.base_url!r}, api_key=os.environ[{KEY_VARIABLE!r}])\n"
        "response = client.chat.completions.create(\n"
        f"    model={body['model']!r},\n"
        f"    messages={_messages_literal(call.messages)},\n"
        f"{extra})\n"
        "print(response.choices[0].message.content)\n"
    )


def curl(call: Call) -> str:
    """Straight to the provider's chat-completions endpoint."""
    url = call.base_url.rstrip("/") + "/chat/completions"
    body = json.dumps(call.body(), indent=2, ensure_ascii=False)
    return (
        f"curl {shlex.quote(url)} \\\n"
        f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d {shlex.quote(body)}\n"
    )
