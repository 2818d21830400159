"""Markdown structure from a real parser (``markdown-it-py``, CommonMark + tables).

The line rules need to know which lines are headings (ATX ``## x`` *and* setext ``x`` over
``===``) and which lines are code (fenced blocks, raw HTML blocks), where regexes over single
lines get setext headings, fences inside lists and HTML comments wrong. Indented code blocks are
not treated as code: in hand-written to-do files a four-space indent is a nested list far more
often than code.

Most notes have none of what needs the parser (no fence, no HTML block, no setext underline, no
heading inside a list or quote); their structure is read from the ATX heading lines alone, which
gives the same result as the parser at a fraction of the cost (tested against it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markdown_it import MarkdownIt

#: Block structure only: inline parsing (emphasis, links) is not needed and costs half the time;
#: a heading's inline token still carries its raw text.
_PARSER = MarkdownIt("commonmark").enable("table").disable("inline")


@dataclass(frozen=True)
class Structure:
    """``headings``: 0-based line → heading text (first line of a setext heading); ``covered``:
    lines that are part of a heading but not its first (a setext underline); ``code``: lines of
    fenced code and HTML blocks."""

    headings: dict[int, str]
    covered: frozenset[int]
    code: frozenset[int]


#: What only the parser reads right: fences (anywhere, lists indent them), HTML blocks, setext
#: underlines (also ``---`` rules), headings inside a list item or a block quote (on the item's
#: line, or indented under it).
_NEEDS_PARSER = re.compile(
    r"```|~~~|^ {0,3}<|^ {0,3}(?:=+|-+)[ \t]*$|^[ \t]*(?:[-*+>]|\d{1,9}[.)])[ \t]+(?:>[ \t]*)*#{1,6}(?:[ \t]|$)"
    r"|^(?: {4,}|\t)[ \t]*#{1,6}(?:[ \t]|$)",
    re.MULTILINE,
)
#: A CommonMark ATX heading (§4.2): up to 3 spaces, 1–6 ``#``, then a space or the line end; an
#: optional closing run of ``#`` after a space.
_ATX = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+(?P<text>.*?))?(?:[ \t]+#+)?[ \t]*$")


def structure(text: str) -> Structure:
    """The heading and code lines of the Markdown ``text`` (line numbers as in ``text.split("\\n")``)."""
    if not _NEEDS_PARSER.search(text):
        headings = {}
        for number, line in enumerate(text.split("\n")):
            if line.lstrip(" ")[:1] == "#":
                m = _ATX.match(line)
                if m:
                    headings[number] = (m.group("text") or "").strip()
        return Structure(headings=headings, covered=frozenset(), code=frozenset())
    return parsed_structure(text)


def parsed_structure(text: str) -> Structure:
    """:func:`structure` by the parser, always (the reference the fast path is tested against)."""
    tokens = _PARSER.parse(text)
    headings: dict[int, str] = {}
    covered: set[int] = set()
    code: set[int] = set()
    for k, tok in enumerate(tokens):
        if tok.map is None:
            continue
        start, end = tok.map
        if tok.type == "heading_open":
            inline = tokens[k + 1] if k + 1 < len(tokens) else None
            headings[start] = (inline.content if inline is not None else "").strip()
            covered.update(range(start + 1, end))
        elif tok.type in ("fence", "html_block"):
            code.update(range(start, end))
    return Structure(headings=headings, covered=frozenset(covered), code=frozenset(code))
