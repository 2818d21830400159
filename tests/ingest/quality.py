"""Scoring of extracted items against hand labels (shared by the quality test and by hand runs).

Matching rule: an extracted item matches a label of the same type when the Dice coefficient of
their title token sets is at least :data:`MATCH_THRESHOLD` (0.6). Tokens are the lower-cased
words of the title (``\\w+``), minus a few stop words (``a an the to of and for in on with``)
and a leading ``@``. Each label matches at most one item and vice versa (greedy, best
similarity first). Precision = matched items / extracted items; recall = matched labels /
labels.

Run as a script for a per-file report: ``python -m tests.ingest.quality``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from sidecar.ingest.items import ExtractedItem

MATCH_THRESHOLD = 0.6
_STOP = frozenset({"a", "an", "the", "to", "of", "and", "for", "in", "on", "with"})

LABELS_DIR = Path(__file__).resolve().parent / "labels"
CORPUS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"


def tokens(title: str) -> set[str]:
    """The comparison tokens of a title."""
    return {t for t in re.findall(r"\w+", title.lower()) if t not in _STOP}


def similarity(a: str, b: str) -> float:
    """Dice coefficient of the token sets of ``a`` and ``b`` (0..1)."""
    ta, tb = tokens(a), tokens(b)
    if not ta or not tb:
        return 1.0 if a.strip().lower() == b.strip().lower() else 0.0
    return 2 * len(ta & tb) / (len(ta) + len(tb))


@dataclass
class Score:
    """Counts for one file (or a sum of files)."""

    extracted: int = 0
    labels: int = 0
    matched: int = 0
    false_positives: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.matched / self.extracted if self.extracted else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.labels if self.labels else 1.0

    def __iadd__(self, other: Score) -> Score:
        self.extracted += other.extracted
        self.labels += other.labels
        self.matched += other.matched
        self.false_positives += other.false_positives
        self.missed += other.missed
        return self


def score(items: list[ExtractedItem], labels: list[dict[str, object]]) -> Score:
    """Greedy one-to-one matching of ``items`` to ``labels`` (same type, similarity ≥ 0.6)."""
    pairs = []
    for i, item in enumerate(items):
        for j, label in enumerate(labels):
            if item.type != label["type"]:
                continue
            sim = similarity(item.title, str(label["title"]))
            if sim >= MATCH_THRESHOLD:
                pairs.append((sim, i, j))
    pairs.sort(reverse=True)
    used_items: set[int] = set()
    used_labels: set[int] = set()
    for _, i, j in pairs:
        if i in used_items or j in used_labels:
            continue
        used_items.add(i)
        used_labels.add(j)
    return Score(
        extracted=len(items),
        labels=len(labels),
        matched=len(used_items),
        false_positives=[
            f"{items[i].type}: {items[i].title}" for i in range(len(items)) if i not in used_items
        ],
        missed=[
            f"{labels[j]['type']}: {labels[j]['title']}" for j in range(len(labels)) if j not in used_labels
        ],
    )


def labelled_files() -> list[tuple[Path, list[dict[str, object]]]]:
    """``(corpus file, labels)`` for every label file whose corpus file exists."""
    out = []
    for label_file in sorted(LABELS_DIR.glob("*.json")):
        name = label_file.name.removesuffix(".json")
        matches = list(CORPUS_DIR.glob(f"*/{name}"))
        if matches:
            out.append((matches[0], json.loads(label_file.read_text(encoding="utf-8"))))
    return out


def evaluate(verbose: bool = True) -> tuple[Score, dict[str, Score]]:
    """Run ``rules`` over the labelled corpus; returns the total and per-format scores."""
    from sidecar.ingest import rules
    from sidecar.ingest.readers import read_document

    total = Score()
    per_format: dict[str, Score] = {}
    for path, labels in labelled_files():
        doc = read_document(path, max_bytes=5_000_000)
        items = rules.extract(doc, now_ms=0)
        s = score(items, labels)
        total += s
        per_format.setdefault(path.suffix, Score())
        per_format[path.suffix] += s
        if verbose:
            print(
                f"{path.name:42} items {s.extracted:3} labels {s.labels:3} matched {s.matched:3}"
                f"  P {s.precision:4.2f}  R {s.recall:4.2f}"
            )
            for fp in s.false_positives:
                print(f"    + extra   {fp[:110]}")
    if verbose:
        for ext, s in sorted(per_format.items()):
            print(f"{ext:6} items {s.extracted:3} labels {s.labels:3} P {s.precision:.3f} R {s.recall:.3f}")
        print(
            f"TOTAL  items {total.extracted:3} labels {total.labels:3} P {total.precision:.3f} R {total.recall:.3f}"
        )
    return total, per_format


if __name__ == "__main__":
    evaluate()
