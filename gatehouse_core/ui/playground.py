"""Helpers for the Playground page: chat history, call settings, compare runs, answer details.

History and compare results are kept in session state as plain dicts (ChatResult.to_json()),
so they survive reruns and hold nothing but text and numbers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import streamlit as st

from ..errors import StreamInterrupted
from . import format, snippets, untrusted
from .errors import message_for

SOURCE = "playground"
AUTO = ""  # provider/model choice meaning "let the gateway decide"
HISTORY_KEY = "pg_history"
COMPARE_KEY = "pg_compare"
RETRY_KEY = "pg_retry_prompt"  # the prompt "Retry" sends again on the next run
CURSOR = " ▌"
REASON_CHARS = 160  # of an attempt's error message, in the attempt chain
ALL_FAILED, NEXT_STEP = "All providers failed.", "Next step: "  # the gateway's wording
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
        """System prompt, then the conversation's answered turns (failed and stopped answers
        left out: the model never finished them)."""
        sent = [{"role": "system", "content": self.system}] if self.system.strip() else []
        sent += [
            {"role": t["role"], "content": t["content"]}
            for t in turns
            if t["role"] == "user" or not (t.get("error") or t.get("stopped"))
        ]
        return sent

    def snippet_call(self, turns: Sequence[Mapping[str, Any]], endpoint: Any) -> snippets.Call:
        """The call that asked the conversation's last prompt, for "View as code" (a sample
        prompt before the first); `endpoint` is the provider config whose base URL and
        default model the raw snippets use."""
        users = [i for i, t in enumerate(turns) if t["role"] == "user"]
        asked = turns[: users[-1] + 1] if users else [{"role": "user", "content": "Hello"}]
        messages = self.messages(asked)
        return snippets.Call(
            messages=messages,
            model=self.model,
            provider=self.provider,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            base_url=endpoint.base_url,
            default_model=endpoint.default_model,
        )


# ---- history ---------------------------------------------------------------------------


def history() -> list[dict[str, Any]]:
    return st.session_state.setdefault(HISTORY_KEY, [])


def reset() -> None:
    st.session_state[HISTORY_KEY] = []
    st.session_state.pop(COMPARE_KEY, None)
    st.session_state.pop(RETRY_KEY, None)


def can_retry(turns: Sequence[Mapping[str, Any]]) -> bool:
    return len(turns) >= 2 and turns[-2]["role"] == "user" and turns[-1]["role"] == "assistant"


def retry_last() -> None:
    """Callback of "Retry": drop the last exchange and ask its prompt again."""
    turns = history()
    if can_retry(turns):
        del turns[-1]
        st.session_state[RETRY_KEY] = turns.pop()["content"]


def answered(text: str, result: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": text, "meta": result.to_json(), "error": None}


def stopped(partial: str, result: Any = None) -> dict[str, Any]:
    """An answer cut short (Stop, or a new message while it streamed): kept, marked."""
    meta = result.to_json() if result is not None else None
    return {"role": "assistant", "content": partial, "meta": meta, "error": None, "stopped": True}


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
    if meta.get("ttft_ms") is not None:  # measured from the start of the call
        parts.append(f"first token after {format.ms(meta.get('ttft_ms'))}")
    return " · ".join(parts)


def attempts_label(attempts: Sequence[Mapping[str, Any]]) -> str:
    """`1 attempt`, `2 attempts (1 retry)`, `3 attempts (1 retry, 1 fallback)`: a retry is
    another try at the same provider, a fallback a move to the next one."""
    pairs = list(zip(attempts, attempts[1:], strict=False))
    retries = sum(a.get("provider") == b.get("provider") for a, b in pairs)
    fallbacks = len(pairs) - retries
    kinds = [
        _count(retries, "retry", "retries"),
        _count(fallbacks, "fallback", "fallbacks"),
    ]
    why = ", ".join(k for k in kinds if k)
    label = _count(len(attempts), "attempt", "attempts")
    return f"{label} ({why})" if why else label


def _count(n: int, one: str, many: str) -> str:
    return "" if n == 0 else f"{n} {one if n == 1 else many}"


def attempt_line(attempt: Mapping[str, Any]) -> str:
    status = attempt.get("status")
    http = f" HTTP {attempt['http_status']}" if attempt.get("http_status") else ""
    kind = f" {attempt['error_type']}" if attempt.get("error_type") else ""
    wait = f", waited {format.ms(attempt['wait_ms'])}" if attempt.get("wait_ms") else ""
    # Per-attempt time to first token (the gateway adds it; absent in older results).
    ttft = attempt.get("ttft_ms")
    first = f", first token after {format.ms(ttft)}" if ttft is not None else ""
    line = (
        f"{attempt.get('provider')} · `{attempt.get('model')}` → "
        f"{status}{http}{kind} ({format.ms(attempt.get('latency_ms'))}{wait}{first})"
    )
    reason = attempt.get("error_message")
    return f"{line}: {untrusted.text(format.clip(reason, REASON_CHARS))}" if reason else line


def error_headline(error: str, attempts: Sequence[Mapping[str, Any]]) -> str:
    """The error over a failed answer. With several attempts the gateway's message repeats
    the whole chain the attempts list shows; keep its first sentence and its next step."""
    if len(attempts) < 2 or not error.startswith(ALL_FAILED):
        return error
    _, _, hint = error.partition(NEXT_STEP)
    return f"{ALL_FAILED} Each attempt and its reason is listed below." + (
        f" {NEXT_STEP}{hint}" if hint else ""
    )


def render_details(meta: Mapping[str, Any] | None) -> None:
    """Under an answer: what was used and what it cost; the attempt chain when retried."""
    if not meta:
        return
    if meta.get("provider"):
        st.caption(summary_line(meta))
    attempts = meta.get("attempts") or []
    if len(attempts) > 1 or (attempts and not meta.get("provider")):
        with st.expander(attempts_label(attempts)):
            for number, attempt in enumerate(attempts, start=1):
                st.markdown(f"{number}. {attempt_line(attempt)}")


def show_error(message: str) -> None:
    """An error that may quote the upstream: shortened and shown as text, never Markdown."""
    st.error(untrusted.text(format.clip(message)), icon=":material/error:")


def render_turn(turn: Mapping[str, Any]) -> None:
    with st.chat_message(turn["role"]):
        render_answer(turn)


# ---- streaming -------------------------------------------------------------------------


def stream_answer(gateway: Any, settings: CallSettings, turns: list[dict[str, Any]]) -> None:
    """Ask for the answer to the last user turn, streaming it into the current chat message,
    and append the assistant turn to `turns`.

    Whatever ends the run mid-answer (Stop, a new message, another widget) reaches here as
    Streamlit's stop/rerun exception: the stream is closed, which ends the upstream request
    and records what was received. The turn is in the history from the start, marked stopped
    until the answer completes: with fast reruns the next run starts before this one has
    unwound, so it must already find the partial answer there, never a turn without one.
    """
    stop_slot, answer_slot = st.empty(), st.empty()
    stop_slot.button("Stop", key="pg_stop", icon=":material/stop_circle:")
    turn = stopped("")
    messages = settings.messages(turns)
    turns.append(turn)
    stream = None
    try:
        stream = gateway.stream(messages, **settings.kwargs())
        for delta in _with_waiting_indicator(stream):
            turn["content"] += delta
            answer_slot.markdown(untrusted.markdown(turn["content"]) + CURSOR)
    except StreamInterrupted as exc:
        final = failed(exc, exc.partial_text)
    except Exception as exc:
        final = failed(exc, turn["content"])
    except BaseException:
        if stream is not None:
            stream.close()
        result = getattr(stream, "result", None)  # set when the gateway reports a closed stream
        turn["meta"] = result.to_json() if result is not None else None
        raise
    else:
        final = answered(turn["content"], stream.result)
    _replace(turns, turn, final)
    stop_slot.empty()
    answer_slot.empty()
    render_answer(final)


def _replace(turns: list[dict[str, Any]], old: dict[str, Any], new: dict[str, Any]) -> None:
    for index, turn in enumerate(turns):
        if turn is old:
            turns[index] = new


def _with_waiting_indicator(stream: Iterator[str]) -> Iterator[str]:
    """The deltas, with a spinner and elapsed time until the first one (retries, fallback
    and a queued model all happen before it)."""
    with st.spinner("Waiting for the answer…", show_time=True):
        first = next(stream, None)
    if first is None:
        return
    yield first
    yield from stream


def render_answer(turn: Mapping[str, Any]) -> None:
    """A turn's body inside an already open chat message. Model output and prompts are
    untrusted: rendered without remote images, links or HTML."""
    if turn["content"]:
        st.markdown(untrusted.markdown(turn["content"]))
    if turn.get("error"):
        show_error(error_headline(turn["error"], (turn.get("meta") or {}).get("attempts") or []))
    if turn.get("stopped"):
        st.caption(":material/stop_circle: Stopped before the answer was complete.")
    render_details(turn.get("meta"))


# ---- conversation totals ---------------------------------------------------------------


def totals(turns: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Tokens and cost of every answer in the conversation (cost None when none is known)."""
    metas = [t["meta"] for t in turns if t["role"] == "assistant" and t.get("meta")]
    costs = [m["cost_usd"] for m in metas if m.get("cost_usd") is not None]
    return {
        "answers": sum(t["role"] == "assistant" for t in turns),
        "input_tokens": sum(m.get("input_tokens") or 0 for m in metas),
        "output_tokens": sum(m.get("output_tokens") or 0 for m in metas),
        "cost_usd": sum(costs) if costs else None,
    }


def totals_line(turns: Sequence[Mapping[str, Any]]) -> str:
    t = totals(turns)
    answers = _count(t["answers"], "answer", "answers") or "no answers"
    return (
        f"This conversation: {answers} · {format.tokens(t['input_tokens'])} in / "
        f"{format.tokens(t['output_tokens'])} out tokens · {format.usd(t['cost_usd'])}"
    )


def render_code(call: snippets.Call) -> None:
    """ "View as code": the next call of this conversation, in three forms, without a key."""
    with st.expander("View as code", icon=":material/code:"):
        st.caption(
            f"The API key is read from ${snippets.KEY_VARIABLE} (GateHouse reads it from its "
            "registry); it is never shown here."
        )
        python, sdk, shell = st.tabs(["gatehouse_core", "OpenAI SDK", "curl"])
        python.code(snippets.gatehouse_python(call), language="python")
        sdk.code(snippets.openai_python(call), language="python")
        shell.code(snippets.curl(call), language="bash")


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
