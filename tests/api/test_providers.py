"""`/api/v1/settings/providers`: the seed's body, write-only keys, per-field 422s, audit."""

from __future__ import annotations

from sqlalchemy import select

from gatehouse_core.schema import ProviderSecret, SettingsAudit
from tests.api.conftest import Api
from tests.fakes.openrouter import DEFAULT_KEY

# The seed's first curl example, verbatim:
#   curl -X POST http://localhost:8501/api/v1/settings/providers \
#     -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
#     -d '{"name": "openrouter", "type": "openrouter", "config": {"api_key": "sk-or-v1-...", "default_model": "anthropic/claude-sonnet-4"}}'
SEED_BODY = (
    '{"name": "openrouter", "type": "openrouter", "config": {"api_key": "sk-or-v1-...", '
    '"default_model": "anthropic/claude-sonnet-4"}}'
)


def _post_seed(api: Api, token: str):  # type: ignore[no-untyped-def]
    with api.client() as client:
        return client.post(
            "/api/v1/settings/providers",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            content=SEED_BODY,
        )


def test_seed_curl_creates_the_provider_with_its_key_encrypted(api: Api) -> None:
    answer = _post_seed(api, api.secrets["admin"])
    assert answer.status_code == 201, answer.text
    view = answer.json()
    assert view["name"] == "openrouter" and view["type"] == "openrouter"
    assert view["config"]["default_model"] == "anthropic/claude-sonnet-4"
    assert view["config"]["base_url"] == "https://openrouter.ai/api/v1"
    assert view["api_key"] == "sk-or-…-..." and "sk-or-v1-..." not in answer.text
    assert api.registry.api_key("openrouter") == "sk-or-v1-..."
    with api.engine.connect() as conn:
        stored = conn.execute(select(ProviderSecret.ciphertext)).scalars().all()
    assert all("sk-or-v1-..." not in c for c in stored)


def test_posting_an_existing_name_updates_it(api: Api) -> None:
    assert _post_seed(api, api.secrets["admin"]).status_code == 201
    with api.client("admin") as client:
        answer = client.post(
            "/api/v1/settings/providers",
            json={"name": "openrouter", "config": {"default_model": "openai/gpt-4o"}},
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["config"]["default_model"] == "openai/gpt-4o"
    assert api.registry.api_key("openrouter") == "sk-or-v1-..."  # the key stays


def test_every_change_is_audited_with_the_token_as_actor(api: Api) -> None:
    _post_seed(api, api.secrets["admin"])
    with api.client("admin") as client:
        client.patch("/api/v1/settings/providers/openrouter", json={"enabled": False})
        client.delete("/api/v1/settings/providers/openrouter")
    with api.engine.connect() as conn:
        rows = conn.execute(
            select(SettingsAudit.actor, SettingsAudit.action, SettingsAudit.after)
            .where(SettingsAudit.target == "openrouter")
            .order_by(SettingsAudit.id)
        ).all()
    assert [(r.actor, r.action) for r in rows] == [
        ("token:admin", "provider.create"),
        ("token:admin", "provider.update"),
        ("token:admin", "provider.delete"),
    ]
    assert "sk-or-v1-..." not in str(rows)


def test_validation_errors_are_422_with_the_registry_message_per_field(api: Api) -> None:
    with api.client("admin") as client:
        answer = client.post(
            "/api/v1/settings/providers",
            json={
                "name": "Bad Name",
                "type": "nope",
                "config": {"default_model": "not-a-model", "base_url": "ftp://x"},
            },
        )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["fields"]) >= {"name", "type", "default_model", "base_url"}
    assert "is not a model id" in error["fields"]["default_model"]
    assert [v.name for v in api.registry.providers()] == ["primary", "backup"]  # nothing saved


def test_unknown_body_fields_are_422_naming_them(api: Api) -> None:
    with api.client("admin") as client:
        answer = client.post(
            "/api/v1/settings/providers", json={"name": "x", "config": {"apikey": "sk-or-v1-zz"}}
        )
    assert answer.status_code == 422
    assert "config.apikey" in answer.json()["error"]["fields"]
    assert "sk-or-v1-zz" not in answer.text


def test_list_and_get_show_keys_masked(api: Api) -> None:
    with api.client("admin") as client:
        listed = client.get("/api/v1/settings/providers").json()
        one = client.get("/api/v1/settings/providers/backup").json()
    assert [p["name"] for p in listed] == ["primary", "backup"]
    assert {p["api_key"] for p in listed} == {"sk-or-…a1b2"} and one["api_key"] == "sk-or-…a1b2"


def test_patch_changes_only_the_fields_given(api: Api) -> None:
    with api.client("admin") as client:
        answer = client.patch(
            "/api/v1/settings/providers/backup",
            json={"config": {"rate_limit": {"requests_per_minute": 30}}},
        )
    assert answer.status_code == 200, answer.text
    config = answer.json()["config"]
    assert config["rate_limit"] == {"requests_per_minute": 30}
    assert config["default_model"] == "test/backup"


def test_patch_can_replace_the_key_alone(api: Api) -> None:
    with api.client("admin") as client:
        answer = client.patch(
            "/api/v1/settings/providers/backup", json={"config": {"api_key": "sk-or-v1-new-9999"}}
        )
    assert answer.status_code == 200 and answer.json()["api_key"] == "sk-or-…9999"
    assert api.registry.api_key("backup") == "sk-or-v1-new-9999"


def test_unknown_provider_is_404(api: Api) -> None:
    with api.client("admin") as client:
        answer = client.get("/api/v1/settings/providers/absent")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


def test_delete_removes_the_provider_and_its_key(api: Api) -> None:
    with api.client("admin") as client:
        answer = client.delete("/api/v1/settings/providers/backup")
    assert answer.status_code == 200 and answer.json() == {"name": "backup", "deleted": True}
    assert [v.name for v in api.registry.providers()] == ["primary"]


def test_test_endpoint_checks_models_and_key(api: Api) -> None:
    with api.client("admin") as client:
        report = client.post("/api/v1/settings/providers/primary/test").json()
    assert report["ok"] is True and report["reachable"] is True and report["key_valid"] is True
    assert DEFAULT_KEY not in str(report)


def test_patch_without_changes_is_400(api: Api) -> None:
    with api.client("admin") as client:
        answer = client.patch("/api/v1/settings/providers/backup", json={})
    assert answer.status_code == 400
    assert "nothing to update" in answer.json()["error"]["message"]
