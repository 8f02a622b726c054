"""The audit writer across process lifecycles, in real subprocesses: SIGKILL during an outage
(write-ahead), SIGTERM (flush, then chain to the previous handler), and fork (issue 7, items
3 and 4)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gatehouse_core.db import make_engine
from tests.core import test_audit
from tests.core.test_audit import REPO_ROOT, audit_flush, keys, spill_lines

pg_proxy = test_audit.pg_proxy  # the fixture: the test database behind a TcpProxy

# argv: database URL, spill dir, rows, mode. The writer's own flush interval is long unless
# the mode needs cycles, so rows stay in memory until a lifecycle event moves them.
CHILD = """
import json, os, signal, sys, threading, time
from pathlib import Path
from gatehouse_core.audit import AuditWriter
from gatehouse_core.db import make_engine

url, spill_dir, rows, mode = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

def row(prefix, n):
    return {"request_id": f"{prefix}-{n}", "attempt": 1, "provider": "p", "model": "m",
            "status": "ok"}

if mode == "app-handler":  # the application's own handler, installed before the gateway
    def on_term(signum, frame):
        print("app handler ran", flush=True)
        os._exit(3)  # skips atexit: only the flush before this handler saves the rows
    signal.signal(signal.SIGTERM, on_term)

interval = 0.02 if mode == "cycles" else 60
writer = AuditWriter(make_engine(url, migrate=False), spill_dir=spill_dir,
                     flush_interval=interval, retry_interval=60)

if mode == "fork":  # the parent's rows are queued when it forks; the child adds its own
    for n in range(rows):
        writer.submit(row("parent", n))
    pid = os.fork()
    if pid == 0:
        for n in range(rows):
            writer.submit(row("child", n))
        sys.exit(0)  # no flush, no close: the child's own writer and atexit save the rows
    _, status = os.waitpid(pid, 0)
    writer.close()
    print(json.dumps({"child_status": status}), flush=True)
    sys.exit(0)

if mode == "multiprocessing":
    import multiprocessing

    def work():
        for n in range(rows):
            writer.submit(row("child", n))
        # returns without flush: multiprocessing leaves through os._exit (atexit skipped)

    for n in range(rows):
        writer.submit(row("parent", n))
    child = multiprocessing.get_context("fork").Process(target=work)
    child.start()
    child.join(60)
    writer.close()
    print(json.dumps({"child_exitcode": child.exitcode}), flush=True)
    sys.exit(0)

for n in range(rows):
    writer.submit(row("row", n))
print("submitted", flush=True)
time.sleep(120)  # until the test's signal
"""


def start_child(url: str, spill_dir: Path, rows: int, mode: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(spill_dir), str(rows), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "submitted"
    return child


def run_child(url: str, spill_dir: Path, rows: int, mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(spill_dir), str(rows), mode],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=REPO_ROOT,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def stop(child: subprocess.Popen[str], sig: int) -> tuple[int, str, str]:
    child.send_signal(sig)
    try:
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()  # only this test's own child; a no-op once it exited
    return child.returncode, out, err


@pytest.fixture
def spill_dir(tmp_path: Path) -> Path:
    return tmp_path / ".gatehouse" / "audit-spill"


def wait_for(condition, seconds: float = 15.0) -> bool:  # noqa: ANN001
    """Poll `condition` (bounded in time); the caller asserts the result."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# ---- SIGKILL during an outage: write-ahead ---------------------------------------------


@pytest.mark.timeout(90)
def test_sigkill_during_an_outage_loses_no_row_the_writer_had_a_cycle_for(
    pg_proxy, postgres_url: str, spill_dir: Path
) -> None:
    proxy, url = pg_proxy
    proxy.stop()
    child = start_child(url, spill_dir, 60, "cycles")
    # Far fewer rows than max_buffer: before write-ahead they stayed in memory only.
    spilled = wait_for(lambda: len(spill_lines(spill_dir)) >= 60)
    returncode, _, err = stop(child, signal.SIGKILL)
    assert returncode == -signal.SIGKILL
    assert spilled, err

    proxy.start()
    assert "Imported 60 " in audit_flush(postgres_url)
    assert "Imported 0 " in audit_flush(postgres_url)
    engine = make_engine(postgres_url)
    assert keys(engine) == sorted((f"row-{n}", 1) for n in range(60))
    engine.dispose()


# ---- SIGTERM -----------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_sigterm_writes_the_buffered_rows_and_still_ends_the_process(
    db_url: str, spill_dir: Path
) -> None:
    make_engine(db_url).dispose()  # migrated
    child = start_child(db_url, spill_dir, 30, "idle")
    returncode, _, err = stop(child, signal.SIGTERM)
    assert returncode == -signal.SIGTERM, err  # the default action, re-delivered
    engine = make_engine(db_url)
    assert keys(engine) == sorted((f"row-{n}", 1) for n in range(30))
    engine.dispose()


@pytest.mark.timeout(90)
def test_sigterm_during_an_outage_spills_and_audit_flush_imports_each_row_once(
    pg_proxy, postgres_url: str, spill_dir: Path
) -> None:
    proxy, url = pg_proxy
    proxy.stop()
    child = start_child(url, spill_dir, 30, "idle")
    returncode, _, err = stop(child, signal.SIGTERM)
    assert returncode == -signal.SIGTERM, err
    assert len(spill_lines(spill_dir)) == 30

    proxy.start()
    assert "Imported 30 " in audit_flush(postgres_url)
    assert "Imported 0 " in audit_flush(postgres_url)
    engine = make_engine(postgres_url)
    assert keys(engine) == sorted((f"row-{n}", 1) for n in range(30))
    engine.dispose()


@pytest.mark.timeout(90)
def test_sigterm_while_the_database_never_answers_spills_within_the_bound(
    pg_proxy, postgres_url: str, spill_dir: Path
) -> None:
    proxy, url = pg_proxy
    proxy.blackhole()  # the writer's connect hangs: close() must give up and spill
    child = start_child(url, spill_dir, 30, "idle")
    returncode, _, err = stop(child, signal.SIGTERM)
    assert returncode == -signal.SIGTERM, err
    assert sorted(r["request_id"] for r in spill_lines(spill_dir)) == sorted(
        f"row-{n}" for n in range(30)
    )

    proxy.restore()
    assert "Imported 30 " in audit_flush(postgres_url)


@pytest.mark.timeout(90)
def test_sigterm_flushes_then_calls_the_applications_own_handler(
    sqlite_url: str, spill_dir: Path
) -> None:
    make_engine(sqlite_url).dispose()
    child = start_child(sqlite_url, spill_dir, 20, "app-handler")
    returncode, out, err = stop(child, signal.SIGTERM)
    assert (returncode, out.strip()) == (3, "app handler ran"), err
    engine = make_engine(sqlite_url)
    assert keys(engine) == sorted((f"row-{n}", 1) for n in range(20))
    engine.dispose()


INSTALL = """
import json, signal, threading
from pathlib import Path
from gatehouse_core import lifecycle
from gatehouse_core.audit import AuditWriter
from gatehouse_core.db import make_engine

engine = make_engine("sqlite://", migrate=False)
seen = {}
def on_worker_thread():
    AuditWriter(engine, spill_dir=Path("spill"))
    seen["worker"] = signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
t = threading.Thread(target=on_worker_thread)
t.start(); t.join()
signal.signal(signal.SIGTERM, signal.SIG_IGN)
AuditWriter(engine, spill_dir=Path("spill"))
seen["ignored_stays_ignored"] = signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
signal.signal(signal.SIGTERM, signal.SIG_DFL)
AuditWriter(engine, spill_dir=Path("spill"))
AuditWriter(engine, spill_dir=Path("spill"))
seen["installed"] = signal.getsignal(signal.SIGTERM) is lifecycle._on_sigterm
seen["chains_to_default_not_itself"] = lifecycle._previous is signal.SIG_DFL
print(json.dumps(seen))
"""


def test_sigterm_handler_is_installed_once_only_from_the_main_thread_and_never_over_sig_ign(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", INSTALL], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "worker": True,
        "ignored_stays_ignored": True,
        "installed": True,
        "chains_to_default_not_itself": True,
    }


# ---- fork --------------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["fork", "multiprocessing"])
def test_a_forked_child_writes_its_own_rows_and_never_the_parents(
    db_url: str, spill_dir: Path, mode: str
) -> None:
    make_engine(db_url).dispose()
    result = run_child(db_url, spill_dir, 25, mode)
    assert result in ({"child_status": 0}, {"child_exitcode": 0})
    engine = make_engine(db_url)
    expected = [(f"{who}-{n}", 1) for who in ("parent", "child") for n in range(25)]
    assert keys(engine) == sorted(expected)
    engine.dispose()
    # Had the child written the parent's queued rows too, the unique key would have refused
    # them and they would be set aside here.
    assert list(spill_dir.glob("**/*.jsonl")) == []
