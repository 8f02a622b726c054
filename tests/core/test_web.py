"""The console's own HTTP routes (gatehouse_core/web): security headers, /healthz, /readyz,
the session cookie hand-off and sign-out. Driven as ASGI in-process (a real Starlette app
and a real database; the browser side is in tests/e2e/test_sessions.py)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from http.cookies import SimpleCookie

import pytest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.middleware import Middleware

from gatehouse_core.db import make_engine
from gatehouse_core.errors import DatabaseUnavailable
from gatehouse_core.sessions import COOKIE_NAME, SessionStore
from gatehouse_core.web.headers import SecurityHeaders, content_security_policy
from gatehouse_core.web.health import head_revision, health_routes
from gatehouse_core.web.signin import signin_routes

ORIGIN = "http://console.test"


@dataclass
class Reply:
    status: int
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str:
        return ", ".join(self.headers.get(name, []))

    def json(self) -> object:
        return json.loads(self.body)


def call(
    app: Starlette,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    scheme: str = "http",
) -> Reply:
    """One HTTP request through the ASGI app (with its lifespan skipped: routes only)."""
    raw = [(b"host", b"console.test")] + [
        (k.lower().encode(), v.encode()) for k, v in (headers or {}).items()
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw,
        "client": ("127.0.0.1", 5000),
        "server": ("console.test", 80),
    }
    reply = Reply(0)
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:  # the client stays connected until the response is complete
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            reply.status = message["status"]
            for k, v in message.get("headers", []):
                reply.headers.setdefault(k.decode().lower(), []).append(v.decode())
        elif message["type"] == "http.response.body":
            reply.body += message.get("body", b"")

    asyncio.run(app(scope, receive, send))
    return reply


@pytest.fixture
def sessions(db_url: str) -> SessionStore:
    return SessionStore(make_engine(db_url))


@pytest.fixture
def app(sessions: SessionStore) -> Starlette:
    return Starlette(
        routes=[*signin_routes(lambda: sessions), *health_routes(lambda: sessions.engine)],
        middleware=[Middleware(SecurityHeaders)],
    )


def cookie_of(reply: Reply) -> SimpleCookie:
    jar = SimpleCookie()
    for line in reply.headers.get("set-cookie", []):
        jar.load(line)
    return jar


# ---- security headers ----------------------------------------------------------------------


def test_every_response_carries_the_security_headers(app: Starlette) -> None:
    for method, path in (("GET", "/healthz"), ("GET", "/nowhere"), ("POST", "/auth/session")):
        reply = call(app, method, path)
        assert reply.header("x-frame-options") == "DENY"
        assert reply.header("x-content-type-options") == "nosniff"
        assert reply.header("referrer-policy") == "no-referrer"
        csp = reply.header("content-security-policy")
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp


def test_csp_allows_only_this_origin_for_scripts_and_never_framing() -> None:
    csp = dict(d.strip().split(" ", 1) for d in content_security_policy().split(";"))
    assert csp["script-src"].startswith("'self'")
    assert "'unsafe-inline'" not in csp["script-src"] and "'unsafe-eval'" not in csp["script-src"]
    assert all("http" not in value for value in csp.values())  # no CDN anywhere
    assert csp["object-src"] == "'none'" and csp["frame-ancestors"] == "'none'"


# ---- health and readiness ----------------------------------------------------------------------


def test_healthz_answers_while_the_process_lives(app: Starlette) -> None:
    reply = call(app, "GET", "/healthz")
    assert (reply.status, reply.json()) == (200, {"status": "ok"})


def test_readyz_is_ready_with_a_migrated_database(app: Starlette) -> None:
    reply = call(app, "GET", "/readyz")
    assert reply.status == 200
    assert reply.json() == {"status": "ok", "database": "ok", "migrations": head_revision()}


def test_readyz_is_503_when_migrations_are_behind(app: Starlette, sessions: SessionStore) -> None:
    with sessions.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0003_users'"))
    reply = call(app, "GET", "/readyz")
    assert reply.status == 503
    assert (
        "at 0003_users" in reply.json()["migrations"]
        and "gatehouse migrate" in reply.json()["migrations"]
    )


def test_readyz_is_503_naming_an_unreachable_database_without_its_password() -> None:
    def engine():
        raise DatabaseUnavailable("Cannot reach the database postgresql://u:***@127.0.0.1:1/x")

    app = Starlette(routes=health_routes(engine))
    reply = call(app, "GET", "/readyz")
    assert reply.status == 503
    assert reply.json()["status"] == "unavailable" and "***" in reply.json()["database"]


# ---- the cookie hand-off and sign-out ------------------------------------------------------------


def handoff(app: Starlette, ticket: str, **kw: object) -> Reply:
    headers = {"origin": ORIGIN, "content-type": "application/json"}
    headers.update(kw.pop("headers", {}))  # type: ignore[arg-type]
    return call(
        app,
        "POST",
        "/auth/session",
        headers=headers,
        body=json.dumps({"ticket": ticket}).encode(),
        **kw,
    )  # type: ignore[arg-type]


def test_ticket_becomes_an_httponly_strict_cookie(app: Starlette, sessions: SessionStore) -> None:
    new = sessions.create("alice", "admin")
    reply = handoff(app, new.ticket)
    assert reply.status == 204
    morsel = cookie_of(reply)[COOKIE_NAME]
    assert morsel["httponly"] and morsel["samesite"].lower() == "strict" and not morsel["secure"]
    assert morsel["path"] == "/"
    assert int(morsel["max-age"]) == int(sessions.policy.max_age.total_seconds())
    info = sessions.resolve(morsel.value)
    assert info is not None and info.username == "alice"
    assert handoff(app, new.ticket).status == 400  # spent


def test_cookie_is_secure_over_https(app: Starlette, sessions: SessionStore) -> None:
    reply = handoff(
        app,
        sessions.create("alice", "admin").ticket,
        scheme="https",
        headers={"origin": "https://console.test"},
    )
    assert cookie_of(reply)[COOKIE_NAME]["secure"]


@pytest.mark.parametrize(
    "headers",
    [{"origin": "http://evil.example"}, {}, {"sec-fetch-site": "cross-site"}],
    ids=["other-origin", "no-origin", "cross-site-fetch"],
)
def test_cross_site_hand_off_is_refused(
    app: Starlette, sessions: SessionStore, headers: dict[str, str]
) -> None:
    new = sessions.create("alice", "admin")
    reply = call(
        app,
        "POST",
        "/auth/session",
        headers=headers,
        body=json.dumps({"ticket": new.ticket}).encode(),
    )
    assert reply.status == 403 and "set-cookie" not in reply.headers
    assert handoff(app, new.ticket).status == 204  # the ticket was not spent by the refusal


def test_garbage_body_is_a_clear_400(app: Starlette) -> None:
    reply = call(app, "POST", "/auth/session", headers={"origin": ORIGIN}, body=b"\xff{not json")
    assert reply.status == 400 and "sign in again" in reply.json()["error"]


def test_sign_out_revokes_server_side_and_clears_the_cookie(
    app: Starlette, sessions: SessionStore
) -> None:
    token = cookie_of(handoff(app, sessions.create("alice", "admin").ticket))[COOKIE_NAME].value
    refused = call(
        app,
        "POST",
        "/auth/signout",
        headers={"origin": "http://evil.example", "cookie": f"{COOKIE_NAME}={token}"},
    )
    assert refused.status == 403 and sessions.resolve(token) is not None
    reply = call(
        app, "POST", "/auth/signout", headers={"origin": ORIGIN, "cookie": f"{COOKIE_NAME}={token}"}
    )
    assert reply.status == 204
    cleared = cookie_of(reply)[COOKIE_NAME]
    assert cleared.value == "" and cleared["max-age"] == "0"
    assert sessions.resolve(token) is None


def test_handoff_script_is_served_from_this_origin(app: Starlette) -> None:
    reply = call(app, "GET", "/auth/handoff.js")
    assert reply.status == 200 and reply.header("content-type").startswith("text/javascript")
    assert b"/auth/session" in reply.body
