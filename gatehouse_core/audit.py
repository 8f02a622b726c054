"""The batched, outage-proof writer of `llm_requests` (one row per upstream attempt).

The gateway hands each attempt's row (a dict keyed by `LLMRequest` column names, without
`id`) to `AuditWriter.submit`, which only appends to an in-memory queue. A daemon thread
writes the queue in batches (one INSERT executemany per batch, one transaction each).

While the database is unreachable the thread writes ahead: every cycle (`flush_interval`) it
appends the rows that arrived to a JSONL spill file `<spill_dir>/<pid>-<n>.jsonl` (datetimes
as ISO strings), so a SIGKILL during an outage loses at most one cycle's rows. If the thread
itself hangs in a database call, `submit` spills once more than `2 * max_buffer` rows wait.
The thread retries every `retry_interval`; once the database answers it writes the buffer and
re-imports its own spill files. At process exit (atexit) and on SIGTERM (`lifecycle.py`)
everything pending is written, or spilled if the database is still down; after `fork` the
child gets a writer state of its own.
`gatehouse audit flush` (`import_spilled`) imports spill files left by any process.

No duplicates: a row's identity is `(request_id, attempt)`. Whenever a row might already be
in the table (a batch whose commit failed ambiguously, any spilled row), the insert skips
keys that exist. Spill files are claimed with `flock`, so a writer and any number of
`audit flush` runs can work on one folder at once.

A bad row is not an outage: `normalize_row` makes every text column storable, and a row that
fails for anything but a connection-level error (`is_outage`) is set aside in
`<spill_dir>/rejected/<pid>.jsonl` with its reason and a logged error, never retried forever,
while the other rows are written. POSIX only (flock).

The read queries (`recent_requests`, `usage_summary`, `parse_since`) live in `reports.py`
and are re-exported here.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, String, insert, select
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from . import lifecycle, settings
from .db import unreachable
from .reports import parse_since, recent_requests, usage_summary
from .schema import LLMRequest
from .spend.rollups import apply_rows
from .telemetry import scrub

__all__ = [
    "AuditStats",
    "AuditWriter",
    "clean_text",
    "default_spill_dir",
    "import_spilled",
    "is_outage",
    "normalize_row",
    "parse_since",
    "recent_requests",
    "usage_summary",
]

log = logging.getLogger("gatehouse.audit")

TABLE = LLMRequest.__table__
COLUMNS = tuple(c.name for c in TABLE.columns if c.name != "id")
REQUIRED = ("request_id", "attempt", "provider", "model", "status")
ERROR_MESSAGE_CHARS = 500
# Every text column and the characters it holds (String(n) → n; Text → our own cap or none).
TEXT_LIMITS: dict[str, int | None] = {
    c.name: ERROR_MESSAGE_CHARS if c.name == "error_message" else c.type.length
    for c in TABLE.columns
    if isinstance(c.type, String) and c.name != "id"
}
SPILL_DIRNAME = "audit-spill"
# Failures that mean "the database cannot take rows now", whatever the rows hold: keep the rows
# and retry. Anything else (DataError, IntegrityError, StatementError, TypeError, …) is the
# row's fault and sets only that row aside.
_OUTAGE_ERRORS = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, OSError)
# PostgreSQL states that no row can fix: connection (08), resources (53), operator (57),
# system (58), and a missing table/column, missing privilege or read-only standby.
_OUTAGE_CLASSES = ("08", "53", "57", "58")
_OUTAGE_STATES = ("42P01", "42703", "42501", "25006")


def default_spill_dir(env: Any = None) -> Path:
    """`<GATEHOUSE_HOME>/audit-spill`, where writers spill and `audit flush` looks."""
    return settings.home_dir(env) / SPILL_DIRNAME


@dataclass(frozen=True)
class AuditStats:
    """`written`: rows this writer saw committed (a batch whose commit was cut off and then
    found already present is not counted again); `pending`: rows in memory; `spilled`: rows in
    this writer's spill files not yet re-imported; `rejected`: rows set aside as bad data;
    `last_error`: the current outage's error, None while the database accepts rows."""

    written: int
    pending: int
    spilled: int
    last_error: str | None
    rejected: int = 0


# ---- rows ------------------------------------------------------------------------------


def clean_text(value: Any, limit: int | None = None) -> str:
    """`value` as text any database stores: lone surrogates become U+FFFD, NUL characters are
    dropped (PostgreSQL refuses them), at most `limit` characters."""
    text = value if isinstance(value, str) else str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Through UTF-16, a surrogate pair becomes its character and a lone one U+FFFD.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text if limit is None else text[:limit]


def normalize_row(row: dict[str, Any]) -> dict[str, Any]:
    """Exactly the table's columns: defaults filled, every text column made storable (see
    `clean_text`) and clipped to its column, the error message scrubbed.

    Raises ValueError when a required column is missing."""
    out = {name: row.get(name) for name in COLUMNS}
    missing = [name for name in REQUIRED if out[name] is None]
    if missing:
        raise ValueError(f"audit row without {', '.join(missing)}")
    created = out["created_at"]
    if created is None:
        out["created_at"] = datetime.now(UTC)
    elif isinstance(created, str):
        out["created_at"] = datetime.fromisoformat(created)
    out["attempt"] = int(out["attempt"])
    out["cost_source"] = out["cost_source"] or "unknown"
    message = out["error_message"]
    if message is not None:
        # Scrub before clipping so a key cut at the edge is still recognised.
        out["error_message"] = scrub(clean_text(message, ERROR_MESSAGE_CHARS * 4))
    for name, limit in TEXT_LIMITS.items():
        if out[name] is not None:
            out[name] = clean_text(out[name], limit)
    return out


def is_outage(exc: BaseException) -> bool:
    """True when `exc` says the database cannot take rows now (keep them, retry later);
    False when it says something is wrong with the rows themselves."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, _OUTAGE_ERRORS):
        return True
    state = getattr(getattr(exc, "orig", None), "sqlstate", None) or ""
    return state in _OUTAGE_STATES or state[:2] in _OUTAGE_CLASSES


def _reason(exc: BaseException) -> str:
    """One scrubbed line naming the failure, for logs, stats and set-aside rows."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = clean_text(text.splitlines()[0] if text else "", 300)
    return f"{type(exc).__name__}: {scrub(first)}"


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _to_line(row: Any) -> str:
    """One JSONL line for `row`; never raises, so one odd row cannot fail a spill."""
    try:
        line = json.dumps(row, default=_json_default, ensure_ascii=False, separators=(",", ":"))
        line.encode("utf-8")
        return line
    except UnicodeEncodeError:  # a lone surrogate in a row not yet normalized: escape it
        return json.dumps(row, default=_json_default, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return json.dumps({"unserializable_row": clean_text(repr(row), 10_000)})


def _insert_rows(conn: Connection, rows: list[dict[str, Any]], dedup: bool) -> int:
    """INSERT rows (executemany); with `dedup`, skip (request_id, attempt) already present."""
    if dedup:
        ids = list({r["request_id"] for r in rows})
        query = select(TABLE.c.request_id, TABLE.c.attempt).where(TABLE.c.request_id.in_(ids))
        seen = {(rid, att) for rid, att in conn.execute(query)}
        fresh = []
        for row in rows:
            key = (row["request_id"], row["attempt"])
            if key not in seen:
                seen.add(key)
                fresh.append(row)
        rows = fresh
    if rows:
        _write_table(conn, rows)
        apply_rows(conn, rows)  # the hourly rollup, in the same transaction as the rows
    return len(rows)


# From this many rows a PostgreSQL batch goes in by COPY: several times the rows/s of a
# multi-row INSERT (the demo data's 10M rows, a writer catching up after an outage).
COPY_MIN_ROWS = 200
_COPY_SQL = f"COPY {TABLE.name} ({', '.join(COLUMNS)}) FROM STDIN"


def _write_table(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """The rows into llm_requests on `conn`'s transaction (rows hold exactly COLUMNS, as
    `normalize_row` leaves them)."""
    if conn.dialect.name != "postgresql" or len(rows) < COPY_MIN_ROWS:
        conn.execute(insert(TABLE), rows)
        return
    # The psycopg connection under this SQLAlchemy connection: same session, same transaction.
    driver = conn.connection.driver_connection
    dbapi = conn.dialect.loaded_dbapi
    try:
        with driver.cursor() as cursor, cursor.copy(_COPY_SQL) as copy:
            for row in rows:
                copy.write_row([row[name] for name in COLUMNS])
    except dbapi.Error as exc:
        # As SQLAlchemy would raise it, so `is_outage` and the row-by-row retry see no difference.
        lost = conn.dialect.is_disconnect(exc, driver, None)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            _COPY_SQL, None, exc, dbapi.Error, connection_invalidated=lost, dialect=conn.dialect
        ) from None


Refused = list[tuple[dict[str, Any], str]]  # rows the database would not take, and why


def _insert_batch(
    engine: Engine, rows: list[dict[str, Any]], *, dedup: bool
) -> tuple[int, Refused]:
    """One transaction for the batch; if it fails for anything but an outage, row by row so
    one bad row cannot block the others. Returns (inserted, refused rows with the reason).
    Outages (`is_outage`) propagate: the rows are kept and retried."""
    try:
        with engine.begin() as conn:
            return _insert_rows(conn, rows, dedup), []
    except Exception as exc:
        if is_outage(exc):
            raise
    inserted, refused = 0, []
    for row in rows:
        try:
            with engine.begin() as conn:
                inserted += _insert_rows(conn, [row], dedup=True)
        except Exception as exc:
            if is_outage(exc):
                raise
            refused.append((row, _reason(exc)))
    return inserted, refused


# ---- spill files -----------------------------------------------------------------------


@contextmanager
def _locked(path: Path, flags: int) -> Iterator[int | None]:
    """An fd holding an exclusive flock on `path`, or None if the path vanished or was
    replaced while we waited (someone imported and removed it)."""
    try:
        fd = os.open(path, flags, 0o600)
    except FileNotFoundError:
        yield None
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(path)
            mine = os.fstat(fd)
            same = (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev)
        except FileNotFoundError:
            same = False
        yield fd if same else None
    finally:
        os.close(fd)  # also releases the lock


def _append_lines(path: Path, lines: Iterable[str]) -> None:
    # backslashreplace: a line that still holds a lone surrogate must not fail the others.
    data = "".join(line + "\n" for line in lines).encode("utf-8", "backslashreplace")
    for _ in range(5):  # a replaced file means we raced an import: open the new one
        with _locked(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT) as fd:
            if fd is None:
                continue
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            return
    raise OSError(f"could not append to {path}: it keeps being replaced")


def _claim_spill_path(spill_dir: Path) -> Path:
    spill_dir.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    for n in range(1, 100_000):
        path = spill_dir / f"{pid}-{n}.jsonl"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        return path
    raise OSError(f"no free spill file name in {spill_dir}")


def _set_aside(spill_dir: Path, lines: list[str], reason: str) -> None:
    """Keep rows the database refuses where an operator can find them; never raises (a full
    disk is logged, and must not look like a database outage to the writer)."""
    folder = spill_dir / "rejected"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _append_lines(folder / f"{os.getpid()}.jsonl", lines)
    except OSError as exc:
        log.error(
            "cannot set aside %d audit row(s) in %s: %s (%s)", len(lines), folder, exc, reason
        )
        return
    log.error(
        "%d audit row(s) set aside in %s: %s",
        len(lines),
        folder,
        reason,
        extra={"fields": {"rows": len(lines), "folder": str(folder)}},
    )


def _refused_lines(refused: Refused) -> list[str]:
    return [_to_line({**row, "rejected_reason": reason}) for row, reason in refused]


def _chunks(fd: int, size: int, bad: list[str]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    with open(fd, encoding="utf-8", errors="replace", closefd=False) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                chunk.append(normalize_row(json.loads(line)))
            except (ValueError, TypeError, AttributeError):
                bad.append(line.rstrip("\n"))
                continue
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _import_file(engine: Engine, path: Path, batch_size: int) -> int:
    """Insert a spill file's rows (skipping ones already present), then remove it."""
    with _locked(path, os.O_RDONLY) as fd:
        if fd is None:
            return 0
        inserted, bad = 0, []
        rejected: Refused = []
        for chunk in _chunks(fd, batch_size, bad):
            n, refused = _insert_batch(engine, chunk, dedup=True)
            inserted += n
            rejected += refused
        if bad:
            _set_aside(path.parent, bad, f"unreadable lines in {path.name}")
        if rejected:
            _set_aside(path.parent, _refused_lines(rejected), "refused by the database")
        path.unlink()
        return inserted


def import_spilled(engine: Engine, spill_dir: Path, *, batch_size: int = 500) -> int:
    """Import every spill file in `spill_dir` and remove it; returns the rows inserted.

    Idempotent: rows already in the table are skipped, so running it twice, or while
    writers spill and re-import, never duplicates a row."""
    total = 0
    if not spill_dir.is_dir():
        return 0
    try:
        for path in sorted(spill_dir.glob("*.jsonl")):
            total += _import_file(engine, path, batch_size)
    except Exception as exc:
        if isinstance(exc, OSError) or not is_outage(exc):
            raise
        raise unreachable(engine, exc) from None
    return total


# ---- the writer ------------------------------------------------------------------------


class AuditWriter:
    """Batches audit rows to the database on a daemon thread; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        *,
        spill_dir: Path,
        max_buffer: int = 10_000,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        retry_interval: float = 2.0,
        flush_on_sigterm: bool = True,
    ):
        self.engine = engine
        self.spill_dir = Path(spill_dir)
        self._max_buffer = max(1, max_buffer)
        self._batch_size = max(1, batch_size)
        self._flush_interval = flush_interval
        self._retry_interval = retry_interval
        self._stopping = self._closed = False
        self._fresh_state()
        atexit.register(self.close)
        lifecycle.register(self, sigterm=flush_on_sigterm)

    def _fresh_state(self) -> None:
        """Queue, buffer, lock, counters and a running thread: at start and in a forked child."""
        self._queue: deque[Any] = deque()  # rows from submit(), and flush markers (Events)
        self._buffer: list[dict[str, Any]] = []  # normalized rows the thread owns
        self._lock = threading.Lock()  # buffer, queue pops, spill file, counters
        self._wake = threading.Event()
        self._epoch = 0  # bumped when close() spills rows the thread may be writing
        self._own_files: dict[Path, int] = {}
        self._spill_path: Path | None = None
        self._written = self._rejected = 0
        self._last_error: str | None = None
        self._down = False
        self._uncertain = False  # the next batch may already be committed (ambiguous failure)
        self._retry_at = 0.0
        self._spill_failing = False
        self._thread = threading.Thread(target=self._run, name="gatehouse-audit", daemon=True)
        if not self._closed:
            self._thread.start()

    def _after_fork(self) -> None:
        """In a forked child (lifecycle.py): the parent's thread does not exist here, its
        queued rows and spill files are the parent's to write, its lock may be held, and its
        pooled connections must not be shared. Start over, and never write the parent's rows."""
        with suppress(Exception):
            self.engine.dispose(close=False)
        self._fresh_state()

    # ---- public ----------------------------------------------------------------------

    def submit(self, row: dict[str, Any]) -> None:
        """Queue one row; O(1), never touches the database, never raises."""
        try:
            self._queue.append(row)
            queued = len(self._queue)
            if queued >= self._batch_size:
                self._wake.set()
            if queued > 2 * self._max_buffer or self._closed:
                # The thread is stuck in a database call (or gone): keep memory bounded.
                self._spill_queue()
        except Exception:  # the audit must never break a call
            log.exception("audit submit failed")

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every row submitted so far is written, or spilled if the database is
        down. False if that did not happen within `timeout` seconds."""
        if not self._thread.is_alive():
            self._spill_all()
            return True
        marker = threading.Event()
        self._queue.append(marker)
        self._wake.set()
        return marker.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Flush, stop the thread; rows still unwritten then are spilled. Idempotent; never
        raises (it runs at exit and from the SIGTERM handler)."""
        if self._closed:
            return
        try:
            atexit.unregister(self.close)
            lifecycle.unregister(self)
            done = self.flush(timeout)
            self._closed = self._stopping = True
            self._wake.set()
            self._thread.join(timeout=min(timeout, 1.0) if done else 0.1)
            if not done or self._thread.is_alive():
                self._spill_all(lock_timeout=timeout)
        except Exception:
            log.exception("closing the audit writer failed")

    @property
    def stats(self) -> AuditStats:
        with self._lock:
            queued = sum(1 for item in list(self._queue) if isinstance(item, dict))
            return AuditStats(
                written=self._written,
                pending=len(self._buffer) + queued,
                spilled=sum(self._own_files.values()),
                last_error=self._last_error,
                rejected=self._rejected,
            )

    # ---- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            # During an outage too: every cycle spills what arrived (write-ahead), and the
            # database is retried once `retry_at` comes.
            timeout = self._flush_interval
            if self._down:
                timeout = min(timeout, max(0.0, self._retry_at - time.monotonic()))
            self._wake.wait(timeout)
            self._wake.clear()
            try:
                self._cycle()
            except Exception:  # never let the thread die; rows stay queued or buffered
                log.exception("audit writer cycle failed")
        with suppress(Exception):
            self._cycle()

    def _cycle(self) -> None:
        markers = self._take_queue()
        forced = bool(markers) or self._stopping
        due = not self._down or forced or time.monotonic() >= self._retry_at
        if due and (self._buffer or self._own_files):
            try:
                self._write_buffer()
                self._reimport_own_files()
                self._recovered()
            except Exception as exc:
                self._failed(exc)
        if self._down:
            # Write ahead: a SIGKILL during an outage loses at most this cycle's rows.
            self._spill_buffer(keep=0)
        for marker in markers:
            marker.set()

    def _take_queue(self) -> list[threading.Event]:
        markers: list[threading.Event] = []
        with self._lock:
            for _ in range(len(self._queue)):
                item = self._queue.popleft()
                if isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    self._accept(item, self._buffer)
        return markers

    def _accept(self, row: Any, into: list[dict[str, Any]]) -> None:
        """Normalize into `into`, or set the row aside (caller holds the lock)."""
        try:
            into.append(normalize_row(row))
        except Exception as exc:
            self._rejected += 1
            _set_aside(self.spill_dir, [_to_line(row)], _reason(exc))

    def _write_buffer(self) -> None:
        while True:
            with self._lock:
                batch = self._buffer[: self._batch_size]
                epoch = self._epoch
            if not batch:
                return
            inserted, refused = _insert_batch(self.engine, batch, dedup=self._uncertain)
            with self._lock:
                if self._epoch == epoch:
                    del self._buffer[: len(batch)]
                self._written += inserted
                self._rejected += len(refused)
            self._uncertain = False
            if refused:
                _set_aside(self.spill_dir, _refused_lines(refused), "refused by the database")

    def _reimport_own_files(self) -> None:
        with self._lock:
            # New spills go to a fresh file, so the ones imported here are complete.
            self._spill_path = None
            files = list(self._own_files)
        for path in files:
            inserted = _import_file(self.engine, path, self._batch_size)
            with self._lock:
                self._written += inserted
                self._own_files.pop(path, None)

    def _failed(self, exc: Exception) -> None:
        self._uncertain = True
        last_error = _reason(exc)
        reason = last_error.partition(": ")[2]
        with self._lock:
            self._last_error = last_error
        self._retry_at = time.monotonic() + self._retry_interval
        if not self._down:
            self._down = True
            log.warning(
                "audit database unreachable (%s); spilling rows to %s as they arrive, "
                "retrying every %.1fs",
                reason,
                self.spill_dir,
                self._retry_interval,
                extra={"fields": {"error": reason, "spill_dir": str(self.spill_dir)}},
            )

    def _recovered(self) -> None:
        with self._lock:
            self._last_error = None
        if self._down:
            self._down = False
            log.warning("audit database reachable again; buffered and spilled rows written")

    # ---- spilling --------------------------------------------------------------------

    def _spill_buffer(self, keep: int) -> None:
        with self._lock:
            excess = len(self._buffer) - keep
            if excess > 0 and self._spill(self._buffer[:excess]):
                del self._buffer[:excess]

    def _spill_queue(self) -> None:
        """From submit(): spill the newest queued rows; flush markers go back in line
        (later in line only delays them, never lets one pass an earlier row)."""
        with self._lock:
            rows: list[dict[str, Any]] = []
            markers = []
            while len(self._queue) > (0 if self._closed else self._max_buffer):
                item = self._queue.pop()
                if isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    self._accept(item, rows)
            if not self._spill(rows[::-1]):
                self._buffer.extend(rows)
            self._queue.extend(reversed(markers))

    def _spill_all(self, lock_timeout: float = -1) -> None:
        """Spill everything in memory now (close() when the thread cannot finish in time).
        The thread may still commit its current batch: importing skips such duplicates.
        With `lock_timeout`, give up rather than wait longer for the lock (a signal handler
        may have interrupted its own thread while that thread held it)."""
        if not self._lock.acquire(timeout=lock_timeout):
            log.error("audit rows left in memory: the writer's lock stayed busy")
            return
        try:
            self._epoch += 1
            rows, self._buffer = self._buffer, []
            markers = []
            while self._queue:
                item = self._queue.popleft()
                if isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    self._accept(item, rows)
            if not self._spill(rows):
                self._buffer = rows
        finally:
            self._lock.release()
        for marker in markers:
            marker.set()

    def _spill(self, rows: list[dict[str, Any]]) -> bool:
        """Append rows to this writer's spill file (caller holds the lock). False when the
        disk refuses: the caller keeps the rows in memory rather than lose them."""
        if not rows:
            return True
        try:
            if self._spill_path is None:
                self._spill_path = _claim_spill_path(self.spill_dir)
            if not self._spill_path.exists():  # `audit flush` imported it: count afresh
                self._own_files.pop(self._spill_path, None)
            _append_lines(self._spill_path, (_to_line(r) for r in rows))
        except OSError as exc:
            if not self._spill_failing:
                log.error(
                    "cannot spill audit rows to %s (%s); keeping them in memory",
                    self.spill_dir,
                    exc,
                )
            self._spill_failing = True
            return False
        self._spill_failing = False
        self._own_files[self._spill_path] = self._own_files.get(self._spill_path, 0) + len(rows)
        return True
