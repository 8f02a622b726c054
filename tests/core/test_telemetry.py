"""JSON log lines, secret scrubbing and prompt truncation."""

from __future__ import annotations

import io
import json
import logging

import pytest

from gatehouse_core.telemetry import configure_logging, scrub, truncate


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    yield stream
    root = logging.getLogger("gatehouse")
    for handler in [h for h in root.handlers if getattr(h, "_gatehouse", False)]:
        root.removeHandler(handler)


@pytest.mark.parametrize(
    "secret",
    ["sk-or-v1-0123456789abcdef0123", "sk-proj-abcdefghijklmnopqrstuvwx", "Bearer abc.def-123"],
)
def test_scrub_removes_key_shaped_text(secret: str) -> None:
    cleaned = scrub(f"failed with {secret} in the header")
    assert secret not in cleaned and "[REDACTED]" in cleaned


def test_scrub_leaves_masked_keys_and_model_ids_alone() -> None:
    text = "key sk-or-…a1b2 for anthropic/claude-sonnet-4"
    assert scrub(text) == text


def test_truncate_keeps_200_characters_and_says_how_many_were_cut() -> None:
    assert truncate("x" * 200) == "x" * 200
    cut = truncate("y" * 450)
    assert cut.startswith("y" * 200) and cut.endswith("…[+250 chars]")


def test_json_line_carries_fields_and_is_scrubbed(log_lines: io.StringIO) -> None:
    configure_logging(logging.INFO, stream=log_lines)
    logging.getLogger("gatehouse.test").info(
        "LLM request completed",
        extra={"fields": {"provider": "p", "note": "sk-or-v1-secretsecret1"}},
    )
    line = json.loads(log_lines.getvalue())
    assert line["level"] == "info" and line["msg"] == "LLM request completed"
    assert line["provider"] == "p" and line["note"] == "[REDACTED]"
    assert line["logger"] == "gatehouse.test" and "ts" in line


def test_configuring_twice_replaces_the_handler(log_lines: io.StringIO) -> None:
    configure_logging(logging.INFO, stream=io.StringIO())
    configure_logging(logging.INFO, stream=log_lines)
    logging.getLogger("gatehouse.test").info("once")
    assert log_lines.getvalue().count("once") == 1


def test_plain_mode_prints_people_lines_and_skips_structured_records(
    log_lines: io.StringIO,
) -> None:
    configure_logging(logging.INFO, stream=log_lines, plain=True)
    log = logging.getLogger("gatehouse.test")
    log.warning("the dev key is in use")
    log.warning("LLM request completed", extra={"fields": {"status": "error"}})
    assert log_lines.getvalue() == "warning: the dev key is in use\n"


# ---- every stored key is scrubbed, whatever its shape -------------------------------------

GROQ_KEY = "gsk_" + "T7q" * 15  # not sk-…: only the registry knows it is a key
ODD_KEY = "Zx81" * 10  # no known shape at all


def test_a_provider_key_echoed_by_the_upstream_reaches_no_audit_row_or_log(
    gateway_factory, fake_openrouter, tmp_path, log_lines
) -> None:
    from sqlalchemy import select

    from gatehouse_core import GatewayError
    from gatehouse_core.audit import AuditWriter
    from gatehouse_core.db import make_engine
    from gatehouse_core.schema import LLMRequest
    from tests.fakes.openrouter import Error

    configure_logging(logging.INFO, stream=log_lines)
    engine = make_engine()  # this test's SQLite database, as the factory uses
    writer = AuditWriter(engine, spill_dir=tmp_path / "spill", flush_interval=0.05)
    for key, name in ((GROQ_KEY, "groq"), (ODD_KEY, "odd")):
        fake_openrouter.add_key(key)
        fake_openrouter.always(Error(403, f"Invalid API key provided: {key}"), model=f"test/{name}")
    gateway = gateway_factory(
        {"name": "groq", "api_key": GROQ_KEY}, {"name": "odd", "api_key": ODD_KEY}, audit=writer
    )
    with pytest.raises(GatewayError) as caught:
        gateway.chat([{"role": "user", "content": "hi"}])
    assert writer.flush()
    with engine.connect() as conn:
        messages = [m for (m,) in conn.execute(select(LLMRequest.error_message))]
    engine.dispose()
    assert len(messages) == 2 and all("[REDACTED]" in m for m in messages)
    for key in (GROQ_KEY, ODD_KEY):
        assert key not in " ".join(messages)
        assert key not in log_lines.getvalue()
        assert key not in str(caught.value)


def test_codegen_api_key_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEGEN_API_KEY", ODD_KEY)
    assert scrub(f"upstream said: bad key {ODD_KEY}.") == "upstream said: bad key [REDACTED]."
