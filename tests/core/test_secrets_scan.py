"""Secrets scan: a full run with DEBUG logging through the CLI, the library and the HTTP API,
then every log line, every output, every HTTP response (body and headers), every exception text
and a dump of every table are searched for each secret and every 12-character piece of it:
the provider API keys, the API token and the admin password. The browser part (console pages)
is tests/e2e/test_secrets_scan_pages.py."""

from __future__ import annotations

import logging
import secrets
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2
import pytest
from sqlalchemy import create_engine, inspect, text

from gatehouse_core import Gateway, GatewayError, Registry
from gatehouse_core.api import ApiConfig, create_app
from gatehouse_core.api.server import mounted
from gatehouse_core.audit import AuditWriter
from gatehouse_core.crypto import SecretBox
from gatehouse_core.db import make_engine
from gatehouse_core.ratelimit import RateLimiter
from tests.api.conftest import serve
from tests.core.cli import run
from tests.fakes.openrouter import FakeOpenRouter

PIECE = 12  # any run of this many characters of a secret counts as a leak


def new_key() -> str:
    return f"sk-or-v1-{secrets.token_hex(32)}"


GOOD_KEY, BAD_KEY, POSTED_KEY = new_key(), new_key(), new_key()
PASSWORD = f"Adm1n-{secrets.token_urlsafe(18)}"


def pieces(secret: str) -> set[str]:
    return {secret[i : i + PIECE] for i in range(len(secret) - PIECE + 1)}


@dataclass
class Evidence:
    """Everything a person or a log pipeline could see during the run, by where it came from."""

    seen: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, content: object) -> None:
        self.seen.append((where, content if isinstance(content, str) else repr(content)))

    def leaks(self, named: dict[str, str]) -> list[str]:
        found = []
        for name, secret in named.items():
            needles = pieces(secret)
            for where, content in self.seen:
                if any(needle in content for needle in needles):
                    found.append(f"{name} in {where}")  # never the secret itself
        return sorted(set(found))


class RecordingHandler(logging.Handler):
    """Every record at DEBUG and up, formatted with the worst case: no scrubbing formatter,
    the message, its structured fields and its traceback."""

    def __init__(self, evidence: Evidence) -> None:
        super().__init__(logging.DEBUG)
        self.evidence = evidence
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        extra = getattr(record, "fields", None)
        self.evidence.add(f"log line ({record.name})", f"{line} {extra!r} {record.args!r}")


@pytest.fixture
def evidence(monkeypatch: pytest.MonkeyPatch) -> Iterator[Evidence]:
    evidence = Evidence()
    handler = RecordingHandler(evidence)
    loggers = [logging.getLogger(), logging.getLogger("gatehouse")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    monkeypatch.setenv("GATEHOUSE_LOG_LEVEL", "DEBUG")
    try:
        yield evidence
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def cli(
    capsys: pytest.CaptureFixture[str], evidence: Evidence, *argv: str, stdin: str | None = None
) -> str:
    code, out, err = run(capsys, *argv, stdin=stdin)
    evidence.add(f"`gatehouse {' '.join(argv)}` (exit {code})", out + err)
    return out


def exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(getattr(exc, "attempts", None))


def dump_tables(url: str) -> dict[str, str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table: repr(conn.execute(text(f'SELECT * FROM "{table}"')).all())
                for table in inspect(conn).get_table_names()
            }
    finally:
        engine.dispose()


def run_cli(capsys: pytest.CaptureFixture[str], evidence: Evidence, fake: FakeOpenRouter) -> str:
    """Providers, users, a token and chats through the CLI; returns the API token."""
    for name, key, priority in (("good", GOOD_KEY, "1"), ("bad", BAD_KEY, "2")):
        cli(
            capsys, evidence, "providers", "add", name, "--base-url", fake.base_url,
            "--model", f"test/{name}", "--priority", priority, "--api-key-stdin", stdin=key,
        )  # fmt: skip
    cli(capsys, evidence, "providers", "list")
    cli(capsys, evidence, "providers", "list", "--json")
    for name in ("good", "bad"):
        cli(capsys, evidence, "providers", "show", name)
        cli(capsys, evidence, "providers", "show", name, "--json")
        cli(capsys, evidence, "providers", "test", name)
    cli(capsys, evidence, "chat", "hello from the cli")
    cli(capsys, evidence, "chat", "hello again", "--json", "--stream")
    cli(capsys, evidence, "chat", "through the bad key first", "--provider", "bad", "--json")
    cli(capsys, evidence, "users", "add", "root", "--role", "admin", stdin=f"{PASSWORD}\n")
    cli(capsys, evidence, "users", "list", "--json")
    # `tokens create` prints the token once, on purpose: that output is the one place it may be
    code, out, err = run(capsys, "tokens", "create", "ci", "--role", "admin")
    assert code == 0, err
    token = next(word for word in out.split() if word.startswith("gh_"))
    cli(capsys, evidence, "tokens", "list", "--json")
    cli(capsys, evidence, "history")
    return token


def run_library(evidence: Evidence, registry: Registry, tmp_path: Path) -> None:
    gateway = Gateway(
        registry,
        limiter=RateLimiter(),
        audit=AuditWriter(registry.engine, spill_dir=tmp_path / "spill-lib"),
        sleep=lambda s: None,
    )
    try:
        evidence.add("library chat", gateway.chat([{"role": "user", "content": "hi"}]))
        evidence.add("library stream", list(gateway.stream([{"role": "user", "content": "hi"}])))
        fell_back = gateway.chat([{"role": "user", "content": "401 first"}], provider="bad")
        evidence.add("library chat after a 401", fell_back)
        registry.set_enabled("good", False, actor="test")
        for attempt in (
            lambda: gateway.chat([{"role": "user", "content": "only the bad key"}]),
            lambda: list(gateway.stream([{"role": "user", "content": "only the bad key"}])),
        ):
            with pytest.raises(GatewayError) as failed:
                attempt()
            evidence.add("library exception", exception_text(failed.value))
        registry.set_enabled("good", True, actor="test")
    finally:
        gateway.close()


def run_http(evidence: Evidence, registry: Registry, token: str, tmp_path: Path) -> None:
    gateway = Gateway(
        registry,
        limiter=RateLimiter(),
        audit=AuditWriter(registry.engine, spill_dir=tmp_path / "spill-api"),
        sleep=lambda s: None,
    )
    app = create_app(registry=registry, gateway=gateway, config=ApiConfig(threads=4, timeout=30))
    base_url, stop = serve(mounted(app))
    headers = {"Authorization": f"Bearer {token}"}
    wrong = {"Authorization": f"Bearer {token[:-4]}AAAA"}
    chat = {"message": "hello over http"}
    completion = {"model": "test/good", "messages": [{"role": "user", "content": "hi"}]}
    posted = {"name": "posted", "config": {"api_key": POSTED_KEY, "default_model": "test/x"}}
    bad_body = {"name": "posted", "config": {"api_key": POSTED_KEY, "base_url": "ftp://x"}}
    extra_field = {"name": "posted", "config": {"api_key": POSTED_KEY, "apikey": POSTED_KEY}}
    calls = [
        ("GET", "/api/v1/settings/providers", headers, None),
        ("GET", "/api/v1/settings/providers/good", headers, None),
        ("POST", "/api/v1/settings/providers", headers, posted),
        ("POST", "/api/v1/settings/providers", headers, bad_body),
        ("POST", "/api/v1/settings/providers", headers, extra_field),
        ("POST", "/api/v1/settings/providers/good/test", headers, None),
        ("POST", "/api/v1/settings/providers/bad/test", headers, None),
        ("POST", "/api/v1/chat", headers, chat),
        ("POST", "/api/v1/chat", headers, {**chat, "provider": "bad"}),
        ("POST", "/api/v1/chat/completions", headers, completion),
        ("POST", "/api/v1/chat/completions", headers, {**completion, "stream": True}),
        ("POST", "/api/v1/chat/completions", headers, {**completion, "model": "test/bad"}),
        ("GET", "/api/v1/requests", headers, None),
        ("GET", "/api/v1/settings/providers", wrong, None),
        ("POST", "/api/v1/chat", wrong, chat),
    ]
    try:
        with httpx2.Client(base_url=base_url, timeout=30) as client:
            for method, path, sent_headers, body in calls:
                answer = client.request(method, path, headers=sent_headers, json=body)
                evidence.add(
                    f"HTTP {method} {path} ({answer.status_code})",
                    f"{dict(answer.headers)!r}\n{answer.text}",
                )
            registry.set_enabled("good", False, actor="test")
            for method, path, body in (
                ("POST", "/api/v1/chat", chat),
                ("POST", "/api/v1/chat/completions", completion),
            ):
                answer = client.request(method, path, headers=headers, json=body)
                assert answer.status_code >= 400
                evidence.add(f"HTTP {method} {path} error ({answer.status_code})", answer.text)
            registry.set_enabled("good", True, actor="test")
    finally:
        stop()
        gateway.close()


def test_no_secret_or_piece_of_one_appears_anywhere_after_a_debug_run(
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    evidence: Evidence,
    tmp_path: Path,
) -> None:
    with FakeOpenRouter(valid_keys={GOOD_KEY}) as fake:
        token = run_cli(capsys, evidence, fake)
        engine = make_engine(db_url)
        registry = Registry(engine, SecretBox.from_env(), ttl=0)
        run_library(evidence, registry, tmp_path)
        run_http(evidence, registry, token, tmp_path)
        # The upstream saw the good key (it is sent where it belongs, and nowhere else).
        assert any(r.api_key == GOOD_KEY for r in fake.chat_requests)
        engine.dispose()
    evidence.add("stdout/stderr left over", "".join(capsys.readouterr()))
    for table, rows in dump_tables(db_url).items():
        evidence.add(f"table {table}", rows)
    if db_url.startswith("sqlite"):
        raw = b"".join(f.read_bytes() for f in sorted(tmp_path.glob("gatehouse.db*")))
        evidence.add("SQLite file bytes", raw.decode("latin-1"))

    assert len(evidence.seen) > 50  # the run really produced output to scan
    named = {
        "the good provider key": GOOD_KEY,
        "the rejected provider key": BAD_KEY,
        "the key posted over HTTP": POSTED_KEY,
        "the API token": token,
        "the admin password": PASSWORD,
    }
    assert evidence.leaks(named) == []


def test_the_scan_finds_any_twelve_characters_of_a_secret_and_names_only_where() -> None:
    evidence = Evidence()
    evidence.add("a masked key", "sk-or-…" + GOOD_KEY[-4:])
    evidence.add("a log line", f"url=https://x/?k={GOOD_KEY[20 : 20 + PIECE]}&")

    leaks = evidence.leaks({"the key": GOOD_KEY})

    assert leaks == ["the key in a log line"]
