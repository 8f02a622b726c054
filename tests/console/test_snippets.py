""" "View as code": the snippets are valid code for the same call and never hold a key."""

from __future__ import annotations

import json
import shlex

from gatehouse_core.ui import snippets

CALL = snippets.Call(
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "It's ok"}],
    model=None,
    provider="primary",
    temperature=0.2,
    max_tokens=300,
    base_url="http://127.0.0.1:9/api/v1",
    default_model="openai/gpt-4o-mini",
)


def test_python_snippets_compile_and_carry_the_settings() -> None:
    for code in (snippets.gatehouse_python(CALL), snippets.openai_python(CALL)):
        compile(code, "<snippet>", "exec")
        assert "temperature=0.2" in code and "max_tokens=300" in code
    assert "provider='primary'" in snippets.gatehouse_python(CALL)
    assert "model=" not in snippets.gatehouse_python(CALL)  # the gateway picks the default
    assert "model='openai/gpt-4o-mini'" in snippets.openai_python(CALL)


def test_curl_sends_the_same_body_with_the_key_from_the_environment() -> None:
    words = shlex.split(snippets.curl(CALL).replace("\\\n", " "))
    assert words[1] == "http://127.0.0.1:9/api/v1/chat/completions"
    assert "Authorization: Bearer $OPENROUTER_API_KEY" in words
    body = json.loads(words[words.index("-d") + 1])
    assert body == {
        "model": "openai/gpt-4o-mini",
        "messages": list(CALL.messages),
        "temperature": 0.2,
        "max_tokens": 300,
    }
