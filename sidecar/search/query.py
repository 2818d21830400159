"""The query side of search: the filter a query's options make, one query on a table
(:func:`search_table`, :func:`nearest_memories`), and the hits shown for the rows LanceDB
returns (one per document, its best chunk, with a snippet around the query words).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

from sidecar.search.index import Mode, quote

if TYPE_CHECKING:
    from sidecar.search.indexer import Target

log = logging.getLogger(__name__)

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


async def search_table(t: Target, q: str, filters: list[str], limit: int,
                       mode: Mode | None) -> tuple[list[dict[str, Any]], Mode]:
    """One search of table ``t`` (the query run in a worker thread): its hits and the mode used,
    ``hybrid`` when the table's embedder is loaded, else ``keyword``.

    Raises:
        TableRetired: a swap retired ``t`` before the query read it.
    """
    embedder = t.embedder  # the one that made its vectors, if loaded
    want: Mode = mode or ("hybrid" if embedder is not None else "keyword")
    if want != "keyword" and embedder is None:
        want = "keyword"
    vector = (await embedder.embed([q], count=False))[0] if embedder is not None and want != "keyword" else None
    try:
        # memory rows have no text: the full-text leg cannot find them, only the vector leg
        rows = await asyncio.to_thread(t.table.query, want, q, vector, " AND ".join(["kind != 'memory'", *filters]),
                                       limit * 4, embedder.min_similarity if embedder else 0.0,
                                       embedder.vector_weight if embedder else 1.0, " AND ".join(filters),
                                       embedder.vector_slot if embedder else 0)
    except ValueError as exc:  # e.g. the full-text index does not exist yet (empty table)
        log.debug("search query failed", extra={"reason": str(exc)})
        rows = []
    return hits_of(rows, q, limit), want


async def nearest_memories(t: Target, text: str, tier: str, limit: int) -> list[tuple[str, float]]:
    """``[(memory id, cosine)]``: the memories of ``tier`` in table ``t`` nearest ``text``, best
    first; [] when the table's embedder is not loaded.

    Raises:
        TableRetired: a swap retired ``t`` before the query read it.
    """
    if t.embedder is None:
        return []
    vector = (await t.embedder.embed([text], count=False))[0]
    rows = await asyncio.to_thread(t.table.query, "vector", None, vector,
                                   f"kind = 'memory' AND title = {quote(tier)}", limit)
    return [(r["entity_id"], float(r["_score"])) for r in rows]
