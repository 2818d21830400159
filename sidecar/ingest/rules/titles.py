"""Titles: Markdown markup out, list numbering and bullets out, tidy punctuation, length cut.

Shared by every document kind (one place for what a clean title is).
"""

from __future__ import annotations

import re

from sidecar.ingest.items import TITLE_MAX

#: A cell or line that says there is nothing: "N/A", "none", "TBD", "-", "?".
NOTHING = re.compile(r"^(?:n/?a|none|nothing|tbd|tbc|no actions?|-+|\?+)\b", re.I)


_MARKUP_SUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"~~.*?~~"), " "),
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), " "),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"`([^`]*)`"), r"\1"),
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<![\w])_(?!\s)(.+?)(?<!\s)_(?![\w])"), r"\1"),
)
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_DANGLING_PREP = re.compile(r"\s+(?:by|due|on|before|until)$", re.I)


def clean_markup(text: str) -> str:
    """Markdown inline syntax out: links → their text, images/struck text dropped, no emphasis."""
    for pattern, replacement in _MARKUP_SUBS:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def tidy(text: str) -> str:
    """Whitespace collapsed, empty brackets and dangling separators/prepositions removed, ≤ 500 chars."""
    text = _EMPTY_BRACKETS.sub(" ", text)
    text = " ".join(text.split())
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = text.strip(" \t-–—:;,|")
    text = _DANGLING_PREP.sub("", text)
    if len(text) > TITLE_MAX:
        cut = text[: TITLE_MAX - 1].rsplit(" ", 1)[0]
        text = cut + "…"
    return text


def first_sentence(text: str, *, joined: bool) -> tuple[str, str | None]:
    """``(title, rest)``: text joined from wrapped lines, or longer than 120 characters, is cut
    after its first sentence (the rest goes to the description)."""
    if not joined and len(text) <= 120:
        return text, None
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text, maxsplit=1)
    if len(parts) == 2 and len(parts[0]) >= 10:
        return parts[0], parts[1]
    return text, None
