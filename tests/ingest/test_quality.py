"""Extraction quality of ``rules`` on the hand-labelled corpora.

* ``old``: the 44 visible files (``../shared/corpus``, labels in ``labels/``, written before the
  extractor existed; the rules were developed while looking at them). Precision ≥ 0.9 enforced.
* ``dev`` / ``test``: the held-out corpus2 (166 files from 37 other sources — 150 from the first
  session, 14 dev files added in the fourth and 2 in the fifth for the kinds dev lacked — labels in
  ``labels2/`` committed before the extractor ran on them, split once by source; see
  ``labels2/README.md``). The rules were improved looking at dev only; test is only scored.
  The floors below are regression guards at the level reached; the issue's target on the test
  split is asserted separately (marked xfail while it is not met).

Matching is documented in :mod:`tests.ingest.quality` (same type, Dice overlap of title tokens
≥ 0.6, one-to-one; dated events also need the label's day ±1). ``pytest … -s`` prints the
per-file report of the old corpus and the per-kind figures of all three.
"""

from __future__ import annotations

import pytest

from sidecar.ingest import rules
from sidecar.ingest.readers import read_document
from tests.ingest.quality import CORPUS_DIR, LABELS2_DIR, LABELS_DIR, corpus2_dir, evaluate, labelled_files

NEGATIVE = [
    "md/glasgow-team9-minutes.md",
    "eml/mail-rfc2822-example09.eml",
    "eml/talon-outlook-reply.eml",
    "txt/email-reply-parser-riak.txt",
    "ics/radicale-journal1.ics",
]

old_corpus = pytest.mark.skipif(
    not CORPUS_DIR.is_dir(),
    reason=f"shared corpus not found at {CORPUS_DIR} (read-only folder next to the repo)",
)
corpus2 = pytest.mark.skipif(corpus2_dir() is None, reason="corpus2 files not present (see corpus2/SOURCES.md)")


@old_corpus
def test_enough_files_are_labelled() -> None:
    files = labelled_files()
    assert len(files) >= 20
    assert {p.suffix for p, _ in files} >= {".md", ".txt", ".eml", ".ics", ".pdf"}
    assert len(list(LABELS_DIR.glob("*.json"))) == len(files), "a label file names no corpus file"


@old_corpus
def test_precision_and_recall() -> None:
    total, _ = evaluate(verbose=True)
    assert total.extracted > 100
    assert total.precision >= 0.9, f"precision {total.precision:.3f} < 0.9: {total.false_positives}"
    # reached: tasks P 0.951 R 0.856 (third session); a regression guard on recall
    assert total.task_recall >= 0.84, f"task recall {total.task_recall:.3f} < 0.84"


@old_corpus
@pytest.mark.parametrize("name", NEGATIVE)
def test_negative_examples_give_no_tasks(name: str) -> None:
    doc = read_document(CORPUS_DIR / name, max_bytes=5_000_000)
    assert [i for i in rules.extract(doc) if i.type == "task"] == []


@old_corpus
def test_spans_index_the_text() -> None:
    for path, _ in labelled_files():
        doc = read_document(path, max_bytes=5_000_000)
        for item in rules.extract(doc, now_ms=0):
            assert 0 <= item.span.start < item.span.end <= len(doc.text), (path.name, item)


def test_corpus2_is_labelled_and_split_by_source() -> None:
    """150+ labelled files; no source repository on both sides (from the committed manifest)."""
    import json

    manifest = json.loads((LABELS2_DIR.parent / "corpus2" / "manifest.json").read_text(encoding="utf-8"))
    labels = {p.relative_to(LABELS2_DIR).as_posix().removesuffix(".json") for p in LABELS2_DIR.glob("*/*/*.json")}
    assert len(manifest) >= 150 and {m["file"] for m in manifest} == labels
    sides: dict[str, set[str]] = {}
    for m in manifest:
        sides.setdefault(m["repo"], set()).add(m["split"])
    assert all(len(s) == 1 for s in sides.values()), "a source is on both sides of the split"
    assert {m["kind"] for m in manifest if m["split"] == "test"} == {"eml", "ics", "md", "pdf", "txt"}


@corpus2
@pytest.mark.parametrize(
    ("corpus", "task_precision", "task_recall", "event_recall"),
    # third session's end: dev (74 files) 0.930 / 0.811 / 0.923, test 0.840 / 0.529 / 0.923.
    # fourth session's end: dev (88 files, 14 new and harder) 0.947 / 0.708 / 0.892, test 0.801 / 0.542 /
    # 0.923 — test precision fell; the rules were kept as decided on dev (see labels2/README.md)
    # fifth session's end: dev (90 files, 2 new) 0.954 / 0.718 / 0.892, test 0.807 / 0.546 / 0.923
    [("dev", 0.94, 0.70, 0.88), ("test", 0.80, 0.54, 0.9)],
)
def test_held_out_figures_do_not_regress(corpus: str, task_precision: float, task_recall: float,
                                         event_recall: float) -> None:
    total, _ = evaluate(corpus, verbose=False)
    print(f"{corpus}: {total.line()}")
    assert total.task_precision >= task_precision
    assert total.task_recall >= task_recall
    assert total.dated_event_recall >= event_recall


@corpus2
@pytest.mark.xfail(strict=True, reason="issue 12's target is not met yet: test tasks P 0.807 R 0.546")
def test_held_out_test_split_meets_the_issue_target() -> None:
    """Issue 12's acceptance on the test split: task recall ≥ 0.6 at precision ≥ 0.85, dated-event
    recall ≥ 0.6. Strict: when the rules reach it this test fails as XPASS, and the mark goes."""
    total, _ = evaluate("test", verbose=False)
    assert total.task_precision >= 0.85 and total.task_recall >= 0.6 and total.dated_event_recall >= 0.6
