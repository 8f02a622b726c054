"""Helpers for the Playground page: chat history, call settings, compare runs, answer details.

History and compare results are kept in session state as plain dicts (ChatResult.to_json()),
so they survive reruns and hold nothing but text and numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import streamlit as st

from . import format
from .errors import message_for

SOURCE = "playground"
AUTO = ""  # provider/model choice meaning "let the gateway decide"
HISTORY_KEY = "pg_history"
COMPARE_KEY = "pg_compare"
MAX_COMPARE = 3
COST_SOURCES = {
    "provider": "reported by the provider",
    "estimated": "estimated from catalog prices",
    "unknown": "unknown",
}


@dataclass(frozen=True)
class CallSettings:
    """What the settings panel chose, as keyword arguments for Gateway.chat/stream."""

    model: str | None
    provider: str | None
    system: str
    temperature: float | None
    max_tokens: int | None
    actor: str

    def kwargs(self, model: str | None = None) -> dict[str, Any]:
        return {
            "model": model or self.model,
            "provider": self.provider,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "source": SOURCE,
            "actor": self.actor,
        }

    def messages(self, turns: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
        """System prompt, then the conversation's answered turns (failed answers left out)."""
        sent = [{"role": "system", "content": self.system}] if self.system.strip() else []
        sent += [
            {"role": t["role"], "content": t["content"]}
            for t in turns
            if t["role"] == "user" or not t.get("error")
        ]
        return sent


# ---- history ---------------------------------------------------------------------------


def history() -> list[dict[str, Any]]:
    return st.session_state.setdefault(HISTORY_KEY, [])


def reset() -> None:
    st.session_state[HISTORY_KEY] = []
    st.session_state.pop(COMPARE_KEY, None)


def answered(text: str, result: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": text, "meta": result.to_json(), "error": None}


def failed(exc: BaseException, partial: str = "") -> dict[str, Any]:
    attempts = [a.to_json() for a in getattr(exc, "attempts", [])]
    return {
        "role": "assistant",
        "content": partial,
        "meta": {"attempts": attempts} if attempts else None,
        "error": message_for(exc),
    }


# ---- answer details --------------------------------------------------------------------


def summary_line(meta: Mapping[str, Any]) -> str:
    """`provider · model · 12 in / 34 out tokens · $0.0001 (reported) · 850 ms · TTFT 120 ms`."""
    parts = [
        f"**{meta.get('provider')}** · `{meta.get('model')}`",
        f"{format.tokens(meta.get('input_tokens'))} in / "
        f"{format.tokens(meta.get('output_tokens'))} out tokens",
        f"{format.usd(meta.get('cost_usd'))} "
        f"({COST_SOURCES.get(meta.get('cost_source') or 'unknown', 'unknown')})",
        f"{format.ms(meta.get('latency_ms'))} total",
    ]
    if meta.get("ttft_ms") is not None:
        parts.append(f"first token after {format.ms(meta.get('ttft_ms'))}")
    return " · ".join(parts)


def attempt_line(attempt: Mapping[str, Any]) -> str:
    status = attempt.get("status")
    http = f" HTTP {attempt['http_status']}" if attempt.get("http_status") else ""
    kind = f" {attempt['error_type']}" if attempt.get("error_type") else ""
    wait = f", waited {format.ms(attempt['wait_ms'])}" if attempt.get("wait_ms") else ""
    return (
        f"{attempt.get('provider')} · `{attempt.get('model')}` → {status}{http}{kind} "
        f"({format.ms(attempt.get('latency_ms'))}{wait})"
    )


def render_details(meta: Mapping[str, Any] | None) -> None:
    """Under an answer: what was used and what it cost; the attempt chain when retried."""
    if not meta:
        return
    if meta.get("provider"):
        st.caption(summary_line(meta))
    attempts = meta.get("attempts") or []
    if len(attempts) > 1 or (attempts and not meta.get("provider")):
        with st.expander(f"{len(attempts)} attempts (retry or fallback)"):
            for number, attempt in enumerate(attempts, start=1):
                st.markdown(f"{number}. {attempt_line(attempt)}")


def render_turn(turn: Mapping[str, Any]) -> None:
    with st.chat_message(turn["role"]):
        if turn["content"]:
            st.markdown(turn["content"])
        if turn.get("error"):
            st.error(turn["error"], icon=":material/error:")
        render_details(turn.get("meta"))


# ---- compare ---------------------------------------------------------------------------


def compare(gateway: Any, settings: CallSettings, prompt: str, models: Sequence[str]) -> dict:
    """Send one prompt to each model at once; each entry holds a result or an error."""
    messages = settings.messages([{"role": "user", "content": prompt}])

    def one(model: str) -> dict[str, Any]:
        try:
            result = gateway.chat(messages, **settings.kwargs(model))
        except Exception as exc:  # each column reports its own failure
            return {"model": model, "result": None, "error": message_for(exc)}
        return {"model": model, "result": result.to_json(), "error": None}

    with ThreadPoolExecutor(max_workers=MAX_COMPARE) as pool:
        outcomes = list(pool.map(one, list(models)[:MAX_COMPARE]))
    return {"prompt": prompt, "outcomes": outcomes}


def compare_rows(outcomes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for o in outcomes:
        r = o.get("result") or {}
        rows.append(
            {
                "Requested model": o["model"],
                "Provider": r.get("provider", "—"),
                "Model used": r.get("model", "—"),
                "Input tokens": r.get("input_tokens"),
                "Output tokens": r.get("output_tokens"),
                "Cost": format.usd(r.get("cost_usd")) if r else "—",
                "Latency": format.ms(r.get("latency_ms")) if r else "—",
                "Status": "ok" if r else "failed",
            }
        )
    return rows
