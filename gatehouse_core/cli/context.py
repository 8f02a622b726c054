"""What CLI handlers share: lazily built engine, secrets box, registry; the acting user."""

from __future__ import annotations

import getpass
from functools import cached_property
from typing import Any

from sqlalchemy import Engine

from .. import settings
from ..crypto import SecretBox
from ..db import make_engine
from ..registry import Registry


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
