"""The chunk table's query path on a real LanceDB folder: the weighted reciprocal-rank fusion,
the vector leg's reserved place, the legs' filters and the IVF vector index a large table gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sidecar.search import index
from sidecar.search.fusion import promote, weighted_rrf
from sidecar.search.index import LanceStore


def _row(i: int, text: str, vector: np.ndarray, kind: str = "note") -> dict[str, Any]:
    return {"id": f"{kind}:{i}#0", "doc_id": f"{kind}:{i}", "kind": kind, "entity_id": str(i), "project_id": None,
            "title": f"t{i}", "text": text, "start": 0, "end": len(text), "path": None, "date": None,
            "updated_at": 0, "text_hash": str(i), "embedder": "test", "dim": vector.shape[0],
            "vector": vector.tolist()}


def test_weighted_rrf_lets_a_weak_vector_leg_move_keyword_ranks_only_a_little() -> None:
    fts = [{"id": f"k{i}"} for i in range(30)]
    vec = [{"id": "k19"}, {"id": "only-vector"}]
    equal = [r["id"] for r in weighted_rrf(fts, vec, 1.0)]
    assert equal.index("k19") == 0 and equal.index("only-vector") < 10, equal  # to the top
    weak = [r["id"] for r in weighted_rrf(fts, vec, 0.05)]
    assert 10 <= weak.index("k19") < 19, weak  # moved up a few places, not to the top
    assert weak[:10] == [f"k{i}" for i in range(10)] and weak[-1] == "only-vector", weak
    # weight 0: keyword order, then vector-only matches in vector order
    assert [r["id"] for r in weighted_rrf([], [{"id": "d"}, {"id": "e"}], 0.0)] == ["d", "e"]


def test_promote_moves_a_document_up_to_its_slot_counting_documents_not_chunks() -> None:
    rows = [{"id": f"{d}#{n}", "doc_id": d, "_score": s}
            for d, n, s in [("a", 0, 9.0), ("a", 1, 8.0), ("b", 0, 7.0), ("c", 0, 6.0), ("d", 0, 5.0), ("d", 1, 4.0)]]
    got = promote(rows, "d", 2)
    assert [r["id"] for r in got] == ["a#0", "a#1", "d#0", "b#0", "c#0", "d#1"]
    assert [r["_score"] for r in got] == [9.0, 8.0, 7.0, 7.0, 6.0, 4.0]  # never increasing
    assert promote(rows, "b", 2) == rows  # already within its slot
    assert promote(rows, "zzz", 1) == rows


def test_hybrid_gives_the_vector_legs_best_document_a_place_keyword_alone_would_not(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(40, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # 30 keyword matches for "alpha"; document 35 shares no word with the query, only its vector
    rows = [_row(i, f"alpha filler{i}" if i < 30 else f"unrelated words{i}", v) for i, v in enumerate(vectors)]
    table = LanceStore(tmp_path).open("chunks_s", 16)
    table.upsert(rows, [r["doc_id"] for r in rows], fresh=True)
    table.maintain(force=True)
    q = vectors[35]
    plain = [r["entity_id"] for r in table.query("hybrid", "alpha", q, None, 40, 0.5, 0.05)]
    assert plain.index("35") >= 30  # weight 0.05: below every keyword match
    slotted = [r["entity_id"] for r in table.query("hybrid", "alpha", q, None, 40, 0.5, 0.05, vector_slot=3)]
    assert slotted.index("35") == 2 and slotted[:2] == plain[:2], slotted
    assert sorted(slotted) == sorted(plain)  # nothing lost or added
    keyword = [r["entity_id"] for r in table.query("keyword", "alpha", None, None, 40)]
    assert "35" not in keyword


def test_large_table_gets_an_ivf_index_and_queries_still_find_the_nearest(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(index, "ANN_MIN_ROWS", 600)
    monkeypatch.setattr(index, "ANN_ROWS_PER_PARTITION", 150)
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(800, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    table = LanceStore(tmp_path).open("chunks_t", 32)
    rows = [_row(i, f"word{i} common text", v) for i, v in enumerate(vectors)]
    rows.append(_row(9999, "", vectors[5], kind="memory"))  # a memory: a vector, no text
    table.upsert(rows, [r["doc_id"] for r in rows], fresh=True)
    table.maintain(force=True)
    names = {i.name for i in table._t.list_indices()}
    assert {"vector_idx", "text_idx"} <= names and table._ann_partitions == 5, names
    found = 0
    for i in range(0, 800, 40):
        got = table.query("vector", None, vectors[i], "kind != 'memory'", 5, -1.0)
        found += got[0]["entity_id"] == str(i)
        assert all(r["kind"] != "memory" for r in got)
    assert found >= 18, found  # ANN: near-perfect for exact copies, probing half the partitions
    hybrid = table.query("hybrid", "word123", vectors[123], "kind != 'memory'", 5, -1.0, 0.05, "")
    assert hybrid[0]["entity_id"] == "123"
    # the similarity floor drops unrelated vector matches: a random query matches nothing ≥ 0.9
    assert table.query("vector", None, vectors[7] * 0 + vectors[8], None, 10, 0.9)[0]["entity_id"] == "8"
    assert len(table.query("vector", None, vectors[8], None, 10, 0.9)) == 1
    # reopening finds the index again
    again = LanceStore(tmp_path).open("chunks_t", 32)
    assert again._ann_partitions == 5
