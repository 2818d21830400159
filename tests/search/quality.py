"""Retrieval quality on the labelled query set (``quality_queries.json``) over the real public
files of ``../shared/corpus``: hit@5 and MRR (document level) for keyword-only, vector-only and
hybrid search, through the index's own code (reader text → chunks → LanceDB table → query).

The set has a ``dev`` and a ``test`` split, made by file: a query is ``dev`` when the first byte
of SHA-256 of its relevant file's name is even (see the file's ``about``). Fusion parameters
(the bundled embedder's ``vector_weight`` and ``vector_slot``) were chosen on ``dev`` only;
claims are made on ``test``, which is scored for totals only.

``python -m tests.search.quality [dev|test|all]`` prints the figures (default: test).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from sidecar.ingest.readers import read_document
from sidecar.search.chunking import chunk_text
from sidecar.search.embedders import WordLlamaEmbedder
from sidecar.search.index import LanceStore, Mode

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1] / ".." / "shared" / "corpus"
MODES: tuple[Mode, ...] = ("keyword", "vector", "hybrid")


def corpus_docs() -> dict[str, str]:
    """Corpus file (relative name) → the reader's text."""
    out = {}
    for path in sorted(CORPUS.rglob("*")):
        if path.is_file() and path.name != "SOURCES.md":
            out[str(path.relative_to(CORPUS))] = read_document(path, max_bytes=5 << 20).text
    return out


def queries(split: str = "test") -> list[dict[str, Any]]:
    """The labelled queries of one split (``dev``, ``test`` or ``all``)."""
    items: list[dict[str, Any]] = json.loads((HERE / "quality_queries.json").read_text())["queries"]
    return [q for q in items if split == "all" or q["split"] == split]


async def evaluate(split: str = "test", k: int = 5, vector_weight: float | None = None,
                   vector_slot: int | None = None) -> dict[str, dict[str, float]]:
    """``{mode: {"hit@5": …, "mrr": …, "queries": n}}`` on one split; ``vector_weight`` and
    ``vector_slot`` override the embedder's fusion settings (weight 1.0 and slot 0 = LanceDB's
    plain RRF)."""
    items = queries(split)
    docs = corpus_docs()
    embedder = await asyncio.to_thread(WordLlamaEmbedder.load_sync)
    with tempfile.TemporaryDirectory() as tmp:
        lance = LanceStore(Path(tmp))
        table = lance.open("quality", embedder.dim)
        rows: list[dict[str, Any]] = []
        for name, text in docs.items():
            for n, c in enumerate(chunk_text(text)):
                rows.append({"id": f"file:{name}#{n}", "doc_id": f"file:{name}", "kind": "file", "entity_id": name,
                             "project_id": None, "title": name, "text": c.text, "start": c.start, "end": c.end,
                             "path": name, "date": None, "updated_at": 0,
                             "text_hash": hashlib.sha256(c.text.encode()).hexdigest(), "embedder": embedder.id,
                             "dim": embedder.dim})
        vectors = await embedder.embed([r["text"] for r in rows])
        for r, v in zip(rows, vectors, strict=True):
            r["vector"] = v.tolist()
        table.upsert(rows, sorted({r["doc_id"] for r in rows}))
        table.maintain(force=True)
        out: dict[str, dict[str, float]] = {}
        for mode in MODES:
            hits, rr = 0, 0.0
            for item in items:
                vector = (await embedder.embed([item["q"]], count=False))[0]
                ranked: list[str] = []
                for r in table.query(mode, item["q"], vector, None, 100, embedder.min_similarity,
                                         embedder.vector_weight if vector_weight is None else vector_weight,
                                         vector_slot=embedder.vector_slot if vector_slot is None else vector_slot):
                    if r["entity_id"] not in ranked:
                        ranked.append(r["entity_id"])
                if item["relevant"] in ranked[:k]:
                    hits += 1
                if item["relevant"] in ranked:
                    rr += 1 / (ranked.index(item["relevant"]) + 1)
            out[mode] = {"hit@5": hits / len(items), "mrr": rr / len(items), "queries": len(items)}
        return out


def table(m: dict[str, dict[str, float]], split: str) -> str:
    """``evaluate``'s figures as a Markdown table."""
    n = int(next(iter(m.values()))["queries"])
    lines = [f"{split} split, {n} queries", "| mode | hit@5 | MRR |", "|---|---|---|"]
    lines += [f"| {mode} | {v['hit@5']:.3f} | {v['mrr']:.3f} |" for mode, v in m.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    split = sys.argv[1] if len(sys.argv) > 1 else "test"
    print(table(asyncio.run(evaluate(split)), split))
