"""The console's server log carries the gateway's per-call JSON line (README: Logging)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest
from streamlit.testing.v1 import AppTest


@pytest.fixture
def unconfigured_gatehouse_logger() -> Iterator[None]:
    """The `gatehouse` logger as a fresh process has it (an in-process CLI test may have
    configured it), restored afterwards."""
    logger = logging.getLogger("gatehouse")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers = [h for h in logger.handlers if not getattr(h, "_gatehouse", False)]
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
    yield
    logger.handlers, logger.level, logger.propagate = saved[0], saved[1], saved[2]


@pytest.mark.usefixtures("unconfigured_gatehouse_logger")
def test_a_playground_call_writes_its_json_line_to_the_server_log(
    app_as: Callable[[str], AppTest],
    fake_provider: Callable[..., str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_provider("fake")
    app_as("operator").switch_page("pages/playground.py").run().chat_input(
        key="pg_input"
    ).set_value("Hello").run()
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line[:1] == "{"]
    [call] = [line for line in lines if line["msg"] == "LLM request completed"]
    assert (call["provider"], call["status"], call["attempts"]) == ("fake", "ok", 1)
