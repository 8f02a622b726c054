"""Security headers on every HTTP response of the console process (an ASGI middleware)."""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@cache
def _streamlit_inline_script_hashes() -> tuple[str, ...]:
    """CSP hashes of the inline scripts in Streamlit's own index.html (one tiny one today).

    Computed from the installed Streamlit so an upgrade that changes them needs no edit here.
    """
    import streamlit

    index = Path(streamlit.__file__).parent / "static" / "index.html"
    try:
        html = index.read_text(encoding="utf-8")
    except OSError:
        return ()
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    return tuple(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in scripts
    )


def content_security_policy() -> str:
    """What the console needs and nothing more: its own origin only (no CDN, no framing).

    Styles need 'unsafe-inline' (Streamlit's CSS-in-JS writes <style> elements); scripts do
    not: Streamlit's bundle and GateHouse's hand-off script are files from this origin.
    'self' covers the websocket to the same host in current browsers.
    """
    directives = {
        "default-src": "'self'",
        "script-src": " ".join(("'self'", *_streamlit_inline_script_hashes())),
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data: blob:",
        "font-src": "'self' data:",
        "connect-src": "'self'",
        "media-src": "'self' data: blob:",
        "worker-src": "'self' blob:",
        "frame-src": "'self' blob: data:",
        "frame-ancestors": "'none'",
        "form-action": "'self'",
        "base-uri": "'self'",
        "object-src": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def security_headers() -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", content_security_policy().encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]


class SecurityHeaders:
    """Adds the headers to every HTTP response (replacing any the inner app set)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._headers = security_headers()
        self._names = {name for name, _ in self._headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() not in self._names
                ]
                message["headers"] = kept + self._headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
