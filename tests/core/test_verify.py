"""verify_provider: GET /models for reachability, GET /key for the key, against the fake."""

from __future__ import annotations

import socket

import pytest

from gatehouse_core import NotFound, ProviderConfig, Registry, verify_provider
from gatehouse_core.crypto import SecretBox
from gatehouse_core.db import make_engine
from tests.fakes.openrouter import DEFAULT_KEY, FakeOpenRouter, KeyAccount


@pytest.fixture
def registry() -> Registry:
    return Registry(make_engine(), SecretBox.from_env(), ttl=0)


def add(registry: Registry, base_url: str, api_key: str | None = DEFAULT_KEY, **fields) -> None:
    config = ProviderConfig(
        name="primary", base_url=base_url, default_model="openai/gpt-4o-mini", **fields
    )
    registry.add(config, actor="test", api_key=api_key)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_reachable_provider_with_valid_key_reports_limit_and_usage(
    registry: Registry, fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.accounts[DEFAULT_KEY] = KeyAccount(limit=100.0, usage=25.5)
    add(registry, fake_openrouter.base_url)
    report = verify_provider(registry, "primary")
    assert report.reachable and report.key_valid and report.ok
    assert report.model_count == len(fake_openrouter.models)
    assert report.key_limit == 100.0 and report.key_usage == 25.5
    assert report.key_limit_remaining == pytest.approx(74.5)
    assert report.models_latency_ms is not None and report.models_latency_ms >= 0
    endpoints = [r.endpoint for r in fake_openrouter.requests]
    assert endpoints == ["/models", "/key"]


def test_rejected_key_is_reported_invalid_with_the_fix(
    registry: Registry, fake_openrouter: FakeOpenRouter
) -> None:
    add(registry, fake_openrouter.base_url, api_key="sk-or-v1-wrong-key-000000zzzz")
    report = verify_provider(registry, "primary")
    assert report.reachable is True
    assert report.key_valid is False and not report.ok
    assert "401" in report.error and "set-key" in report.error
    assert "sk-or-v1-wrong-key-000000zzzz" not in str(report.to_json())


def test_unreachable_provider_is_reported_not_raised(registry: Registry) -> None:
    add(registry, f"http://127.0.0.1:{closed_port()}/api/v1")
    report = verify_provider(registry, "primary", timeout=2.0)
    assert report.reachable is False and not report.ok
    assert "did not answer like an OpenAI-compatible API" in report.error


def test_provider_without_key_is_reachable_but_not_ok(
    registry: Registry, fake_openrouter: FakeOpenRouter
) -> None:
    add(registry, fake_openrouter.base_url, api_key=None)
    report = verify_provider(registry, "primary")
    assert report.reachable and report.key_valid is None and not report.ok
    assert "set-key primary" in report.error
    assert [r.endpoint for r in fake_openrouter.requests] == ["/models"]


def test_configured_attribution_headers_are_sent(
    registry: Registry, fake_openrouter: FakeOpenRouter
) -> None:
    add(
        registry,
        fake_openrouter.base_url,
        headers={"HTTP-Referer": "https://app.example", "X-Title": "GateHouse"},
    )
    verify_provider(registry, "primary")
    sent = fake_openrouter.requests[-1].headers
    assert sent["http-referer"] == "https://app.example" and sent["x-title"] == "GateHouse"


def test_unknown_provider_raises_not_found(registry: Registry) -> None:
    with pytest.raises(NotFound, match="No provider named 'ghost'"):
        verify_provider(registry, "ghost")


# ---- unexpected /key shapes, redirects, host rules, uniform errors ----------------------


@pytest.mark.parametrize(
    "body", [{"data": [{"limit": 1}]}, [1, 2], "text", {"data": {"limit": "10", "usage": None}}]
)
def test_unexpected_key_shapes_read_as_valid_with_unknown_limits(
    registry: Registry, fake_openrouter: FakeOpenRouter, body: object
) -> None:
    fake_openrouter.key_body = body
    add(registry, fake_openrouter.base_url)
    report = verify_provider(registry, "primary")
    assert report.ok and report.key_valid is True
    assert report.key_limit is None and report.key_usage is None


def test_a_redirect_from_models_is_not_followed(
    registry: Registry, fake_openrouter: FakeOpenRouter
) -> None:
    with FakeOpenRouter() as elsewhere:
        fake_openrouter.models_redirect_to = elsewhere.base_url + "/models"
        add(registry, fake_openrouter.base_url)
        report = verify_provider(registry, "primary")
        assert not report.ok and "did not answer like an OpenAI-compatible API" in report.error
        assert elsewhere.requests == []


def test_a_host_outside_the_allow_list_is_never_contacted(
    registry: Registry, fake_openrouter: FakeOpenRouter
) -> None:
    add(registry, fake_openrouter.base_url)
    report = verify_provider(registry, "primary", env={"GATEHOUSE_PROVIDER_HOSTS": "x.example"})
    assert not report.ok and "not an allowed provider host" in report.error
    assert fake_openrouter.requests == []


def test_a_name_resolving_to_a_metadata_address_is_refused_without_connecting() -> None:
    from gatehouse_core.hosts import host_error

    def resolver(host: str) -> list[str]:
        assert host == "rebind.example"
        return ["93.184.216.34", "169.254.169.254"]

    problem = host_error("https://rebind.example/v1", {}, resolve=True, resolver=resolver)
    assert problem is not None and "not an allowed provider host" in problem
    assert (
        host_error("https://ok.example/v1", {}, resolve=True, resolver=lambda h: ["10.0.0.1"])
        is None
    )


def _serve_once_forever(reply: bytes) -> tuple[socket.socket, int]:
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def loop() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(reply)
                except OSError:
                    pass

    threading.Thread(target=loop, daemon=True).start()
    return server, server.getsockname()[1]


def test_errors_do_not_tell_refused_non_http_and_http_ports_apart(registry: Registry) -> None:
    ssh, ssh_port = _serve_once_forever(b"SSH-2.0-OpenSSH_9.6\r\n")
    web, web_port = _serve_once_forever(
        b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 9\r\n"
        b"Connection: close\r\n\r\nnot found"
    )
    ok_page, ok_port = _serve_once_forever(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\n"
        b"Connection: close\r\n\r\n<html>"
    )
    texts = set()
    try:
        for port in (closed_port(), ssh_port, web_port, ok_port):
            name = f"p{port}"
            registry.add(
                ProviderConfig(
                    name=name,
                    base_url=f"http://127.0.0.1:{port}/v1",
                    default_model="openai/gpt-4o-mini",
                    priority=1,
                ),
                actor="t",
            )
            report = verify_provider(registry, name, timeout=3.0)
            texts.add(report.error.replace(str(port), "PORT"))
    finally:
        ssh.close()
        web.close()
        ok_page.close()
    assert len(texts) == 1, texts
