"""Titles: Markdown markup out, list numbering and bullets out, tidy punctuation, length cut.

Shared by every document kind (one place for what a clean title is).
"""

from __future__ import annotations

import re

from sidecar.ingest.items import TITLE_MAX

#: List bullets: Markdown's, the ones PDF text keeps (● ○ ■ ▪ ◦ · – ➢ ► ◆ ❖ …) and the private-use
#: glyphs that Symbol/Wingdings bullets of Word documents come out as (U+F0B7 , U+F0A7 , …).
BULLETS = "-*+•●○■□▪◦·‣⁃–—➢➤►▶▸▹◆◇❖❏❑❒\uf020-\uf0ff"

#: A cell or line that says there is nothing: "N/A", "none", "TBD", "-", "?".
NOTHING = re.compile(r"^(?:n/?a|none|nothing|tbd|tbc|no actions?|-+|\?+)\b", re.I)

#: Words of a meeting record's own structure (its headings and form fields).
_RECORD_WORDS = frozenset(
    "meeting meetings minutes action actions items item date time dates times location venue attendees "
    "attendance present apologies agenda itemized decisions decision notes next steps step end start "
    "i e ie team purpose propose discussion summary follow up ups points outcomes".split()
)


def is_record_heading(title: str) -> bool:
    """True when ``title`` is made only of a meeting record's structure words ("Date & Time",
    "Meeting Minutes & Action Items", "Minutes (i.e. Decisions)"): a heading or field label that a
    PDF gives as a line of its own, not a task."""
    if re.search(r"\d", title):
        return False  # "Item 5" is a task's own title
    words = re.findall(r"[^\W\d_]+", title.lower())
    return len(words) >= 2 and all(w in _RECORD_WORDS for w in words)


_MARKUP_SUBS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"~~.*?~~"), " "),
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), " "),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"`([^`]*)`"), r"\1"),
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<![\w])_(?!\s)(.+?)(?<!\s)_(?![\w])"), r"\1"),
)
#: A character any of the substitutions above needs.
_MARKUP_CHARS = re.compile(r"[~!\[`*_]")
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")
_DANGLING_PREP = re.compile(r"\s+(?:by|due|on|before|until)$", re.I)


_STRUCK = re.compile(r"^\s*~~(?P<text>.*)~~\s*$")
_LEAD_DONE = re.compile(r"^[ \t]*(?:[✅✓✔☑☒]|\[(?:done|completed?)\]|\((?:done|completed?)\)|(?-i:DONE)\b[ \t]*:?)[ \t]*", re.I)
_TRAIL_DONE = re.compile(
    r"[ \t]*(?:[-–:][ \t]*)?(?:[✅✓✔☑]|\((?:done|completed?|finished)\)|\[(?:done|completed?|finished)\])[ \t.!]*$", re.I
)


def done_marker(text: str) -> tuple[str, bool]:
    """``(text without its done marker, marked done)``. Done markers: struck out entirely
    (``~~…~~``), a leading or trailing check mark (``✅ ✓ ✔ ☑``), ``(done)``/``[done]``/
    ``(completed)`` at either end, a leading ``DONE:``."""
    m = _STRUCK.match(text)
    if m and "~~" not in m.group("text"):
        return m.group("text").strip(), True
    stripped = _LEAD_DONE.sub("", text, count=1)
    stripped = _TRAIL_DONE.sub("", stripped, count=1)
    if stripped != text and stripped.strip():
        return stripped, True
    return text, False


def clean_markup(text: str) -> str:
    """Markdown inline syntax out: links → their text, images/struck text dropped, no emphasis."""
    if not _MARKUP_CHARS.search(text):
        return " ".join(text.split())  # most lines carry no markup: skip the substitutions
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


_LEAD_NUMBERING = re.compile(rf"^(?:[{BULLETS}>]+[ \t]*|\d{{1,3}}(?:\.\d{{1,3}})*[.)\-–:][ \t]*(?=\D)|[a-z]\)[ \t]+)+")
_TRAIL_URL = re.compile(r"[ \t]*[:–-]?[ \t]*<?https?://\S+>?[ \t]*$")
_TRAIL_VOTES = re.compile(r"(?:[ \t]*[+-]1[ \t]+[A-Za-z][\w.]{0,15})+[ \t]*$")
#: A trailing remark in brackets: "(i.e. …)", "(e.g. …)", "(n.b. …)", "(see …)", "(as part of …)".
_TRAIL_ASIDE = re.compile(
    r"[ \t]*\((?P<aside>(?:i\.?e\.?|e\.?g\.?|n\.?b\.?|see|cf\.?|note|maybe|possibly|as[ \t]+part[ \t]+of|for[ \t]+example)\b[^()]*)\)[ \t]*[.;,]?$",
    re.I,
)
_TRAIL_PUNCT = re.compile(r"[ \t]*[.;:,]+$")
#: Where a long title's trailing clause starts: ", including …", ", which …", ", focusing on …".
_TRAIL_CLAUSE = re.compile(
    r",[ \t]+(?=(?:which|including|focusing|highlighting|incorporating|allowing|so[ \t]+that|while|whereas"
    r"|because|since|e\.g\.|i\.e\.)\b)"
    r"|[ \t]+(?=(?:so[ \t]+that|in[ \t]+order[ \t]+to)\b)",  # a purpose clause, comma or not
    re.I,
)
#: A long item that opens with a short capitalised label and a colon ("Solidify the strategy: develop …",
#: "Group decision: Meeting cadence …"); the rest's first letter tells which part is the item.
_LEAD_LABEL = re.compile(r"^(?P<label>[A-Z][^:;,.()]{8,50}?):[ \t]+(?P<rest>\S.{30,})$")
#: Template words that are no title ("ACTION: text" in an empty minutes template).
_PLACEHOLDERS = frozenset({"text", "tbd", "tbc", "xxx", "todo", "...", "…", "name: text", "n/a"})


def clean_task_title(title: str) -> tuple[str, str | None]:
    """``(title, aside)``: a task title without list numbering or bullets left in it ("88.1-",
    "○"), a trailing link, trailing votes ("+1 JB"), a trailing remark in brackets ("(i.e. …)",
    "(e.g. …)", "(see …)") and, in a title longer than 70 characters, a leading label (kept as the
    title when what follows continues it in lower case or when it has three words or more, dropped
    when it is a category of one or two words before a sentence of its own) and a trailing clause (", which …", ", including …"); what is cut is returned as ``aside`` for the description and trailing punctuation (a
    question mark stays). A template placeholder ("text") becomes ``""``."""
    text = _LEAD_NUMBERING.sub("", title).strip()
    aside: str | None = None
    for _ in range(3):
        before = text
        text = _TRAIL_URL.sub("", text)
        text = _TRAIL_VOTES.sub("", text)
        m = _TRAIL_ASIDE.search(text)
        if m and len(re.findall(r"\w+", text[: m.start()])) >= 2:
            aside = m.group("aside") if aside is None else f"{m.group('aside')}; {aside}"
            text = text[: m.start()]
        text = _TRAIL_PUNCT.sub("", text).strip()
        if text == before:
            break
    if len(text) > 70:
        m = _LEAD_LABEL.match(text)
        if m and (m.group("rest")[:1].islower() or len(m.group("label").split()) >= 3):
            # "Implement key changes: formalise and optimise …": the label is the title
            aside = m.group("rest") if aside is None else f"{m.group('rest')}; {aside}"
            text = m.group("label")
        elif m:  # "Group decision: Meeting cadence …": a category of two words, the rest is the item
            text = m.group("rest")
    if len(text) > 70:
        m = _TRAIL_CLAUSE.search(text, 15)
        if m:
            clause = text[m.end() :]
            aside = clause if aside is None else f"{clause}; {aside}"
            text = text[: m.start()]
    if text.lower() in _PLACEHOLDERS:
        return "", aside
    return text, aside
