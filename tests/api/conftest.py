"""A real API server on a loopback port (uvicorn in a thread) over the fake OpenRouter.

`api` gives the server's base URL (the API mounted at /api as `gatehouse serve` and the console
do), the core objects behind it, and one token per kind of caller: `admin`, `operator`,
`viewer`, `revoked`, `expired`. Providers `primary` (default) and `backup` point at the fake
with models `test/primary` and `test/backup`, so tests script outcomes by model.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx2
import pytest
import uvicorn
from sqlalchemy import Engine, select

from gatehouse_core import Gateway, ProviderConfig, Registry
from gatehouse_core.api import ApiConfig, create_app
from gatehouse_core.api.server import mounted
from gatehouse_core.audit import AuditWriter
from gatehouse_core.crypto import SecretBox
from gatehouse_core.db import make_engine
from gatehouse_core.ratelimit import RateLimiter
from gatehouse_core.schema import LLMRequest, utcnow
from gatehouse_core.tokens import TokenStore
from tests.fakes.openrouter import DEFAULT_KEY, FakeOpenRouter

ROLES = ("admin", "operator", "viewer")


@dataclass
class Api:
    base_url: str  # http://127.0.0.1:PORT (the API is under /api)
    fake: FakeOpenRouter
    registry: Registry
    gateway: Gateway
    tokens: TokenStore
    app: Any = None
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def engine(self) -> Engine:
        return self.registry.engine

    @property
    def v1(self) -> str:
        return f"{self.base_url}/api/v1"

    def client(self, who: str | None = None, **kwargs: Any) -> httpx2.Client:
        headers = {"Authorization": f"Bearer {self.secrets[who]}"} if who else {}
        return httpx2.Client(base_url=self.base_url, headers=headers, timeout=30, **kwargs)

    def token(self, name: str, role: str = "operator", **limits: Any) -> str:
        _, secret = self.tokens.create(name, role, actor="test", **limits)
        self.secrets[name] = secret
        return secret

    def open_reservations(self, token: str) -> float:
        """USD the running app's budgets hold for calls in flight made with `token`."""
        return self.gateway.budgets.open_reservations().get(f"token:{token}", 0.0)

    def audit_rows(self) -> list[LLMRequest]:
        assert self.gateway.audit.flush(10)
        with self.engine.connect() as conn:
            return list(conn.execute(select(LLMRequest.__table__).order_by(LLMRequest.id)))


def serve(asgi: Any) -> tuple[str, Callable[[], None]]:
    """Run `asgi` under uvicorn on a free loopback port; returns (base URL, stop)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(asgi, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the API server did not start within 15 s"

    def stop() -> None:
        server.should_exit = True
        thread.join(15)
        sock.close()

    return f"http://127.0.0.1:{port}", stop


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as fake:
        yield fake


@pytest.fixture
def api_config() -> ApiConfig:
    """Override in a test module to change the server's limits."""
    return ApiConfig(threads=8, timeout=30, max_body_bytes=64 * 1024)


@pytest.fixture
def api(fake: FakeOpenRouter, api_config: ApiConfig, tmp_path: Any) -> Iterator[Api]:
    engine = make_engine()
    registry = Registry(engine, SecretBox.from_env(), ttl=0)
    for priority, name in enumerate(("primary", "backup"), start=1):
        registry.add(
            ProviderConfig(
                name=name,
                base_url=fake.base_url,
                default_model=f"test/{name}",
                priority=priority,
            ),
            actor="test",
            api_key=DEFAULT_KEY,
        )
    gateway = Gateway(
        registry,
        limiter=RateLimiter(),
        audit=AuditWriter(engine, spill_dir=tmp_path / "spill"),
        sleep=lambda seconds: None,
        rand=lambda: 0.5,
    )
    tokens = TokenStore(engine)
    app = create_app(registry=registry, gateway=gateway, tokens=tokens, config=api_config)
    base_url, stop = serve(mounted(app))
    handle = Api(base_url, fake, registry, gateway, tokens, app)
    for role in ROLES:
        handle.token(role, role)
    handle.token("revoked", "admin")
    tokens.revoke("revoked", actor="test")
    past = TokenStore(engine, clock=lambda: utcnow() - timedelta(hours=2))
    _, handle.secrets["expired"] = past.create("expired", "admin", actor="test", expires="1h")
    try:
        yield handle
    finally:
        stop()
        gateway.close()
        engine.dispose()
