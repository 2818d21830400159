"""Fusing the two legs of a hybrid query: weighted reciprocal-rank fusion of the full-text and
vector rankings (:func:`weighted_rrf`) and the vector leg's guaranteed slot (:func:`promote`).
Pure functions over result rows (dicts with ``id``, ``doc_id`` and ``_score``)."""

from __future__ import annotations

from typing import Any


def weighted_rrf(fts: list[dict[str, Any]], vec: list[dict[str, Any]], vector_weight: float = 1.0,
                 k: int = 60) -> list[dict[str, Any]]:
    """Reciprocal-rank fusion with a weight on the vector leg (Cormack et al., 2009, k = 60):
    a chunk scores ``1/(k + fts rank) + vector_weight/(k + vector rank)`` (ranks from 1; a leg
    that did not find it adds nothing). Best first, ``_score`` = the fused score; equal scores
    (e.g. weight 0) go by vector rank."""
    scores: dict[str, float] = {}
    vrank: dict[str, int] = {}
    rows: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(fts, 1):
        scores[r["id"]] = scores.get(r["id"], 0.0) + 1.0 / (k + i)
        rows[r["id"]] = r
    for i, r in enumerate(vec, 1):
        scores[r["id"]] = scores.get(r["id"], 0.0) + vector_weight / (k + i)
        vrank[r["id"]] = i
        rows.setdefault(r["id"], r)
    order = sorted(scores, key=lambda c: (-scores[c], vrank.get(c, 1 << 30)))
    return [{**rows[c], "_score": scores[c]} for c in order]


def promote(rows: list[dict[str, Any]], doc_id: str, slot: int) -> list[dict[str, Any]]:
    """``rows`` (chunks best first) with the first chunk of document ``doc_id`` moved up to just
    before the first chunk of the ``slot``-th document, when ``doc_id`` comes later than that
    (else unchanged). The moved chunk takes the score of the one it now precedes, so scores
    still never increase down the list. ``slot`` counts documents, from 1."""
    first: dict[str, int] = {}
    for i, r in enumerate(rows):
        first.setdefault(r["doc_id"], i)
    docs = list(first)  # in order of first appearance
    if doc_id not in first or docs.index(doc_id) < slot:
        return rows
    i, j = first[doc_id], first[docs[slot - 1]]
    moved = {**rows[i], "_score": rows[j]["_score"]}
    return [*rows[:j], moved, *(r for n, r in enumerate(rows[j:], j) if n != i)]
