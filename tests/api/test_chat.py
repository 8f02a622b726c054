"""`POST /api/v1/chat`: the seed's second curl example, answered with the ChatResult."""

from __future__ import annotations

from gatehouse_core import ProviderConfig
from tests.api.conftest import Api
from tests.fakes.openrouter import DEFAULT_REPLY_TEXT, Drop, Error

# The seed's second curl example, verbatim:
#   curl -X POST http://localhost:8501/api/v1/chat \
#     -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
#     -d '{"message": "Hello", "model": "anthropic/claude-sonnet-4"}'
SEED_BODY = '{"message": "Hello", "model": "anthropic/claude-sonnet-4"}'


def test_seed_curl_answers_the_chat_result(api: Api) -> None:
    with api.client() as client:
        answer = client.post(
            "/api/v1/chat",
            headers={
                "Authorization": f"Bearer {api.secrets['operator']}",
                "Content-Type": "application/json",
            },
            content=SEED_BODY,
        )
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["text"] == DEFAULT_REPLY_TEXT
    assert (result["provider"], result["model"]) == ("primary", "anthropic/claude-sonnet-4")
    assert result["cost_source"] == "provider" and result["cost_usd"] > 0
    assert [a["status"] for a in result["attempts"]] == ["ok"]
    assert answer.headers["X-GateHouse-Request-Id"] == result["request_id"]
    assert answer.headers["X-GateHouse-Provider"] == "primary"
    assert api.fake.chat_requests[-1].body["messages"] == [{"role": "user", "content": "Hello"}]


def test_optional_fields_reach_the_gateway_and_the_audit(api: Api) -> None:
    with api.client("operator") as client:
        answer = client.post(
            "/api/v1/chat",
            json={
                "message": "Hi",
                "system": "Be brief",
                "provider": "backup",
                "max_tokens": 50,
                "temperature": 0.2,
                "workflow_id": "wf-1",
                "trace_id": "t-1",
            },
        )
    assert answer.status_code == 200, answer.text
    sent = api.fake.chat_requests[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief"}
    assert (sent["model"], sent["max_tokens"], sent["temperature"]) == ("test/backup", 50, 0.2)
    [row] = api.audit_rows()
    assert (row.provider, row.workflow_id, row.trace_id) == ("backup", "wf-1", "t-1")
    assert (row.actor, row.source) == ("token:operator", "api")


def test_unknown_provider_is_400(api: Api) -> None:
    with api.client("operator") as client:
        answer = client.post("/api/v1/chat", json={"message": "Hi", "provider": "absent"})
    assert answer.status_code == 400
    assert "does not exist" in answer.json()["error"]["message"]


def test_empty_message_is_422(api: Api) -> None:
    with api.client("operator") as client:
        answer = client.post("/api/v1/chat", json={"message": ""})
    assert answer.status_code == 422 and "message" in answer.json()["error"]["fields"]


def test_all_providers_failing_is_502_with_request_id_header(api: Api) -> None:
    api.fake.always(Error(500))
    with api.client("operator") as client:
        answer = client.post("/api/v1/chat", json={"message": "Hi"})
    assert answer.status_code == 502
    assert answer.headers["X-GateHouse-Provider"] == "backup"
    rows = api.audit_rows()
    assert {r.request_id for r in rows} == {answer.headers["X-GateHouse-Request-Id"]}


def test_no_provider_at_all_is_503(api: Api) -> None:
    for name in ("primary", "backup"):
        api.registry.remove(name, actor="test")
    with api.client("operator") as client:
        answer = client.post("/api/v1/chat", json={"message": "Hi"})
    assert answer.status_code == 503
    assert "No LLM provider is configured" in answer.json()["error"]["message"]


def test_providers_that_drop_the_connection_are_502_not_503(api: Api) -> None:
    # No HTTP status from any upstream, but calls were sent: the upstreams failed (502), the
    # service itself is not unavailable.
    api.fake.always(Drop())
    with api.client("operator") as client:
        answer = client.post("/api/v1/chat", json={"message": "Hi"})
    assert answer.status_code == 502
    assert {a["status"] for a in answer.json()["error"]["attempts"]} == {"error"}


def test_providers_without_keys_are_503(api: Api) -> None:
    api.registry.add(
        ProviderConfig(name="keyless", base_url=api.fake.base_url, default_model="test/k"),
        actor="test",
    )
    for name in ("primary", "backup"):
        api.registry.set_enabled(name, False, actor="test")
    with api.client("operator") as client:
        answer = client.post("/api/v1/chat", json={"message": "Hi"})
    assert answer.status_code == 503
    assert "set-key keyless" in answer.json()["error"]["message"]
