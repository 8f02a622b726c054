"""Every route × every kind of caller: 401 for no/unknown/revoked/expired tokens, 403 for a
role without the permission, an answer for a role with it."""

from __future__ import annotations

from typing import Any

import pytest

from gatehouse_core.tokens import TokenStore
from tests.api.conftest import Api

ALL = {"admin", "operator", "viewer"}
ADMIN = {"admin"}
CHAT = {"admin", "operator"}
# (method, path, body, roles allowed)
ROUTES: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
    ("GET", "/api/v1/settings/providers", None, ADMIN),
    (
        "POST",
        "/api/v1/settings/providers",
        {"name": "extra", "type": "openrouter", "config": {"default_model": "test/extra"}},
        ADMIN,
    ),
    ("GET", "/api/v1/settings/providers/primary", None, ADMIN),
    ("PATCH", "/api/v1/settings/providers/backup", {"priority": 5}, ADMIN),
    ("DELETE", "/api/v1/settings/providers/absent", None, ADMIN),
    ("POST", "/api/v1/settings/providers/primary/test", None, ADMIN),
    ("POST", "/api/v1/chat", {"message": "hi"}, CHAT),
    ("POST", "/api/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, CHAT),
    ("GET", "/api/v1/models", None, ALL),
    ("GET", "/api/v1/requests", None, ALL),
    ("GET", "/api/v1/usage", None, ALL),
]
REFUSED = {
    None: "missing_token",
    "unknown": "invalid_token",
    "revoked": "token_revoked",
    "expired": "token_expired",
}


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ROUTES, ids=lambda v: str(v))
def test_route_admits_exactly_its_roles(
    api: Api, method: str, path: str, body: dict[str, Any] | None, allowed: set[str]
) -> None:
    api.secrets["unknown"] = "gh_" + "x" * 43
    wrong: list[str] = []
    for caller, code in REFUSED.items():
        with api.client(caller) as client:
            answer = client.request(method, path, json=body)
        error = answer.json().get("error", {}) if answer.status_code >= 400 else {}
        if (answer.status_code, error.get("code")) != (401, code):
            wrong.append(f"{caller}: {answer.status_code} {answer.text[:120]}")
    for role in sorted(ALL):
        with api.client(role) as client:
            answer = client.request(method, path, json=body)
        if role in allowed:
            expected_ok = answer.status_code < 400 or (
                method == "DELETE" and answer.status_code == 404
            )
            if not expected_ok:
                wrong.append(f"{role}: {answer.status_code} {answer.text[:200]}")
        elif (answer.status_code, answer.json()["error"]["code"]) != (403, "forbidden_role"):
            wrong.append(f"{role}: {answer.status_code} {answer.text[:120]}")
    assert wrong == []


def test_a_token_revoked_while_in_use_is_refused_on_its_next_call(api: Api) -> None:
    api.token("busy", "operator")
    with api.client("busy") as client:
        assert client.get("/api/v1/models").status_code == 200  # verified: now served from memory
        TokenStore(api.engine).revoke("busy", actor="test")  # another store, as the console's
        answer = client.get("/api/v1/models")
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "token_revoked")
