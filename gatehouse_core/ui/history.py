"""The Change history page's table: one row per changed field, secrets only masked."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..history import Change
from .spend import zone

MISSING = "—"


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    if type(value).__name__ == "_Absent":
        return MISSING
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def rows(changes: Sequence[Change]) -> list[dict[str, Any]]:
    out = []
    for change in changes:
        when = change.created_at.astimezone(zone()).strftime("%Y-%m-%d %H:%M:%S")
        base = {"Time": when, "Actor": change.actor, "Action": change.action}
        base["Target"] = change.target or ""
        for d in change.differences or []:
            out.append({**base, "Field": d.field, "Change": d.kind} | _values(d))
        if not change.differences:
            out.append({**base, "Field": "", "Change": "no difference", "Before": "", "After": ""})
    return out


def _values(d: Any) -> dict[str, str]:
    return {"Before": _show(d.before), "After": _show(d.after)}
