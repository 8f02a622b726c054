"""`GET /v1/requests` (keyset cursor) and `GET /v1/usage`: the CLI's reports over HTTP.

`data` holds exactly the objects of `gatehouse requests --json` / `gatehouse usage --json`
(same keys, `created_at` as ISO 8601 UTC); the same filters with the same defaults.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from ..errors import ConfigError
from ..reports import parse_since, recent_requests, usage_summary
from ..results import ATTEMPT_STATUSES
from .deps import ReportsToken
from .state import get_state

router = APIRouter(prefix="/v1", tags=["reports"])
MAX_LIMIT = 1000


def encode_cursor(row: dict[str, Any]) -> str:
    raw = f"{row['created_at'].isoformat()}|{row['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, _, row_id = raw.partition("|")
        return datetime.fromisoformat(moment), int(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ConfigError(
            "cursor is not one this API returned; pass next_cursor from the previous page"
        ) from None


@router.get("/requests", summary="Audit rows (one per upstream attempt), newest first")
async def requests(
    request: Request,
    token: ReportsToken,
    since: Annotated[str, Query(description="e.g. 15m, 24h, 30d, 2w")] = "24h",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    status: Literal[ATTEMPT_STATUSES] | None = None,  # type: ignore[valid-type]
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    state = get_state(request)
    span = parse_since(since)
    before = decode_cursor(cursor) if cursor else None
    rows = await state.run(
        recent_requests, state.engine, since=span, limit=limit, status=status, before=before
    )
    return {
        "object": "list",
        "data": [{**row, "created_at": row["created_at"].isoformat()} for row in rows],
        "next_cursor": encode_cursor(rows[-1]) if len(rows) == limit else None,
    }


@router.get("/usage", summary="Requests, attempts, tokens and cost per day, model or provider")
async def usage(
    request: Request,
    token: ReportsToken,
    since: Annotated[str, Query(description="e.g. 24h, 30d, 2w")] = "30d",
    by: Literal["day", "model", "provider"] = "day",
) -> dict[str, Any]:
    state = get_state(request)
    groups = await state.run(usage_summary, state.engine, since=parse_since(since), by=by)
    return {"object": "list", "data": groups}
