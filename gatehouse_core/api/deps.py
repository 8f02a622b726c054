"""The auth dependency: a Bearer API token, verified, with a role that may do the route's job.

Permissions come from the one table in `auth.py` (`PERMISSIONS`): settings routes need
`providers` (admin), chat routes `playground` (operator, admin), reports `dashboards`, models
`models` (every role).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..auth import PERMISSIONS, can
from ..tokens import TokenForbidden, TokenInfo
from .state import get_state

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="GateHouseToken",
    description="An API token from `gatehouse tokens create NAME --role ROLE` (gh_…).",
)


def require(permission: str) -> Callable[..., Awaitable[TokenInfo]]:
    """A dependency returning the caller's token once it may do `permission`."""
    allowed = sorted(role for role, perms in PERMISSIONS.items() if permission in perms)

    async def caller(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> TokenInfo:
        state = get_state(request)
        raw = credentials.credentials if credentials else None
        # A token verified a moment ago costs no pool hop and no database read.
        token = state.tokens.cached(raw) or await state.run(state.tokens.verify, raw)
        if not can(token.role, permission):
            raise TokenForbidden(
                f"The API token {token.name!r} has the role {token.role!r}; this endpoint needs "
                f"{' or '.join(allowed)}.",
                "forbidden_role",
            )
        return token

    return caller


# The caller of each family of routes (the one place that says which permission a route needs).
AdminToken = Annotated[TokenInfo, Depends(require("providers"))]
ChatToken = Annotated[TokenInfo, Depends(require("playground"))]
ReportsToken = Annotated[TokenInfo, Depends(require("dashboards"))]
ModelsToken = Annotated[TokenInfo, Depends(require("models"))]
