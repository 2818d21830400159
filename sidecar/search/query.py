"""The query side of search: the filter a query's options make, and the hits shown for the
rows LanceDB returns (one per document, its best chunk, with a snippet around the query words).
"""

from __future__ import annotations

import re
from typing import Any

from sidecar.search.index import quote

SNIPPET_CHARS = 240
_WORD = re.compile(r"\w+", re.UNICODE)


class SearchHit(dict[str, Any]):
    """``{kind, entityId, title, snippet, highlights, score, source}`` (see ``GET /v1/search``)."""


def snippet(text: str, query: str, width: int = SNIPPET_CHARS) -> tuple[str, list[list[int]], int]:
    """A window of ``text`` around the first query word found, the ``[start, end]`` offsets of
    query words inside the window, and the window's offset in ``text``."""
    words = {w.lower() for w in _WORD.findall(query) if len(w) > 1}
    matches = [m for m in _WORD.finditer(text) if m.group().lower() in words or
               any(m.group().lower().startswith(w[:5]) for w in words if len(w) >= 5)]
    first = matches[0].start() if matches else 0
    start = max(0, first - width // 3)
    if start:
        space = text.rfind(" ", 0, start)
        start = space + 1 if space >= 0 and start - space < 20 else start
    window = text[start:start + width]
    highlights = [[m.start() - start, m.end() - start] for m in matches if m.end() - start <= len(window)]
    return window, highlights, start


def where(*, kind: str | None = None, project_id: str | None = None, date_from: int | None = None,
          date_to: int | None = None) -> list[str]:
    """The SQL filter terms (LanceDB's ``where``) for a query's options; dates in ms."""
    filters: list[str] = []
    if kind:
        filters.append(f"kind = {quote(kind)}")
    if project_id:
        filters.append(f"project_id = {quote(project_id)}")
    if date_from is not None:
        filters.append(f"date >= {int(date_from)}")
    if date_to is not None:
        filters.append(f"date <= {int(date_to)}")
    return filters


def hits_of(rows: list[dict[str, Any]], q: str, limit: int) -> list[dict[str, Any]]:
    """At most ``limit`` hits (the ``GET /v1/search`` item shape, :class:`SearchHit`) from ranked
    chunk rows: the first chunk of each document, with its snippet, highlights and, for a file,
    the snippet's ``source`` offsets in the file's text."""
    hits: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r in rows:
        if r["doc_id"] in seen:
            continue
        seen.add(r["doc_id"])
        text, highlights, offset = snippet(r["text"] or "", q)
        source = None
        if r["kind"] == "file":
            start = int(r["start"]) + offset  # the snippet's own place in the file's text
            source = {"path": r["path"], "start": start, "end": start + len(text)}
        hits.append({"kind": r["kind"], "entityId": r["entity_id"], "title": r["title"] or "",
                     "snippet": text, "highlights": highlights, "score": round(float(r["_score"]), 6),
                     "projectId": r["project_id"], "date": r["date"], "source": source})
        if len(hits) >= limit:
            break
    return hits
