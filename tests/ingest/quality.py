"""Scoring of extracted items against hand labels (shared by the quality tests and by hand runs).

Matching rule: an extracted item matches a label of the same type when the Dice coefficient of
their title token sets is at least :data:`MATCH_THRESHOLD` (0.6). Tokens are the lower-cased
words of the title (``\\w+``), minus a few stop words (``a an the to of and for in on with``)
and a leading ``@``. Each label matches at most one item and vice versa (greedy, best
similarity first). Precision = matched items / extracted items; recall = matched labels /
labels. Figures are given for all types together and for tasks alone.

Dated-event recall: the share of timeline labels matched by a timeline item whose date is the
label's ``date`` (±1 day, so a UTC event near midnight counts).

Corpora: ``old`` is the 44-file visible corpus (``../shared/corpus`` + ``labels/``), ``dev`` and
``test`` the held-out corpus2 (``labels2/{dev,test}``; files in ``../shared/corpus2`` or
``tests/ingest/corpus2``). The test split is only ever scored, never used for tuning (see
``labels2/README.md``).

Run as a script for a report: ``python -m tests.ingest.quality [old|dev|test] [-v]``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sidecar import clock
from sidecar.ingest.items import Document, ExtractedItem

MATCH_THRESHOLD = 0.6
_STOP = frozenset({"a", "an", "the", "to", "of", "and", "for", "in", "on", "with"})

HERE = Path(__file__).resolve().parent
LABELS_DIR = HERE / "labels"
CORPUS_DIR = HERE.parents[1].parent / "shared" / "corpus"
LABELS2_DIR = HERE / "labels2"
#: Where corpus2's files may live: the shared folder first, then the (git-ignored) copy here.
CORPUS2_DIRS = (HERE.parents[1].parent / "shared" / "corpus2", HERE / "corpus2")

Extractor = Callable[[Document], list[ExtractedItem]]


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
    task_extracted: int = 0
    task_labels: int = 0
    task_matched: int = 0
    event_labels: int = 0
    event_dated: int = 0
    false_positives: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.matched / self.extracted if self.extracted else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.labels if self.labels else 1.0

    @property
    def task_precision(self) -> float:
        return self.task_matched / self.task_extracted if self.task_extracted else 1.0

    @property
    def task_recall(self) -> float:
        return self.task_matched / self.task_labels if self.task_labels else 1.0

    @property
    def dated_event_recall(self) -> float:
        return self.event_dated / self.event_labels if self.event_labels else 1.0

    def __iadd__(self, other: Score) -> Score:
        for name in (
            "extracted", "labels", "matched", "task_extracted", "task_labels", "task_matched",
            "event_labels", "event_dated",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.false_positives += other.false_positives
        self.missed += other.missed
        return self

    def line(self) -> str:
        return (
            f"all P {self.precision:.3f} R {self.recall:.3f} ({self.matched}/{self.extracted} of {self.labels})"
            f" | tasks P {self.task_precision:.3f} R {self.task_recall:.3f}"
            f" ({self.task_matched}/{self.task_extracted} of {self.task_labels})"
            f" | dated events R {self.dated_event_recall:.3f} ({self.event_dated}/{self.event_labels})"
        )


def _same_day(ms: int | None, iso: object) -> bool:
    if ms is None or not isinstance(iso, str):
        return False
    day = dt.datetime.fromtimestamp(ms / 1000, clock.local_timezone()).date()
    return abs((day - dt.date.fromisoformat(iso[:10])).days) <= 1


def score(items: list[ExtractedItem], labels: list[dict[str, object]]) -> Score:
    """Greedy one-to-one matching of ``items`` to ``labels`` (same type, similarity ≥ 0.6)."""
    pairs = []
    for i, item in enumerate(items):
        for j, label in enumerate(labels):
            if item.type != label["type"]:
                continue
            sim = similarity(item.title, str(label["title"]))
            if sim >= MATCH_THRESHOLD:
                # among equally similar titles, the entry on the label's day is the match
                pairs.append((sim, _same_day(item.date, label.get("date")), -i, -j))
    pairs.sort(reverse=True)
    used_items: set[int] = set()
    used_labels: set[int] = set()
    match: dict[int, int] = {}
    for _, _, neg_i, neg_j in pairs:
        i, j = -neg_i, -neg_j
        if i in used_items or j in used_labels:
            continue
        used_items.add(i)
        used_labels.add(j)
        match[j] = i
    events = [j for j, label in enumerate(labels) if label["type"] == "timeline"]
    return Score(
        extracted=len(items),
        labels=len(labels),
        matched=len(used_items),
        task_extracted=sum(1 for it in items if it.type == "task"),
        task_labels=sum(1 for label in labels if label["type"] == "task"),
        task_matched=sum(1 for j in used_labels if labels[j]["type"] == "task"),
        event_labels=len(events),
        event_dated=sum(1 for j in events if j in match and _same_day(items[match[j]].date, labels[j].get("date"))),
        false_positives=[
            f"{items[i].type}: {items[i].title}" for i in range(len(items)) if i not in used_items
        ],
        missed=[
            f"{labels[j]['type']}: {labels[j]['title']}" for j in range(len(labels)) if j not in used_labels
        ],
    )


def corpus2_dir() -> Path | None:
    """The folder holding corpus2's ``dev/`` and ``test/`` files, or None."""
    return next((d for d in CORPUS2_DIRS if (d / "dev").is_dir() and (d / "test").is_dir()), None)


def labelled_files(corpus: str = "old") -> list[tuple[Path, list[dict[str, object]]]]:
    """``(corpus file, labels)`` for every label file of ``corpus`` whose file exists."""
    out = []
    if corpus == "old":
        for label_file in sorted(LABELS_DIR.glob("*.json")):
            name = label_file.name.removesuffix(".json")
            matches = list(CORPUS_DIR.glob(f"*/{name}"))
            if matches:
                out.append((matches[0], json.loads(label_file.read_text(encoding="utf-8"))))
        return out
    if corpus not in ("dev", "test"):
        raise ValueError(f"unknown corpus {corpus!r}")
    root = corpus2_dir()
    if root is None:
        return []
    for label_file in sorted((LABELS2_DIR / corpus).glob("*/*.json")):
        rel = label_file.relative_to(LABELS2_DIR).with_suffix("")
        path = root / rel
        if path.is_file():
            out.append((path, json.loads(label_file.read_text(encoding="utf-8"))))
    return out


def kind_of(path: Path) -> str:
    """The report group of a corpus file: its folder (``md``, ``eml``, ``ics``, ``txt``, ``pdf``)."""
    return path.parent.name


def rules_extractor(doc: Document) -> list[ExtractedItem]:
    from sidecar.ingest import rules

    return rules.extract(doc, now_ms=0)


def evaluate(
    corpus: str = "old", verbose: bool = True, extractor: Extractor | None = None
) -> tuple[Score, dict[str, Score]]:
    """Run ``extractor`` (default ``rules``) over ``corpus``; returns the total and per-kind scores."""
    from sidecar.ingest.readers import ReadError, read_document

    run = extractor or rules_extractor
    total = Score()
    per_kind: dict[str, Score] = {}
    for path, labels in labelled_files(corpus):
        try:
            items = run(read_document(path, max_bytes=5_000_000))
        except ReadError as exc:  # an unreadable file extracts nothing: its labels are missed
            print(f"{path.name:48} unreadable: {exc.reason}")
            items = []
        s = score(items, labels)
        total += s
        per_kind.setdefault(kind_of(path), Score())
        per_kind[kind_of(path)] += s
        if verbose:
            print(f"{path.name:48} {s.line()}")
            for fp in s.false_positives:
                print(f"    + extra   {fp[:110]}")
            for miss in s.missed:
                print(f"    - missed  {miss[:110]}")
    print(f"== {corpus} ({len(labelled_files(corpus))} files)")
    for kind, s in sorted(per_kind.items()):
        print(f"{kind:6} {s.line()}")
    print(f"TOTAL  {total.line()}")
    return total, per_kind


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    evaluate(args[0] if args else "old", verbose="-v" in sys.argv)
