"""Markdown structure from a real parser (``markdown-it-py``, CommonMark + tables).

The line rules need to know which lines are headings (ATX ``## x`` *and* setext ``x`` over
``===``) and which lines are code (fenced blocks, raw HTML blocks), where regexes over single
lines get setext headings, fences inside lists and HTML comments wrong. Indented code blocks are
not treated as code: in hand-written to-do files a four-space indent is a nested list far more
often than code.
"""

from __future__ import annotations

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


def structure(text: str) -> Structure:
    """The heading and code lines of the Markdown ``text`` (line numbers as in ``text.split("\\n")``)."""
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
