"""The console session cookie: hand-off after sign-in, and sign-out.

Sign-in itself happens in the Streamlit form (over the app's websocket, so the password is
never in a URL or the page); the page then receives a one-time ticket and a small script from
this origin (`/auth/handoff.js`) POSTs it to `/auth/session`, whose response sets the HttpOnly
cookie. `/auth/signout` revokes the cookie's session and clears it. Both POST routes refuse
cross-site requests: the Origin header (or Sec-Fetch-Site) must say this same origin.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from ..errors import GatehouseError
from ..sessions import COOKIE_NAME, SessionStore

log = logging.getLogger("gatehouse.console")

HANDOFF_SCRIPT = Path(__file__).with_name("handoff.js")
SESSION_PATH = "/auth/session"
SIGNOUT_PATH = "/auth/signout"
HANDOFF_PATH = "/auth/handoff.js"
_MAX_BODY = 4096


def same_origin(request: Request) -> bool:
    """Whether a state-changing request comes from a page of this very origin."""
    origin = request.headers.get("origin")
    if origin:
        return origin == f"{request.url.scheme}://{request.headers.get('host', '')}"
    return request.headers.get("sec-fetch-site") == "same-origin"


async def _ticket(request: Request) -> str:
    body = (await request.body())[:_MAX_BODY]
    try:
        value = json.loads(body or b"{}").get("ticket", "")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def _refused(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def signin_routes(sessions: Callable[[], SessionStore]) -> list[Route]:
    async def session(request: Request) -> Response:
        if not same_origin(request):
            return _refused("cross-site request refused", 403)
        ticket = await _ticket(request)
        try:
            store = sessions()
            token = store.redeem_ticket(ticket)
        except GatehouseError as exc:
            log.warning("session hand-off failed: %s", exc)
            return _refused("the database is unavailable; sign in again later", 503)
        if token is None:
            return _refused("this sign-in ticket is unknown, used or expired; sign in again", 400)
        response = Response(status_code=204)
        response.set_cookie(
            COOKIE_NAME,
            token,
            max_age=int(store.policy.max_age.total_seconds()),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def signout(request: Request) -> Response:
        if not same_origin(request):
            return _refused("cross-site request refused", 403)
        token = request.cookies.get(COOKIE_NAME)
        try:
            sessions().revoke_token(token)
        except GatehouseError as exc:
            log.warning("sign-out could not reach the database: %s", exc)
        response = Response(status_code=204)
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    def handoff_js(_request: Request) -> Response:
        return FileResponse(HANDOFF_SCRIPT, media_type="text/javascript")

    return [
        Route(SESSION_PATH, session, methods=["POST"]),
        Route(SIGNOUT_PATH, signout, methods=["POST"]),
        Route(HANDOFF_PATH, handoff_js, methods=["GET"]),
    ]
