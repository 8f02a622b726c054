"""Gateway fixtures: the fake OpenRouter on loopback and a factory for wired gateways.

`gateway_factory("a", {"name": "b", "priority": 5})` stores those providers (each pointing at
the fake, with the fake's key and the default model `test/<name>`, so tests can script outcomes
by model) in this test's database and returns a `Gateway` whose backoff waits go to the
`sleeps` list instead of sleeping, with `rand` fixed at 0.5.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from gatehouse_core import Gateway, ProviderConfig, Registry
from gatehouse_core.crypto import SecretBox
from gatehouse_core.db import make_engine
from tests.fakes.openrouter import DEFAULT_KEY, FakeOpenRouter

RAND = 0.5


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """This test's database, once on SQLite and once on PostgreSQL."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A unique Redis key prefix; its keys are deleted after the test."""
    import redis

    name = f"gatehouse-test-{uuid.uuid4().hex[:12]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(autouse=True)
def restore_stdin() -> Iterator[None]:
    """CLI tests feed keys and passwords through sys.stdin (tests/core/cli.py)."""
    saved = sys.stdin
    yield
    sys.stdin = saved


@pytest.fixture
def fake_openrouter() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as fake:
        yield fake


@pytest.fixture
def sleeps() -> list[float]:
    """Every wait the gateway asked for, in order (the injected `sleep` appends here)."""
    return []


@pytest.fixture
def gateway_factory(
    fake_openrouter: FakeOpenRouter, sleeps: list[float]
) -> Iterator[Callable[..., Gateway]]:
    built: list[Gateway] = []

    def build(*providers: str | dict[str, Any], **gateway_kwargs: Any) -> Gateway:
        # GATEHOUSE_DATABASE_URL is this test's SQLite file, or its PostgreSQL database
        # when the test takes `postgres_url`/`db_url`.
        registry = Registry(make_engine(), SecretBox.from_env(), ttl=0)
        for index, spec in enumerate(providers or ("primary",), start=1):
            fields = {"name": spec} if isinstance(spec, str) else dict(spec)
            api_key = fields.pop("api_key", DEFAULT_KEY)
            fields.setdefault("base_url", fake_openrouter.base_url)
            fields.setdefault("default_model", f"test/{fields['name']}")
            fields.setdefault("priority", index)
            registry.add(ProviderConfig(**fields), actor="test", api_key=api_key)
        gateway_kwargs.setdefault("sleep", sleeps.append)
        gateway_kwargs.setdefault("rand", lambda: RAND)
        gateway = Gateway(registry, **gateway_kwargs)
        built.append(gateway)
        return gateway

    yield build
    for gateway in built:
        gateway.close()
        gateway.registry.engine.dispose()
