"""`gatehouse serve`: the API alone under uvicorn; SIGTERM lets calls in flight finish and keeps
their audit rows."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import select

from gatehouse_core import ProviderConfig, Registry
from gatehouse_core.crypto import SecretBox
from gatehouse_core.db import make_engine
from gatehouse_core.schema import LLMRequest
from gatehouse_core.tokens import TokenStore
from tests.fakes.openrouter import DEFAULT_KEY, FakeOpenRouter, Reply

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(fake_openrouter: FakeOpenRouter) -> Iterator[tuple[str, str, subprocess.Popen]]:
    engine = make_engine()
    Registry(engine, SecretBox.from_env()).add(
        ProviderConfig(name="primary", base_url=fake_openrouter.base_url, default_model="test/a"),
        actor="test",
        api_key=DEFAULT_KEY,
    )
    _, token = TokenStore(engine).create("ci", "operator", actor="test")
    engine.dispose()
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatehouse_core", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                time.sleep(0.1)
        assert proc.poll() is None, proc.communicate(timeout=5)
        yield base, token, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_serve_answers_the_api_under_api_v1(served: tuple[str, str, subprocess.Popen]) -> None:
    base, token, _ = served
    document = httpx2.get(f"{base}/api/v1/openapi.json", timeout=10).json()
    assert document["servers"] == [{"url": "/api"}] and "/v1/chat/completions" in document["paths"]
    answer = httpx2.post(
        f"{base}/api/v1/chat",
        json={"message": "hi"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=20,
    )
    assert answer.status_code == 200 and answer.json()["provider"] == "primary"
    assert httpx2.get(f"{base}/readyz", timeout=10).json()["status"] == "ready"


def test_sigterm_finishes_the_call_in_flight_and_keeps_its_audit_row(
    served: tuple[str, str, subprocess.Popen], fake_openrouter: FakeOpenRouter
) -> None:
    base, token, proc = served
    fake_openrouter.enqueue(Reply(delay=1.5))
    answers: list[httpx2.Response] = []
    caller = threading.Thread(
        target=lambda: answers.append(
            httpx2.post(
                f"{base}/api/v1/chat",
                json={"message": "slow"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
        )
    )
    caller.start()
    deadline = time.monotonic() + 20
    while not fake_openrouter.chat_requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake_openrouter.chat_requests, "the call never reached the upstream"
    proc.send_signal(signal.SIGTERM)
    caller.join(30)
    # uvicorn shuts down gracefully, then re-raises the signal: the exit status is -SIGTERM.
    assert proc.wait(30) in (0, -signal.SIGTERM)
    assert [a.status_code for a in answers] == [200]
    engine = make_engine()
    with engine.connect() as conn:
        rows = conn.execute(select(LLMRequest.actor, LLMRequest.status)).all()
    engine.dispose()
    assert [(r.actor, r.status) for r in rows] == [("token:ci", "ok")]
