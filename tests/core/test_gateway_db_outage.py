"""The database outage under load, at the gateway (issue 13, "Database outage"): services wired
by `Gateway.from_env()` call through a real TCP proxy to PostgreSQL that is cut and restored; a
second process is stopped (SIGTERM) during the outage and its spill is imported with
`gatehouse audit flush`. No call fails, every upstream request has exactly one audit row, and
the hourly rollups equal the raw rows afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gatehouse_core import Gateway
from gatehouse_core.crypto import SecretBox
from gatehouse_core.db import make_engine
from gatehouse_core.providers import ProviderConfig
from gatehouse_core.registry import Registry
from gatehouse_core.schema import LLMRequest
from tests.core import test_audit
from tests.core.spend_data import assert_rollups_match_raw
from tests.core.test_audit import REPO_ROOT, audit_flush
from tests.fakes.openrouter import DEFAULT_KEY, FakeOpenRouter, Reply
from tests.soak import scaled, soak_scale

pytestmark = pytest.mark.soak
pg_proxy = test_audit.pg_proxy  # the fixture: the test database behind a TcpProxy

WORKER = Path(__file__).with_name("outage_worker.py")
MESSAGES = [{"role": "user", "content": "hello through a database outage"}]
THREADS = 4
STEP = scaled(20)  # calls each side makes before, during and after the cut
WAIT = 60 * max(1.0, soak_scale())
STOPPING = "the process is stopping; the request was not sent"


class Calls:
    """Outcomes so far ("ok" or "fail …"); waiters block until a count is reached."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()

    def add(self, line: str) -> None:
        with self._cond:
            self.lines.append(line)
            self._cond.notify_all()

    def wait_for(self, count: int, what: str) -> None:
        with self._cond:
            reached = self._cond.wait_for(lambda: len(self.lines) >= count, WAIT)
            assert reached, f"{what}: stuck at {len(self.lines)} of {count} calls"

    def __len__(self) -> int:
        with self._cond:
            return len(self.lines)

    @property
    def failures(self) -> list[str]:
        """Calls that failed, but those refused once SIGTERM was stopping the process."""
        return [line for line in self.lines if line != "ok" and STOPPING not in line]


def call_until(gateway: Gateway, calls: Calls, stop: threading.Event, seed: int) -> None:
    for n in range(100_000):  # bounded; `stop` ends it
        if stop.is_set():
            return
        try:
            if (n + seed) % 2:
                gateway.chat(MESSAGES, max_tokens=20)
            else:
                "".join(gateway.stream(MESSAGES, max_tokens=20))
            calls.add("ok")
        except BaseException as exc:  # noqa: BLE001 -- any failure at all is what we look for
            calls.add(f"fail {exc!r}")
        stop.wait(0.005)


def read_lines(process: subprocess.Popen[str], calls: Calls) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        calls.add(line.strip())


@pytest.mark.timeout(300)
def test_calls_ride_through_a_database_outage_and_every_attempt_is_audited_once(
    pg_proxy, postgres_url: str, tmp_path: Path
) -> None:
    proxy, proxied = pg_proxy
    direct = make_engine(postgres_url)
    with FakeOpenRouter() as fake:
        fake.default_reply = Reply(text="fine, thanks", chunk_delay=0.001)
        Registry(direct, SecretBox.from_env()).add(
            ProviderConfig(name="primary", base_url=fake.base_url, default_model="test/m"),
            actor="test",
            api_key=DEFAULT_KEY,
        )
        worker_home = tmp_path / "worker-home"
        worker_calls, here = Calls(), Calls()
        worker = subprocess.Popen(
            [sys.executable, str(WORKER), str(THREADS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO_ROOT,
            env={
                **os.environ,
                "GATEHOUSE_DATABASE_URL": proxied,
                "GATEHOUSE_HOME": str(worker_home),
                "PYTHONPATH": str(REPO_ROOT),
            },
        )
        reader = threading.Thread(target=read_lines, args=(worker, worker_calls), daemon=True)
        reader.start()
        gateway = Gateway.from_env(database_url=proxied)
        stop = threading.Event()
        threads = [
            threading.Thread(target=call_until, args=(gateway, here, stop, seed), daemon=True)
            for seed in range(THREADS)
        ]
        try:
            for thread in threads:
                thread.start()
            worker_calls.wait_for(STEP, "worker before the cut")
            here.wait_for(STEP, "this process before the cut")

            proxy.stop()  # the database is gone for both processes
            cut_worker, cut_here = len(worker_calls), len(here)
            worker_calls.wait_for(cut_worker + STEP, "worker during the outage")
            worker.send_signal(signal.SIGTERM)  # stopped mid-outage: it must spill, not lose
            assert worker.wait(timeout=60) == -signal.SIGTERM
            reader.join(timeout=10)
            here.wait_for(cut_here + STEP, "this process during the outage")

            proxy.start()
            restored = len(here)
            here.wait_for(restored + STEP, "this process after the outage")
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
            if worker.poll() is None:
                worker.kill()
        writer = gateway.audit
        assert writer is not None
        for _ in range(20):  # bounded: the database is back, the writer catches up
            writer.flush(timeout=10)
            if writer.stats.pending == writer.stats.spilled == 0:
                break
        gateway.close()
        upstream_requests = fake.chat_count

    assert worker_calls.failures == [] and here.failures == []
    assert len(worker_calls) >= 2 * STEP and len(here) >= 4 * STEP
    assert "Imported " in audit_flush(postgres_url, worker_home)
    assert "Imported 0 " in audit_flush(postgres_url, worker_home)  # nothing left, nothing twice
    with direct.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(LLMRequest)).scalar_one()
        distinct = conn.execute(
            select(func.count()).select_from(
                select(LLMRequest.request_id, LLMRequest.attempt).distinct().subquery()
            )
        ).scalar_one()
        not_sent = conn.execute(
            select(func.count()).where(LLMRequest.status == "rejected")
        ).scalar_one()
        stopped = conn.execute(
            select(func.count()).where(LLMRequest.error_type == "process_stopped")
        ).scalar_one()
    assert rows == distinct  # no (request_id, attempt) twice
    assert rows - not_sent == upstream_requests  # one row per request the upstream saw
    assert stopped <= THREADS  # the worker's calls on the wire when it was stopped
    assert_rollups_match_raw(direct)
    direct.dispose()
