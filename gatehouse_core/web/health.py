"""`GET /healthz` (the process answers) and `GET /readyz` (database reachable, schema current)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Engine, text
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..errors import GatehouseError

log = logging.getLogger("gatehouse.console")


def head_revision() -> str:
    """The newest migration shipped with this code."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from ..db import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return str(ScriptDirectory.from_config(cfg).get_current_head())


def readiness(engine: Callable[[], Engine]) -> tuple[bool, dict[str, str]]:
    """(ready, details): the details name the problem and never the database password."""
    from ..db import current_revision

    try:
        db = engine()
        with db.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = current_revision(db)
    except GatehouseError as exc:  # DatabaseUnavailable says which database, password hidden
        return False, {"status": "unavailable", "database": str(exc)}
    except Exception as exc:
        log.warning("readiness check failed: %s", type(exc).__name__)
        return False, {"status": "unavailable", "database": f"unreachable ({type(exc).__name__})"}
    head = head_revision()
    if current != head:
        return False, {
            "status": "unavailable",
            "database": "ok",
            "migrations": f"at {current or 'none'}, code expects {head}; run `gatehouse migrate`",
        }
    return True, {"status": "ok", "database": "ok", "migrations": head}


def health_routes(engine: Callable[[], Engine]) -> list[Route]:
    def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    def readyz(_request: Request) -> JSONResponse:
        ready, details = readiness(engine)
        return JSONResponse(details, status_code=200 if ready else 503)

    # Plain functions: Starlette runs them in its thread pool, so a slow database never
    # blocks the event loop that serves the console's websockets.
    return [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
