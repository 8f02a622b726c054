"""The HTTP API's own settings (thread pool, timeout, body cap, CORS), read once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .. import settings
from ..settings import SettingError


@dataclass(frozen=True)
class ApiConfig:
    """`threads`: pool size for gateway and database calls; `timeout`: seconds per request;
    `max_body_bytes`: request body cap; `cors_origins`: empty means no CORS headers at all."""

    threads: int = 32
    timeout: float = 300.0
    max_body_bytes: int = 1_048_576
    cors_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiConfig:
        origins = settings.get("GATEHOUSE_API_CORS_ORIGINS", env) or ""
        return cls(
            threads=_whole("GATEHOUSE_API_THREADS", env),
            timeout=settings.get_float("GATEHOUSE_API_TIMEOUT", env),
            max_body_bytes=_whole("GATEHOUSE_API_MAX_BODY_BYTES", env),
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
        )


def _whole(name: str, env: Mapping[str, str] | None) -> int:
    value = settings.get_float(name, env)
    if value < 1 or value != int(value):
        raise SettingError(f"{name}={value:g} must be a whole number of at least 1")
    return int(value)
