"""Structured JSON log lines, with secrets scrubbed on the way out.

One line per record: {"ts", "level", "logger", "msg", ...fields}. Callers pass fields as
`log.info("msg", extra={"fields": {...}})`. A final scrub removes anything shaped like an
API key or bearer token, so a key cannot reach a log even through an exception message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
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
    r"(sk-or-v1-[A-Za-z0-9]+|sk-[A-Za-z0-9_\-]{16,}|(?i:bearer)\s+[A-Za-z0-9._\-]+)"
)
PROMPT_PREVIEW_CHARS = 200


def scrub(text: str) -> str:
    """Replace key- and token-shaped substrings with a marker."""
    return _SECRET_PATTERNS.sub("[REDACTED]", text)


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
