"""The server itself: OpenAPI at /api/v1/openapi.json, health, body cap, CORS off, error shape."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from gatehouse_core.api import ApiConfig, create_app
from gatehouse_core.api.health import head_revision, readiness
from gatehouse_core.api.server import mounted
from gatehouse_core.db import make_engine
from tests.api.conftest import Api, serve
from tests.fakes.openrouter import Reply

HELLO = [{"role": "user", "content": "Hello"}]


def test_openapi_document_is_served_at_api_v1_openapi_json(api: Api) -> None:
    with api.client() as client:
        answer = client.get("/api/v1/openapi.json")
        docs = client.get("/api/docs")
    assert answer.status_code == 200
    document = answer.json()
    assert document["servers"] == [{"url": "/api"}]  # paths below are relative to the mount
    assert {
        "/v1/settings/providers",
        "/v1/settings/providers/{name}",
        "/v1/settings/providers/{name}/test",
        "/v1/chat",
        "/v1/chat/completions",
        "/v1/models",
        "/v1/requests",
        "/v1/usage",
        "/healthz",
        "/readyz",
    } <= set(document["paths"])
    assert "GateHouseToken" in document["components"]["securitySchemes"]
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text


def test_every_path_of_the_document_is_served_under_its_server_url(api: Api) -> None:
    with api.client("admin") as client:
        document = client.get("/api/v1/openapi.json").json()
        for path, methods in document["paths"].items():
            if "get" in methods and "{" not in path:
                answer = client.get(document["servers"][0]["url"] + path)
                assert answer.status_code == 200, (path, answer.text)


@pytest.mark.parametrize("path", ["/healthz", "/api/healthz"])
def test_healthz_answers(api: Api, path: str) -> None:
    with api.client() as client:
        assert client.get(path).json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/readyz", "/api/readyz"])
def test_readyz_reports_the_current_revision(api: Api, path: str) -> None:
    with api.client() as client:
        answer = client.get(path)
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "revision": head_revision()}


def test_readiness_is_false_while_migrations_are_missing(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}", migrate=False)
    ok, detail = readiness(engine)
    assert not ok and "gatehouse migrate" in detail
    engine.dispose()


def test_readiness_is_false_when_the_database_is_unreachable() -> None:
    engine = make_engine("postgresql+psycopg://u:secret@127.0.0.1:1/db", migrate=False)
    ok, detail = readiness(engine)
    assert not ok and "not reachable" in detail and "secret" not in detail
    engine.dispose()


def test_a_body_over_the_cap_is_413(api: Api) -> None:
    big = {"messages": [{"role": "user", "content": "x" * 70_000}]}
    with api.client("operator") as client:
        answer = client.post("/api/v1/chat/completions", json=big)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "body_too_large"
    assert api.fake.chat_requests == []


def test_a_chunked_body_over_the_cap_is_413(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(70):
            yield b"x" * 1000
        yield b'"}]}'

    with api.client("operator") as client:
        answer = client.post(
            "/api/v1/chat/completions",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == 413
    assert api.fake.chat_requests == []


def test_a_chunked_body_under_the_cap_is_served(api: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"messages": [{"role": "user", '
        yield b'"content": "hi"}]}'

    with api.client("operator") as client:
        answer = client.post(
            "/api/v1/chat/completions",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == 200, answer.text


def test_cors_is_off_unless_configured(api: Api) -> None:
    with api.client() as client:
        preflight = client.options(
            "/api/v1/chat/completions",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        plain = client.get("/api/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in plain.headers


def test_cors_allows_only_the_configured_origins(api: Api) -> None:
    config = ApiConfig(threads=2, cors_origins=("https://console.example",))
    app = create_app(registry=api.registry, gateway=api.gateway, config=config)
    base_url, stop = serve(mounted(app))
    try:
        with httpx2.Client(base_url=base_url) as client:
            allowed = client.options(
                "/api/v1/chat",
                headers={
                    "Origin": "https://console.example",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,content-type",
                },
            )
            other = client.get("/api/healthz", headers={"Origin": "https://evil.example"})
    finally:
        stop()
    assert allowed.headers["access-control-allow-origin"] == "https://console.example"
    assert "access-control-allow-origin" not in other.headers


def test_unknown_endpoint_is_404_in_openai_shape_with_a_request_id(api: Api) -> None:
    with api.client("admin") as client:
        answer = client.get("/api/v1/nothing-here")
    assert answer.status_code == 404
    assert set(answer.json()["error"]) >= {"message", "type", "code"}
    assert answer.headers["X-GateHouse-Request-Id"]


class _BrokenGateway:
    """A gateway whose calls fail with a bug: what must a client see?"""

    limiter = None
    catalog = None
    queue_timeout = 1.0

    def chat(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom with sk-or-v1-leakedkey1234567890")


def test_an_unexpected_error_is_500_without_traceback_or_key(api: Api) -> None:
    app = create_app(registry=api.registry, gateway=_BrokenGateway(), tokens=api.tokens)
    base_url, stop = serve(mounted(app))
    try:
        with httpx2.Client(base_url=base_url) as client:
            answer = client.post(
                "/api/v1/chat",
                json={"message": "hi"},
                headers={"Authorization": f"Bearer {api.secrets['operator']}"},
            )
    finally:
        stop()
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("server_error", "internal_error")
    assert "RuntimeError" in error["message"]
    assert "leakedkey" not in answer.text and "Traceback" not in answer.text


def test_the_event_loop_serves_others_while_a_call_waits_upstream(api: Api) -> None:
    api.fake.enqueue(Reply(delay=5))
    done: list[int] = []

    def slow_call() -> None:
        with api.client("operator") as client:
            done.append(client.post("/api/v1/chat", json={"message": "hi"}).status_code)

    caller = threading.Thread(target=slow_call)
    caller.start()
    for _ in range(500):  # bounded: until the call is at the upstream
        if api.fake.chat_requests:
            break
        time.sleep(0.01)
    with api.client("viewer") as client:
        health = client.get("/api/healthz")
        models = client.get("/api/v1/models")
    assert (health.status_code, models.status_code) == (200, 200)
    assert done == []  # answered while the gateway call was still waiting upstream
    caller.join(30)
    assert done == [200]


def test_a_client_leaving_a_stream_cancels_it_and_audits_the_attempt(api: Api) -> None:
    api.fake.enqueue(Reply(text=" ".join(["word"] * 40), chunk_delay=0.05))
    with (
        api.client("operator") as client,
        client.stream(
            "POST", "/api/v1/chat/completions", json={"messages": HELLO, "stream": True}
        ) as answer,
    ):
        assert answer.status_code == 200
        next(answer.iter_lines())  # the first event, then hang up
    rows: list[Any] = []
    for _ in range(200):  # bounded: the pool thread notices at the next delta
        rows = api.audit_rows()
        if rows:
            break
        time.sleep(0.05)
    assert [(r.status, r.error_type, r.actor) for r in rows] == [
        ("incomplete", "cancelled", "token:operator")
    ]
