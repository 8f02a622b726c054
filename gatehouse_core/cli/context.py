"""What CLI handlers share: lazily built engine, secrets box, registry; the acting user."""

from __future__ import annotations

import getpass
from functools import cached_property
from typing import Any

from sqlalchemy import Engine

from .. import settings
from ..crypto import SecretBox
from ..db import make_engine
from ..errors import ConfigError, GatehouseError
from ..registry import Registry
from ..telemetry import is_registered_secret, looks_like_secret


class Context:
    def __init__(self) -> None:
        self._closers: list[Any] = []

    @cached_property
    def actor(self) -> str:
        try:
            return getpass.getuser()
        except Exception:  # no passwd entry in some containers
            return "cli"

    @cached_property
    def engine(self) -> Engine:
        engine = make_engine(settings.get("GATEHOUSE_DATABASE_URL"))
        self._closers.append(engine.dispose)
        return engine

    @cached_property
    def box(self) -> SecretBox:
        return SecretBox.from_env()

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.engine, self.box)

    def on_close(self, fn: Any) -> None:
        self._closers.append(fn)

    def close(self) -> None:
        for fn in reversed(self._closers):
            fn()
        self._closers.clear()


def refuse_pasted_key(value: str | None, registry: Registry, what: str) -> None:
    """Refuse a positional value or option that is an API key pasted by mistake (key-shaped,
    or equal to a stored key), without printing it: error messages echo names and models."""
    if not value:
        return
    if looks_like_secret(value) or is_registered_secret(value) or _is_stored_key(value, registry):
        raise ConfigError(
            f"the {what} given looks like an API key, so it is not repeated here (clear it from "
            "your shell history). To store a key: gatehouse providers set-key NAME "
            "--api-key-stdin"
        )


def _is_stored_key(value: str, registry: Registry) -> bool:
    if len(value) < 8:
        return False
    try:
        return any(p.api_key == value for p in registry.snapshot().providers)
    except GatehouseError:  # the command itself reports an unreachable database
        return False
