"""`GET /healthz` (the process answers) and `GET /readyz` (database reachable, schema current)."""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Engine

from ..db import MIGRATIONS_DIR, current_revision
from .errors import error_body
from .state import get_state

router = APIRouter(tags=["health"])


@cache  # the migrations shipped with this process do not change while it runs
def head_revision() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(cfg).get_current_head()


def readiness(engine: Engine) -> tuple[bool, str]:
    try:
        current = current_revision(engine)
    except Exception as exc:  # any failure to reach the database means "not ready"
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return False, f"the database is not reachable: {reason}"
    head = head_revision()
    if current != head:
        return False, f"the database schema is at {current}, not {head}: run `gatehouse migrate`"
    return True, str(current)


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database is reachable and its schema is current")
async def readyz(request: Request) -> JSONResponse:
    state = get_state(request)
    ok, detail = await state.run(readiness, state.engine)
    if ok:
        return JSONResponse({"status": "ready", "revision": detail})
    return JSONResponse(error_body(detail, "api_error", "not_ready"), status_code=503)
