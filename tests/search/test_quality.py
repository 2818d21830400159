"""Retrieval quality on real public text (``quality.py``: labelled queries written from the
corpus descriptions, never tuned on). Guards what holds today; the figures are printed by
``python -m tests.search.quality`` and ``tests/bench/bench_search.py``.

Measured (wordllama, 33 queries): keyword hit@5 0.939 / MRR 0.853, vector 0.788 / 0.687,
hybrid 0.939 / 0.805 — hybrid beats vector-only and ties keyword on hit@5, but its MRR is
below keyword-only's: the issue's "hybrid must beat both" does not hold yet with this embedder.
"""

from __future__ import annotations

from tests.search.quality import evaluate


async def test_hybrid_beats_vector_only_and_keeps_keyword_recall() -> None:
    m = await evaluate()
    assert m["hybrid"]["hit@5"] > m["vector"]["hit@5"] and m["hybrid"]["mrr"] > m["vector"]["mrr"], m
    assert m["hybrid"]["hit@5"] >= m["keyword"]["hit@5"], m
    assert m["keyword"]["hit@5"] >= 0.8, m  # the keyword path itself works on real text
