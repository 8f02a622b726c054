"""Attempts on the wire when the process ends (inflight.py, `Gateway.interrupt_running`): each
gets one row saying the process stopped, the calling thread records nothing more, and nothing
new is sent. The SIGTERM wiring (lifecycle.py) is tested in a real subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from gatehouse_core import AllProvidersFailed, Gateway
from gatehouse_core.db import make_engine
from gatehouse_core.schema import LLMRequest
from tests.core.test_audit import REPO_ROOT
from tests.core.test_gateway_soak import Sink
from tests.fakes.openrouter import FakeOpenRouter, Reply, Slow

MESSAGES = [{"role": "user", "content": "are you there"}]


def wait_for_requests(fake: FakeOpenRouter, count: int) -> None:
    for _ in range(500):  # at most ~5 s
        if fake.chat_count >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"the upstream saw {fake.chat_count} requests, not {count}")


def in_thread(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(target())
        except BaseException as exc:  # noqa: BLE001 -- the test looks at what it was
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_call_on_the_wire_gets_one_stopped_row_and_nothing_new_is_sent(
    gateway_factory: Callable[..., Gateway], fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Slow(0.5))
    sink = Sink()
    gateway = gateway_factory("primary", audit=sink)
    thread, outcome = in_thread(lambda: gateway.chat(MESSAGES))
    wait_for_requests(fake_openrouter, 1)

    assert gateway.interrupt_running("SIGTERM") == 1
    [row] = sink.rows
    assert (row["status"], row["error_type"], row["final_attempt"]) == (
        "error",
        "process_stopped",
        True,
    )
    assert "SIGTERM" in row["error_message"] and row["cost_source"] == "unknown"
    thread.join(timeout=10)
    assert len(outcome) == 1 and outcome[0].text  # the answer came after all
    assert len(sink.rows) == 1  # ... and its thread recorded no second row for the attempt

    with pytest.raises(AllProvidersFailed, match="process is stopping"):
        gateway.chat(MESSAGES)
    assert fake_openrouter.chat_count == 1  # not sent
    assert [r["status"] for r in sink.rows] == ["error", "rejected"]
    assert sink.rows[1]["error_type"] == "process_stopping"
    assert gateway.interrupt_running("SIGTERM") == 0


def test_a_stream_cut_by_the_stop_records_what_had_arrived(
    gateway_factory: Callable[..., Gateway], fake_openrouter: FakeOpenRouter
) -> None:
    fake_openrouter.enqueue(Reply(text="one two three four five six", chunk_delay=0.2))
    sink = Sink()
    gateway = gateway_factory("primary", audit=sink)
    stream = gateway.stream(MESSAGES)
    first = next(iter(stream))
    assert first

    assert gateway.interrupt_running("exit") == 1
    [row] = sink.rows
    assert (row["status"], row["error_type"]) == ("incomplete", "process_stopped")
    assert row["output_tokens"] >= 1 and row["input_tokens"] >= 1  # estimated from what came
    assert "".join(stream)  # the rest is still read; no second row for the attempt
    assert len(sink.rows) == 1


def test_calls_that_ended_leave_nothing_running(
    gateway_factory: Callable[..., Gateway], fake_openrouter: FakeOpenRouter
) -> None:
    sink = Sink()
    gateway = gateway_factory("primary", audit=sink)
    gateway.chat(MESSAGES)
    "".join(gateway.stream(MESSAGES))
    assert gateway.interrupt_running("SIGTERM") == 0
    assert [r["status"] for r in sink.rows] == ["ok", "ok"]


CHILD = """
import threading, time
from gatehouse_core import Gateway

gateway = Gateway.from_env()
threading.Thread(
    target=lambda: gateway.chat([{"role": "user", "content": "slow one"}]), daemon=True
).start()
while True:
    time.sleep(0.1)
"""


def test_sigterm_audits_the_call_on_the_wire_before_the_process_ends(
    gateway_factory: Callable[..., Gateway], fake_openrouter: FakeOpenRouter
) -> None:
    gateway_factory("primary").close()  # the provider, in this test's database
    fake_openrouter.enqueue(Slow(30))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_requests(fake_openrouter, 1)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == -signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
    engine = make_engine()
    with engine.connect() as conn:
        rows = conn.execute(select(LLMRequest.status, LLMRequest.error_type)).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("error", "process_stopped")]
