"""Every environment setting GateHouse reads, declared once.

Resolution order (one rule, written down): an explicit argument to a constructor wins,
then the process environment, then the default declared here. The README's configuration
table is checked against `SETTINGS` by a test, so a new setting cannot go undocumented.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError


class SettingError(ConfigError, ValueError):
    """An environment setting holds a value GateHouse cannot use (the message names it)."""


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default (as the string the env would hold) and help."""

    name: str
    default: str | None
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "GATEHOUSE_DATABASE_URL",
        "sqlite:///gatehouse.db",
        "SQLAlchemy URL of the database. PostgreSQL: postgresql+psycopg://user:pw@host:5432/db",
    ),
    Setting(
        "GATEHOUSE_SECRETS_KEY",
        None,
        "Comma-separated Fernet keys; the first encrypts, all decrypt. Unset: a development "
        "key is generated into .gatehouse/secrets.key (never use that in production).",
    ),
    Setting(
        "GATEHOUSE_HOME",
        ".gatehouse",
        "Folder for local state: the development secrets key and spilled audit rows.",
    ),
    Setting(
        "GATEHOUSE_REDIS_URL",
        None,
        "Redis URL (redis://host:6379/0) for rate limits shared by every process. "
        "Unset: limits are kept per process in memory.",
    ),
    Setting("GATEHOUSE_LOG_LEVEL", "info", "debug, info, warning or error. debug logs payloads."),
    Setting(
        "GATEHOUSE_REQUEST_TIMEOUT",
        "120",
        "Seconds one upstream attempt may take in total (connect, wait, read the whole answer "
        "or stream) before it is cut and counts as a timeout; keep-alive bytes do not extend it.",
    ),
    Setting(
        "GATEHOUSE_CALL_TIMEOUT",
        "300",
        "Seconds one gateway call may take in total: queueing, every retry and fallback. "
        "Once passed, no further attempt starts and the running one is cut.",
    ),
    Setting(
        "GATEHOUSE_RETRY_AFTER_CAP",
        "30",
        "Longest Retry-After (seconds) the gateway waits; a longer one moves to the next provider.",
    ),
    Setting(
        "GATEHOUSE_QUEUE_TIMEOUT",
        "10",
        "Seconds a request may wait in line for a rate-limit slot before trying the next provider.",
    ),
    Setting(
        "GATEHOUSE_COOLDOWN_SECONDS",
        "30",
        "How long a provider that failed 5 times in a row within 60 s is skipped.",
    ),
    Setting(
        "GATEHOUSE_CONFIG_TTL",
        "2",
        "Seconds between checks for provider changes made by other processes.",
    ),
    Setting(
        "GATEHOUSE_TIMEZONE",
        "UTC",
        "IANA time zone (e.g. Europe/Berlin) where days and months begin on the dashboards and in "
        "`gatehouse usage`. Storage stays UTC.",
    ),
    Setting(
        "GATEHOUSE_AUDIT_RETENTION_DAYS",
        None,
        "Days of raw audit rows (llm_requests) to keep; a running console deletes older ones "
        "once a day, the hourly rollups stay. Unset: keep everything.",
    ),
    Setting(
        "GATEHOUSE_PROVIDER_HOSTS",
        None,
        "Comma-separated host patterns provider base URLs may point to (e.g. "
        "openrouter.ai,*.example.com); checked on save, Test connection and models refresh. "
        "Unset: any host. Link-local and cloud metadata addresses are always refused.",
    ),
    Setting(
        "GATEHOUSE_METRICS",
        None,
        "Metric sinks fed once per call: emf (CloudWatch Embedded Metric Format lines on stderr), "
        "otel (OpenTelemetry spans; needs gatehouse[otel]) or emf,otel. Unset: none.",
    ),
    Setting(
        "GATEHOUSE_SESSION_IDLE",
        "8h",
        "A console sign-in ends after this long without use (e.g. 30m, 8h; plain numbers are seconds).",
    ),
    Setting(
        "GATEHOUSE_SESSION_MAX",
        "7d",
        "A console sign-in ends this long after it began, however busy (e.g. 12h, 7d).",
    ),
    Setting(
        "CODEGEN_PROVIDER",
        None,
        "Fallback provider type (e.g. openrouter) used only while the database has no provider.",
    ),
    Setting("CODEGEN_API_KEY", None, "API key of the fallback provider named `env`."),
    Setting(
        "CODEGEN_URL",
        "https://openrouter.ai/api/v1",
        "Base URL of the fallback provider named `env`.",
    ),
    Setting(
        "CODEGEN_MODEL",
        "anthropic/claude-sonnet-4",
        "Default model of the fallback provider named `env`.",
    ),
    Setting(
        "GATEHOUSE_API_THREADS",
        "32",
        "Threads of the HTTP API's pool that run gateway and database calls (per process); "
        "the API's concurrent LLM calls are bounded by it.",
    ),
    Setting(
        "GATEHOUSE_API_TIMEOUT",
        "300",
        "Seconds one HTTP API request may take before it is answered 504 (streams included).",
    ),
    Setting(
        "GATEHOUSE_API_MAX_BODY_BYTES",
        "1048576",
        "Largest HTTP API request body in bytes; larger bodies are refused with 413.",
    ),
    Setting(
        "GATEHOUSE_API_CORS_ORIGINS",
        None,
        "Comma-separated origins allowed to call the HTTP API from a browser. Unset: no CORS.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def get(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The value of a declared setting: the environment if set and non-empty, else its default."""
    setting = _BY_NAME[name]  # KeyError on an undeclared name is a programming error
    value = (os.environ if env is None else env).get(name, "")
    return value.strip() if value.strip() else setting.default


def get_float(name: str, env: Mapping[str, str] | None = None) -> float:
    """A non-negative number of seconds; SettingError (a ConfigError and ValueError) if not."""
    raw = get(name, env)
    try:
        value = float(raw or "")
        if not math.isfinite(value):
            raise ValueError(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a number; unset it or give seconds") from None
    if value < 0:
        raise SettingError(f"{name}={raw!r} must not be negative; unset it or give seconds")
    return value


def get_positive_int(name: str, env: Mapping[str, str] | None = None) -> int | None:
    """A whole number of at least 1, or None when unset; SettingError for anything else."""
    raw = get(name, env)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SettingError(
            f"{name}={raw!r} is not a whole number of at least 1; unset it or give e.g. 90"
        )
    return value


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def get_duration(name: str, env: Mapping[str, str] | None = None) -> float:
    """A positive duration in seconds from `90`, `45s`, `30m`, `8h` or `7d`; SettingError if not."""
    raw = (get(name, env) or "").strip().lower()
    unit = _DURATION_UNITS.get(raw[-1:]) if raw else None
    number = raw[:-1] if unit else raw
    try:
        value = float(number) * (unit or 1)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(raw)
    except ValueError:
        raise SettingError(
            f"{name}={raw!r} is not a duration; unset it or give e.g. 45s, 30m, 8h or 7d"
        ) from None
    return value


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    """The local state folder (created on demand by whoever writes into it)."""
    return Path(get("GATEHOUSE_HOME", env) or ".gatehouse")


def display_zone(env: Mapping[str, str] | None = None) -> ZoneInfo:
    """GATEHOUSE_TIMEZONE as a ZoneInfo; SettingError naming the value when it is not a zone."""
    raw = get("GATEHOUSE_TIMEZONE", env) or "UTC"
    try:
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingError(
            f"GATEHOUSE_TIMEZONE={raw!r} is not an IANA time zone; use a name such as UTC, "
            "Europe/Berlin or America/New_York"
        ) from None
