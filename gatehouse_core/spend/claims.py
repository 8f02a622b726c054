"""Once-per-period chores across processes: a compare-and-set on a `system_settings` marker.

Retention's daily prune and the console's daily reconcile both ask "am I the one process that
runs this now?". The marker row is created if missing (a racing creator loses quietly), then one
UPDATE moves its `updated_at` to now where it was still due; the row lock (PostgreSQL) or the
write lock (SQLite) lets exactly one process see a row changed.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..schema import SystemSetting

NEVER = datetime(1970, 1, 1, tzinfo=UTC)
_MARKER = SystemSetting.__table__


def claim(
    engine: Engine,
    key: str,
    *,
    due: Callable[[Any], ColumnElement[bool]],
    now: datetime,
    value: dict[str, Any],
    description: str,
    actor: str,
) -> bool:
    """True for the one process that moved marker `key` to `now` while `due(updated_at)` held."""
    this = _MARKER.c.key == key
    with suppress(IntegrityError), engine.begin() as conn:  # another process made it first
        if conn.execute(select(_MARKER.c.key).where(this)).first() is None:
            conn.execute(
                insert(_MARKER).values(
                    key=key, value={}, description=description, updated_at=NEVER, updated_by=actor
                )
            )
    with engine.begin() as conn:
        claimed = conn.execute(
            update(_MARKER)
            .where(this, due(_MARKER.c.updated_at))
            .values(updated_at=now, value=value)
        )
    return claimed.rowcount == 1
