"""Structured JSON log lines, with secrets scrubbed on the way out.

One line per record: {"ts", "level", "logger", "msg", ...fields}. Callers pass fields as
`log.info("msg", extra={"fields": {...}})`. A final scrub removes every API key this process
knows (each provider's key is registered when the registry decrypts it, and CODEGEN_API_KEY)
and anything shaped like an API key or bearer token, so a key cannot reach a log or an audit
row even through an upstream's error message that echoes it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Any

from . import settings

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_SECRET_PATTERNS = re.compile(
    r"(sk-or-v1-[A-Za-z0-9]+|sk-[A-Za-z0-9_\-]{16,}|(?:gsk|xai|pplx|csk|fw)[_-][A-Za-z0-9_\-]{16,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._\-]+)"
)
REDACTED = "[REDACTED]"
PROMPT_PREVIEW_CHARS = 200
_MIN_SECRET_CHARS = 8  # shorter values would redact ordinary words
_MAX_SECRETS = 10_000  # bounded: a registry re-reading changed keys for months
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secrets_pattern: re.Pattern[str] | None = None


def register_secret(value: str | None) -> None:
    """Remember an exact secret (a provider's decrypted key) so `scrub` removes it anywhere."""
    global _secrets_pattern
    if not value or len(value) < _MIN_SECRET_CHARS or value in _secrets:
        return
    with _secrets_lock:
        if len(_secrets) >= _MAX_SECRETS:
            _secrets.clear()  # keys still in use are registered again on the next decrypt
        _secrets.add(value)
        _secrets_pattern = None


def is_registered_secret(value: str) -> bool:
    return value in _secrets or value == os.environ.get("CODEGEN_API_KEY", "").strip()


def looks_like_secret(text: str) -> bool:
    """True for a value shaped like an API key or bearer token as a whole."""
    return _SECRET_PATTERNS.fullmatch(text.strip()) is not None


def scrub(text: str) -> str:
    """Replace every known key, and key- and token-shaped substrings, with a marker."""
    env_key = os.environ.get("CODEGEN_API_KEY", "").strip()
    if len(env_key) >= _MIN_SECRET_CHARS and env_key in text:
        text = text.replace(env_key, REDACTED)
    pattern = _known_secrets_pattern()
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return _SECRET_PATTERNS.sub(REDACTED, text)


def _known_secrets_pattern() -> re.Pattern[str] | None:
    global _secrets_pattern
    pattern = _secrets_pattern
    if pattern is None and _secrets:
        with _secrets_lock:
            # Longest first, so a key that contains another is removed whole.
            ordered = sorted(_secrets, key=len, reverse=True)
            pattern = _secrets_pattern = re.compile("|".join(map(re.escape, ordered)))
    return pattern


def truncate(text: str, limit: int = PROMPT_PREVIEW_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f"…[+{len(text) - limit} chars]"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return scrub(json.dumps(line, default=str, ensure_ascii=False))


class PlainFormatter(logging.Formatter):
    """`warning: message` lines for people at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(f"{record.levelname.lower()}: {record.getMessage()}")


def level_from_env(default: str | None = None) -> int:
    name = (settings.get("GATEHOUSE_LOG_LEVEL") if default is None else default) or "info"
    return LEVELS.get(name.lower(), logging.INFO)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (pytest's capture, a redirected CLI)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return self._stream if self._stream is not None else sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        self._stream = value


def configure_logging(level: int | None = None, stream: Any = None, plain: bool = False) -> None:
    """Send the `gatehouse` loggers to `stream` (default: the current stderr).

    JSON lines for services; `plain` gives `warning: …` lines for people at a terminal.
    Calling it again replaces the previous GateHouse handler, never stacks a second one.
    """
    root = logging.getLogger("gatehouse")
    root.setLevel(level_from_env() if level is None else level)
    for old in [h for h in root.handlers if getattr(h, "_gatehouse", False)]:
        root.removeHandler(old)
    handler = _StderrHandler(stream)
    handler.setFormatter(PlainFormatter() if plain else JsonFormatter())
    if plain:  # structured records (per-call lines) are for log pipelines, not terminals
        handler.addFilter(lambda record: not getattr(record, "fields", None))
    handler._gatehouse = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.propagate = False
