"""Extraction quality of ``rules`` on the hand-labelled visible corpus.

Labels (``tests/ingest/labels/<file>.json``) were written by reading each corpus file before the
extractor existed; see ``labels/README.md``. Matching is documented in :mod:`tests.ingest.quality`
(same type, Dice overlap of title tokens ≥ 0.6, one-to-one). Precision is enforced (≥ 0.9 over all
labelled files); recall is printed, not enforced. Run ``pytest tests/ingest/test_quality.py -s``
to see the per-file report.
"""

from __future__ import annotations

import pytest

from sidecar.ingest import rules
from sidecar.ingest.readers import read_document
from tests.ingest.quality import CORPUS_DIR, LABELS_DIR, evaluate, labelled_files

pytestmark = pytest.mark.skipif(
    not CORPUS_DIR.is_dir(),
    reason=f"shared corpus not found at {CORPUS_DIR} (read-only folder next to the repo)",
)

NEGATIVE = [
    "md/glasgow-team9-minutes.md",
    "eml/mail-rfc2822-example09.eml",
    "eml/talon-outlook-reply.eml",
    "txt/email-reply-parser-riak.txt",
    "ics/radicale-journal1.ics",
]


def test_enough_files_are_labelled() -> None:
    files = labelled_files()
    assert len(files) >= 20
    assert {p.suffix for p, _ in files} >= {".md", ".txt", ".eml", ".ics", ".pdf"}
    assert len(list(LABELS_DIR.glob("*.json"))) == len(files), "a label file names no corpus file"


def test_precision_and_recall() -> None:
    total, _ = evaluate(verbose=True)
    assert total.extracted > 100
    assert total.precision >= 0.9, f"precision {total.precision:.3f} < 0.9: {total.false_positives}"


@pytest.mark.parametrize("name", NEGATIVE)
def test_negative_examples_give_no_tasks(name: str) -> None:
    doc = read_document(CORPUS_DIR / name, max_bytes=5_000_000)
    assert [i for i in rules.extract(doc) if i.type == "task"] == []


def test_spans_index_the_text() -> None:
    for path, _ in labelled_files():
        doc = read_document(path, max_bytes=5_000_000)
        for item in rules.extract(doc, now_ms=0):
            assert 0 <= item.span.start < item.span.end <= len(doc.text), (path.name, item)
