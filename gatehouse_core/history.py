"""The configuration change history (`settings_audit`) for reading: filters, keyset pages and
before/after as a list of field differences, with anything secret-looking masked again.

Writers already store keys only masked (`sk-or-…a1b2`); masking here is the second line of
defence for a hand-edited row or a future writer that forgets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from .crypto import mask_key
from .db import unreachable
from .errors import ConfigError
from .schema import SettingsAudit

A = SettingsAudit.__table__
MAX_PAGE = 500
HIDDEN = "… (hidden)"
_SECRET_NAMES = ("api_key", "password", "password_hash", "secret", "token", "ciphertext")
_SECRET_SUFFIXES = ("_key", "_secret", "_token", "_password")
_NOT_SECRET = ("key_fingerprint", "primary_key", "key_prefix", "key")


@dataclass(frozen=True)
class Difference:
    field: str  # dotted path into the JSON document, e.g. `config.rate_limit.requests_per_minute`
    before: Any
    after: Any

    @property
    def kind(self) -> str:
        if self.before is _ABSENT:
            return "added"
        if self.after is _ABSENT:
            return "removed"
        return "changed"


class _Absent:
    def __repr__(self) -> str:
        return "—"


_ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Change:
    id: int
    created_at: datetime
    actor: str
    action: str
    target: str | None
    differences: list[Difference]


def changes(
    engine: Engine,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    before_id: int | None = None,
    limit: int = 50,
) -> list[Change]:
    """Changes newest first, optionally filtered; continue with `before_id` = the last id."""
    if not 1 <= limit <= MAX_PAGE:
        raise ConfigError(f"page size {limit} is out of range; give 1 to {MAX_PAGE}")
    query = select(A).order_by(A.c.id.desc()).limit(limit)
    for column, value in (("actor", actor), ("action", action), ("target", target)):
        if value:
            query = query.where(A.c[column] == value)
    if before_id is not None:
        query = query.where(A.c.id < before_id)
    return [
        Change(
            id=row["id"],
            created_at=row["created_at"],
            actor=row["actor"],
            action=row["action"],
            target=row["target"],
            differences=diff(row["before"], row["after"]),
        )
        for row in _fetch(engine, query)
    ]


def choices(engine: Engine, column: str) -> list[str]:
    """The distinct actors, actions or targets (for the filter pickers)."""
    if column not in ("actor", "action", "target"):
        raise ConfigError(f"cannot list {column!r}; use actor, action or target")
    query = select(A.c[column]).where(A.c[column].is_not(None)).group_by(A.c[column])
    return sorted(row[column] for row in _fetch(engine, query.order_by(A.c[column])))


def diff(before: Any, after: Any) -> list[Difference]:
    """The fields that differ between two JSON documents (nested objects by dotted path)."""
    out: list[Difference] = []
    # Compare the stored values (a changed password is a change), show only masked ones.
    _walk("", _ABSENT if before is None else before, _ABSENT if after is None else after, out)
    return out


def _walk(path: str, before: Any, after: Any, out: list[Difference]) -> None:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for name in list(dict.fromkeys([*before, *after])):
            sub = f"{path}.{name}" if path else str(name)
            _walk(sub, before.get(name, _ABSENT), after.get(name, _ABSENT), out)
        return
    if isinstance(before, Mapping) and after is _ABSENT:
        for name, value in before.items():
            _walk(f"{path}.{name}" if path else str(name), value, _ABSENT, out)
        return
    if isinstance(after, Mapping) and before is _ABSENT:
        for name, value in after.items():
            _walk(f"{path}.{name}" if path else str(name), _ABSENT, value, out)
        return
    if before != after:
        leaf = path.rsplit(".", 1)[-1]
        out.append(Difference(path or "(value)", _masked(before, leaf), _masked(after, leaf)))


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    if lowered in _NOT_SECRET:
        return False
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_SUFFIXES)


def _masked(value: Any, name: str = "") -> Any:
    if isinstance(value, Mapping):
        return {k: _masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, name) for v in value]
    if value is _ABSENT:
        return value
    if isinstance(value, str) and is_secret_name(name) and "…" not in value:
        # A key keeps its usual masked form; a password, hash or token shows nothing of itself.
        keyish = name.lower().endswith("key") and len(value) >= 12
        return mask_key(value) if keyish else HIDDEN
    return value


def _fetch(engine: Engine, query: Any) -> list[Any]:
    try:
        with engine.connect() as conn:
            return list(conn.execute(query).mappings())
    except OperationalError as exc:
        raise unreachable(engine, exc) from None
