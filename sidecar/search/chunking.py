"""Splitting a document's text into chunks for the index, with character offsets back to it.

Chunks follow paragraph, then sentence, then word boundaries, each at most ``max_chars``
characters (default 1,200 ≈ 300 tokens: long enough for context, short enough that one chunk
is about one thing). Offsets are Python string indices into the text given (``text[start:end]
== chunk.text``), so the shell can highlight the passage in the source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CHARS = 1200
_BREAKS = (re.compile(r"\n\s*\n"), re.compile(r"(?<=[.!?])\s+"), re.compile(r"\s+"))


@dataclass(frozen=True)
class Chunk:
    """``text == source[start:end]`` (character offsets)."""

    start: int
    end: int
    text: str


def _split(text: str, start: int, end: int, max_chars: int, level: int) -> list[tuple[int, int]]:
    if end - start <= max_chars:
        return [(start, end)]
    if level >= len(_BREAKS):  # no boundary at all: hard cut
        return [(i, min(i + max_chars, end)) for i in range(start, end, max_chars)]
    pieces: list[tuple[int, int]] = []
    pos = start
    for m in _BREAKS[level].finditer(text, start, end):
        if m.start() > pos:
            pieces.append((pos, m.start()))
        pos = m.end()
    if pos < end:
        pieces.append((pos, end))
    out: list[tuple[int, int]] = []
    cur: tuple[int, int] | None = None
    for s, e in pieces:
        if e - s > max_chars:
            if cur:
                out.append(cur)
                cur = None
            out.extend(_split(text, s, e, max_chars, level + 1))
        elif cur is None:
            cur = (s, e)
        elif e - cur[0] <= max_chars:
            cur = (cur[0], e)  # pack neighbouring pieces (the separator between them included)
        else:
            out.append(cur)
            cur = (s, e)
    if cur:
        out.append(cur)
    return out


def chunk_text(text: str, max_chars: int = MAX_CHARS) -> list[Chunk]:
    """The chunks of ``text`` in order; empty or blank text gives none."""
    spans = _split(text, 0, len(text), max_chars, 0)
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append(Chunk(s, e, text[s:e]))
    return out
