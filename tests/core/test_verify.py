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
    assert "connection failed" in report.error


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
